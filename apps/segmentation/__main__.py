"""python -m apps.segmentation --config=configs/segmentation.py --workdir=runs/segmentation"""

from apps.core.main import run
from apps.segmentation.task import SegmentationTask

if __name__ == "__main__":
    run(SegmentationTask)
