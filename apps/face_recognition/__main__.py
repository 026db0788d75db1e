"""python -m apps.face_recognition --config=configs/face_recognition.py --workdir=runs/face_recognition"""

from apps.core.main import run
from apps.face_recognition.task import FaceRecognitionTask

if __name__ == "__main__":
    run(FaceRecognitionTask)
