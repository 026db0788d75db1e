"""style_transfer's own mode (StyleTransferTask.extra_modes): train_fast.

    --mode=train_fast  the feed-forward stylizer, trained by the shared Trainer
                       through the core's train (test, export, metrics.json, summary)

--mode=train, the optimisation method, is the core's train of the task's
trainer (StyleTransferTask.make_trainer).
"""

from apps.core import modes as core_modes
from apps.core.trainer import Trainer
from apps.style_transfer import images as images_lib
from apps.style_transfer import optimize


def train_fast(task, run):
    """Trains the fast stylizer in run.workdir (resuming), after two checks.

    A stylizer learns one style: training on in a workdir with another would
    silently mix two, so that is refused. A bad style image stops the run
    before the content photographs are cut into crops.
    """
    optimize.check_same_fields(task.config, run.workdir, ("data.style",))
    images_lib.read_image(task.config.data.style, "--style")
    return core_modes.train(task, run, trainer=Trainer(task, run.workdir))
