"""python -m apps.classification --config=configs/classification.py --workdir=runs/classification"""

from apps.core.main import run  # first: it keeps TensorFlow's start-up lines off the console

# isort: split
from apps.classification.task import ClassificationTask

if __name__ == "__main__":
    run(ClassificationTask)
