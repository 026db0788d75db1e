"""python -m apps.detection --config=configs/detection.py --workdir=runs/detection"""

from apps.core.main import run
from apps.detection.task import DetectionTask

if __name__ == "__main__":
    run(DetectionTask)
