"""python -m apps.trigger_word --config=configs/trigger_word.py --workdir=runs/trigger_word"""

from apps.core.main import run
from apps.trigger_word.task import TriggerWordTask

if __name__ == "__main__":
    run(TriggerWordTask)
