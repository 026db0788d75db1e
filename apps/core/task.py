"""What an app supplies to the shared trainer.

The trainer (apps/core/trainer.py) owns the loop, distribution, checkpoints,
TensorBoard and export; an app subclasses `Task` and says what is particular
to it: its data, model, loss, metrics and the SavedModel's signatures.
"""

import dataclasses

from apps.core.data import Split
from apps.core.errors import UserError


@dataclasses.dataclass
class Data:
    train: Split
    val: Split
    test: Split


class Task:
    """Base class of an app's task. `config` is the app's resolved ConfigDict."""

    #: the config rules (apps.core.config.check) this app adds to the common ones
    rules = {}
    #: modes beyond train/eval/predict/export, run by `run_mode` (e.g. "enroll")
    extra_modes = ()
    #: whether config.export.tflite may be on: serving_default takes uint8 images
    #: and the model one fixed-size image batch (apps.core.tflite)
    tflite = False
    #: config fields a workdir's checkpoints depend on: a later run in the same
    #: workdir must have the same values (apps.core.config.check_workdir_owner)
    workdir_fields = ("model",)

    def __init__(self, config):
        self.config = config
        if config.get("export", {}).get("tflite") and not self.tflite:
            raise UserError(
                f"config.export.tflite = True: the {config.get('app')} app has no TensorFlow "
                "Lite export (only classification, detection, segmentation and "
                "face_recognition); set it to false")

    def load_data(self):
        """Returns `Data`, the three splits as in-memory arrays."""
        raise NotImplementedError

    def build_model(self):
        """Returns the Keras model (called inside the strategy's scope)."""
        raise NotImplementedError

    def make_optimizer(self, steps_per_epoch, total_steps, clip=False):
        """The optimizer of config.optimizer (apps.core.optim.make_optimizer).

        An app may return another, e.g. one with a sparse update for embeddings.
        """
        from apps.core.optim import make_optimizer

        return make_optimizer(self.config.optimizer, steps_per_epoch, total_steps, clip=clip)

    def initialize(self, model):
        """Sets initial weights of a fresh run (e.g. from a pretrained run)."""

    def epoch_order(self):
        """(order_fn, epoch_length) for apps.core.data.train_stream, or None.

        None is a fresh permutation of the training split each epoch.
        """
        return None

    def train_example(self, inputs, targets, seed):
        """One training example, augmented with stateless ops keyed by `seed`."""
        return self.eval_example(inputs, targets)

    def eval_example(self, inputs, targets):
        """One evaluation example as the model takes it."""
        return inputs, targets

    def per_example_loss(self, targets, outputs):
        """Loss of each example in the batch, shape (batch,); or its terms as
        {name: (batch,)}, whose sum is the loss (each is then also written to
        TensorBoard as loss_<name>)."""
        raise NotImplementedError

    def evaluate(self, model, split):
        """Returns (metrics {name: float}, images {name: uint8 [k, h, w, c]})."""
        raise NotImplementedError

    def export_endpoints(self, model):
        """{name: (fn, input_signature)}; the first is `serving_default`."""
        raise NotImplementedError

    def predict(self, serving, path):
        """Runs the exported `serving` signature on the file(s) at `path`, prints results."""
        raise NotImplementedError

    def write_summaries(self, prefix):
        """Writes summaries beyond scalars and images (audio, text, ...) for the last evaluate().

        Called inside the eval writer's default context, at the evaluation's step,
        with the name prefix ("val_" after each epoch, "" for the test split);
        the default writes nothing.
        """

    def run_mode(self, mode, workdir, input_path):
        """Runs one of `extra_modes`; the app reads its own absl flags. Returns metrics or None."""
        raise NotImplementedError(mode)
