"""Image classification.

    python -m apps.classification --config=configs/classification.py --workdir=runs/classification
    python -m apps.classification --config=configs/classification.py:tiny --workdir=/tmp/cls

Variants (after the colon): "" (default: ResNet on scikit-learn's digits, about
a minute on a 2-core CPU), "tiny" (seconds; what the tests use), "mnist" and
"cifar10" (TFDS by name; set --config.data.data_dir), "folder" (set
--config.data.path to a folder with one sub-folder per class), "h5" (the
course's HDF5 files: --config.data.path=train_signs.h5
--config.data.test_path=test_signs.h5).
"""

import ml_collections

from apps.classification.model import MIN_IMAGE_SIZE, NAMES
from apps.core.config import (
    AUGMENT_RULES,
    Rule,
    augment_config,
    boolean,
    check_source_fields,
    common_config,
    data_cache,
    fractions_summing_to_one,
    non_negative_float,
    non_negative_int,
    one_of,
    positive_int,
    probability,
)
from apps.core.errors import UserError
from apps.core.optim import optimizer_config

# What each field must hold (apps.core.config.check), the image augmentation's too.
RULES = {
    **AUGMENT_RULES,
    "data.source": one_of("digits", "tfds", "folder", "h5"),
    "data.cache": data_cache,
    "data.split": fractions_summing_to_one,
    "data.image_size": Rule(lambda v: isinstance(v, int) and 8 <= v <= 1024,
                            "an integer in [8, 1024]"),
    "data.channels": one_of(1, 3),
    "data.max_examples": non_negative_int,
    "model.name": one_of(*NAMES),
    "model.width": Rule(lambda v: 0 < v <= 16, "a number in (0, 16]"),
    "model.dropout": probability,
    "model.label_smoothing": probability,
    "eval.top_k": positive_int,
    "transfer.freeze_layers": non_negative_int,
    "transfer.keep_head": boolean,
    "optimizer.learning_rate": non_negative_float,
}


def check(config):
    """The checks across fields: sizes the model takes, and no field set that
    this source does not read (a path given without the folder source would
    otherwise train on the digits without a word)."""
    check_source_fields(config.data, {"path": ("folder", "h5"), "test_path": ("h5",),
                                      "name": ("tfds",), "data_dir": ("tfds",)})
    name, size = config.model.name, config.data.image_size
    if size < MIN_IMAGE_SIZE.get(name, 0):
        raise UserError(f"config.data.image_size = {size}: model {name} needs images of "
                        f"at least {MIN_IMAGE_SIZE[name]} pixels a side")


def get_config(variant=""):
    config = common_config("classification")
    # --mode=tune's default search (apps.core.tune): the learning rate over the
    # notes' four decades, Adam's beta_1 through 1 - beta_1, and dropout.
    config.tune.space = ("optimizer.learning_rate = log_uniform(1e-4, 1); "
                         "optimizer.beta_1 = one_minus_log(0.8, 0.99); "
                         "model.dropout = uniform(0, 0.5)")

    config.data = ml_collections.ConfigDict()
    config.data.source = "digits"  # digits | tfds | folder | h5
    config.data.name = ""  # TFDS name, for source=tfds
    config.data.data_dir = ""  # TFDS data_dir ('' = TFDS's default)
    config.data.path = ""  # for source=folder (or h5: the training file)
    config.data.test_path = ""  # for source=h5: the test file
    # Files (folder, h5) are read as training goes; "memory" reads them all once.
    config.data.cache = "none"  # none | memory | a folder (decoded once to .npy files)
    config.data.split = (0.6, 0.2, 0.2)  # train, val, test (small data: 6:2:2)
    config.data.image_size = 16
    config.data.channels = 1
    config.data.max_examples = 0  # per TFDS split; 0 = all
    # Digits are not mirror-symmetric: no flip.
    config.data.augment = augment_config(shift=0.1, rotation=10.0)

    config.model = ml_collections.ConfigDict()
    config.model.name = "resnet"  # lenet5 | alexnet | vgg | nin | googlenet | resnet | densenet
    config.model.width = 1.0
    config.model.dropout = 0.0
    config.model.label_smoothing = 0.0

    config.optimizer = optimizer_config("adam", learning_rate=3e-3, schedule="warmup_cosine")
    config.optimizer.warmup_epochs = 1.0

    config.train.batch_size = 64
    config.train.epochs = 30
    config.train.checkpoint_every = 100

    config.eval = ml_collections.ConfigDict()
    config.eval.top_k = 3

    config.transfer = ml_collections.ConfigDict()
    config.transfer.init_from = ""  # another run's workdir, checkpoint or SavedModel
    config.transfer.freeze_layers = 0  # freeze the first N layers
    config.transfer.keep_head = False  # False: a new head for this run's classes

    # The diagnosis at the end of a run (apps.core.diagnosis): the error is 1 - accuracy.
    config.diagnosis.metric = "accuracy"
    config.diagnosis.metric_is_error = False
    # Human-level error, the proxy for the Bayes error. For the digits (8x8 scans)
    # no human study exists; the nearest is 2.37% on USPS's 16x16 digits
    # (Chaaban & Scheessele 2007, "Human performance on the USPS database").
    config.diagnosis.human_level_error = 0.0237

    if variant == "tiny":
        config.model.name = "lenet5"
        config.model.width = 0.5
        config.data.image_size = 12
        config.train.batch_size = 32
        config.train.epochs = 2
        config.train.checkpoint_every = 5
        config.train.log_every = 5
        config.optimizer.warmup_epochs = 0.0
    elif variant in ("mnist", "cifar10"):
        config.data.source = "tfds"
        config.data.name = variant
        config.data.image_size = 28 if variant == "mnist" else 32
        config.data.channels = 1 if variant == "mnist" else 3
        config.data.split = (0.8, 0.1, 0.1)  # val carved from train; the TFDS test split is kept
        # MNIST: about 0.2%, the human error Ciresan et al. (CVPR 2012) compare with;
        # CIFAR-10: 6% (Karpathy 2011, "Lessons learned from manually classifying CIFAR-10").
        config.diagnosis.human_level_error = 0.002 if variant == "mnist" else 0.06
        config.data.augment.flip = variant == "cifar10"
        config.data.augment.color = 0.5 if variant == "cifar10" else 0.0
        config.train.batch_size = 128
        config.train.epochs = 20
        config.train.checkpoint_every = 500
    elif variant == "folder":
        config.data.source = "folder"
        config.diagnosis.human_level_error = None  # your data: set it
        config.data.image_size = 64
        config.data.channels = 3
        config.data.augment.flip = True
        config.data.augment.color = 0.5
    elif variant == "h5":  # the course's SIGNS / happy-house / cat files
        config.data.source = "h5"
        config.data.image_size = 64
        config.data.channels = 3
        config.data.split = (0.8, 0.1, 0.1)  # val carved from train; the test file is kept
        config.data.augment.color = 0.3
        config.diagnosis.human_level_error = None  # SIGNS, happy house, cats: set it
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: '', tiny, mnist, cifar10, folder, h5")
    return config
