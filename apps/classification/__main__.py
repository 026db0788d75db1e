"""python -m apps.classification --config=configs/classification.py --workdir=runs/classification"""

from apps.classification.task import ClassificationTask
from apps.core.main import run

if __name__ == "__main__":
    run(ClassificationTask)
