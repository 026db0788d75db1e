"""python -m apps.translation --config=configs/translation.py --workdir=runs/translation"""

from apps.core.main import run
from apps.translation.task import TranslationTask

if __name__ == "__main__":
    run(TranslationTask)
