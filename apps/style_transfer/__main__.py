"""python -m apps.style_transfer --config=configs/style_transfer.py --workdir=runs/style_transfer"""

from apps.core.main import run
from apps.style_transfer.task import StyleTransferTask

if __name__ == "__main__":
    run(StyleTransferTask)
