"""What an app supplies to the core: narrow hooks, no modes of its own.

The core (apps/core/modes.py and the trainer) runs train, eval, export and
predict for every app: the workdir and SavedModel checks, the input checks,
the prints and metrics.json. An app subclasses `Task` and answers questions
about what is particular to it: its data, model, loss and metrics, the
SavedModel's signatures, how to read one of a user's inputs and how to write
one prediction. Modes that are the app's own (enroll, query, ...) live in the
app's modes.py and are named in `extra_modes`.

The hooks that run traced (train_example, eval_example, per_example_loss, the
model and the export endpoints) are traced without autograph
(apps.core.data.graph_code): a tensor's value decides nothing through Python
`if` or `for` there; use tf.cond, tf.where or tf.while_loop, as the apps do.
"""

import dataclasses

from apps.core.data import Split
from apps.core.errors import UserError


@dataclasses.dataclass
class Data:
    train: Split
    val: Split
    test: Split


@dataclasses.dataclass
class Run:
    """What one command asked for: its mode, workdir, --input, --output and the
    app's own flags (`options`, {name: value or None}, see Task.flags)."""

    workdir: str
    mode: str = "train"
    input: str | None = None
    output: str | None = None
    options: dict = dataclasses.field(default_factory=dict)
    #: train's hook after each epoch's validation (Trainer.on_validation)
    on_validation: object = None

    def option(self, name):
        return self.options.get(name)


class Task:
    """Base class of an app's task. `config` is the app's resolved ConfigDict."""

    #: the app's own modes: {mode: function(task, run) -> metrics or None}
    extra_modes = {}
    #: the app's own modes that read --input (predict always does)
    input_modes = ()
    #: the app's own command-line flags: {name: (modes that read it, help)}; a
    #: flag given to any other mode is an error naming it
    flags = {}
    #: what --mode=predict takes as --input, in the words of its error messages
    input_kind = "an image file or a folder of them"
    #: what predict's inputs are, counted ("skipped 1 of 3 image files")
    input_unit = "image files"
    #: whether predict's inputs are files (their outputs are then named after them)
    input_is_files = True
    #: the validation metrics printed after each epoch (all go to TensorBoard)
    headline_metrics = ()
    #: evaluate() keys that describe the model rather than the split evaluated
    #: (e.g. a threshold chosen on validation): metrics.json keeps them unprefixed
    unprefixed_metrics = ()
    #: the mode whose run writes the SavedModel, named when predict finds none
    export_made_by = "train"
    #: whether config.export.tflite may be on: serving_default takes uint8 images
    #: and the model one fixed-size image batch (apps.core.tflite)
    tflite = False
    #: config fields a workdir's checkpoints depend on: a later run in the same
    #: workdir must have the same values (apps.core.config.check_workdir_owner)
    workdir_fields = ("model",)
    #: whether data.val and data.test hold examples the loss applies to; False
    #: (word embeddings: evaluation sets of another kind) limits a diagnosis on
    #: the loss (config.diagnosis.metric = "loss") to train and train-dev
    splits_hold_examples = True

    @classmethod
    def apply_options(cls, config, run):
        """The config this run uses, given the app's own flags that stand for
        config fields (style transfer's --style); the core checks it (against
        configs/<app>.py's RULES and check) and saves it. The default is `config`."""
        return config

    def check_run(self, run):
        """Checks that `run` (its mode, flags, --input) fits what its workdir
        holds, before the mode starts; raises UserError. The default checks nothing."""

    def __init__(self, config):
        self.config = config
        if config.get("export", {}).get("tflite") and not self.tflite:
            raise UserError(
                f"config.export.tflite = True: the {config.get('app')} app has no TensorFlow "
                "Lite export; set it to false")

    # ------------------------------------------------------------ training

    def load_data(self):
        """Returns `Data`, the three splits."""
        raise NotImplementedError

    def vocabulary(self):
        """The tokens the model's ids stand for (JSON: a list, or {name: list}), or
        None. Set, a workdir keeps them in vocab.json and refuses other ones
        (apps.core.workdir.keep_vocabulary). Called after load_data()."""
        return None

    def build_model(self):
        """Returns the Keras model (called inside the strategy's scope)."""
        raise NotImplementedError

    def make_optimizer(self, steps_per_epoch, total_steps, clip=False):
        """The optimizer of config.optimizer (apps.core.optim.make_optimizer).

        An app may return another, e.g. one with a sparse update for embeddings.
        """
        from apps.core.optim import make_optimizer

        return make_optimizer(self.config.optimizer, steps_per_epoch, total_steps, clip=clip)

    def make_trainer(self, workdir):
        """What trains, evaluates and exports in `workdir`: the shared Trainer.

        An app whose training is no network (style transfer's optimisation
        method) returns an object with the same train / evaluate / export /
        outputs / chief.
        """
        from apps.core.trainer import Trainer

        return Trainer(self, workdir)

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

    # ---------------------------------------------------------- evaluation

    def evaluate(self, model, split):
        """Returns (metrics {name: float}, images {name: uint8 [k, h, w, c]})."""
        raise NotImplementedError

    def write_summaries(self, prefix):
        """Writes summaries beyond scalars and images (audio, text, ...) for the last evaluate().

        Called inside the eval writer's default context, at the evaluation's step,
        with the name prefix ("val_" after each epoch, "test_" for the test split);
        the default writes nothing.
        """

    def run_metrics(self, metrics):
        """Facts of the run for metrics.json beside the test metrics (e.g. the
        vocabulary size); `metrics` holds what is already there (examples_per_sec)."""
        return {}

    # -------------------------------------------------------------- export

    def export_endpoints(self, model):
        """{name: (fn, input_signature)}; the first is `serving_default`."""
        raise NotImplementedError

    def write_beside_export(self, model, workdir):
        """Writes what a user wants beside the SavedModel (word vectors, the
        embedding projector); returns {label: path} for the run's summary."""
        return {}

    # ------------------------------------------------------------- predict

    def predict_items(self, path):
        """The inputs at --input=`path` (checked to exist), before any is read:
        by default the image files of a file or folder."""
        from apps.core import images as images_lib

        return images_lib.image_files(path)

    def load_export(self, workdir):
        """What predict_item gets as `saved_model`: by default the workdir's
        SavedModel (apps.core.modes.load_saved_model); an app may add what else
        predicting needs (face recognition: its gallery). Loaded once an input
        has proved readable."""
        from apps.core.modes import load_saved_model

        return load_saved_model(workdir)

    def read_item(self, item):
        """One input, read and checked; a UserError if it cannot be used (in a
        folder it is then skipped, named and counted)."""
        raise NotImplementedError

    def predict_item(self, saved_model, item, value, output):
        """Predicts on one input read by read_item and prints one line.

        `saved_model` is what load_export returned; `output` the path stem its files
        go to (predictions/NAME, NAME from the input's path), None when the
        inputs are no files. Returns a JSON-able record for predictions.json, or None.
        """
        raise NotImplementedError

