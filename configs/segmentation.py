"""Semantic segmentation with a U-Net.

    python -m apps.segmentation --config=configs/segmentation.py --workdir=runs/segmentation
    python -m apps.segmentation --config=configs/segmentation.py:tiny --workdir=/tmp/seg

Variants (after the colon): "" (default: generated scenes of handwritten
digits and shapes on textured backgrounds, 14 classes, a few minutes on a
2-core CPU), "tiny" (seconds; what the tests use), "pets" (TFDS
oxford_iiit_pet trimaps by name; set --config.data.data_dir), "carla" (a
folder with CameraRGB/ and CameraMask/, the course's CARLA data: 23 classes
at 96x128 with the course's U-Net; set --config.data.path), "folder" (your
own image/mask pairs; set --config.data.path and --config.data.num_classes).
"""

import ml_collections

from apps.core.config import (
    AUGMENT_RULES,
    Rule,
    boolean,
    check_source_fields,
    common_config,
    data_cache,
    fractions_summing_to_one,
    int_in,
    non_negative_float,
    non_negative_int,
    one_of,
    positive_int,
    probability,
)
from apps.core.errors import UserError
from apps.core.optim import optimizer_config


def _image_size(v):
    return (len(v) == 2 and all(isinstance(s, int) and not isinstance(s, bool) for s in v)
            and all(8 <= s <= 4096 for s in v))


# What each field must hold (apps.core.config.check). The augmentation's flip,
# shift and colour jitter (apps.segmentation.task.augment_pair, which moves the
# mask with the image; no rotation) have the image apps' rules (AUGMENT_RULES).
RULES = {
    "data.source": one_of("synthetic", "tfds", "folder"),
    "data.cache": data_cache,
    "data.split": fractions_summing_to_one,
    "data.image_size": Rule(_image_size, "(height, width), integers in [8, 4096]"),
    "data.num_classes": int_in(0, 256),
    "data.ignore_label": int_in(0, 255),
    "data.class_names": Rule(
        lambda v: isinstance(v, tuple) and all(isinstance(n, str) and n for n in v)
        and len(set(v)) == len(v), "() or a tuple of distinct, non-empty class names"),
    "data.image_dir": Rule(lambda v: isinstance(v, str) and v, "a folder name"),
    "data.mask_dir": Rule(lambda v: isinstance(v, str) and v, "a folder name"),
    "data.mask_offset": non_negative_int,
    "data.max_examples": non_negative_int,
    "data.synthetic.train_scenes": positive_int,
    "data.synthetic.val_scenes": positive_int,
    "data.synthetic.test_scenes": positive_int,
    "data.synthetic.max_objects": int_in(1, 8),
    "data.synthetic.object_size": Rule(lambda v: len(v) == 2 and 0 < v[0] <= v[1] <= 1,
                                       "(smallest, largest) fractions in (0, 1]"),
    **{f"data.augment.{name}": AUGMENT_RULES[f"data.augment.{name}"]
       for name in ("flip", "shift", "color")},
    "model.n_filters": int_in(1, 512),
    "model.depth": int_in(1, 6),
    "model.batch_norm": boolean,
    "model.dropout": probability,
    "model.dropout_blocks": non_negative_int,
    "loss.class_weights": one_of("none", "balanced"),
    "loss.dice_weight": non_negative_float,
}


def check(config):
    """The checks across fields: no field of another source, and an ignore label
    that is not one of the classes."""
    d = config.data
    check_source_fields(d, {"path": ("folder",), "name": ("tfds",), "data_dir": ("tfds",)})
    classes = max(d.num_classes, len(d.class_names))
    if d.ignore_label < classes:
        raise UserError(f"config.data.ignore_label = {d.ignore_label} is one of the {classes} "
                        f"classes (0..{classes - 1}); expected a label above them (255)")


def get_config(variant=""):
    config = common_config("segmentation")
    # --mode=tune's default search (apps.core.tune): Adam's learning rate and
    # beta_1, and the dropout of the deepest blocks.
    config.tune.space = ("optimizer.learning_rate = log_uniform(1e-4, 1e-1); "
                         "optimizer.beta_1 = one_minus_log(0.8, 0.99); "
                         "model.dropout = uniform(0, 0.5)")

    config.data = ml_collections.ConfigDict()
    config.data.source = "synthetic"  # synthetic | tfds | folder
    config.data.name = ""  # TFDS name, for source=tfds
    config.data.data_dir = ""  # TFDS data_dir ('' = TFDS's default)
    config.data.mask_offset = 0  # subtracted from TFDS mask values (pets: 1)
    config.data.path = ""  # for source=folder: holds image_dir/ and mask_dir/
    # A folder is read as training goes; "memory" reads it all once at the start.
    config.data.cache = "none"  # none | memory | a folder (decoded once to .npy files)
    config.data.image_dir = "CameraRGB"
    config.data.mask_dir = "CameraMask"
    config.data.num_classes = 0  # tfds / folder: classes of the masks (0 = len(class_names))
    # The label of pixels left out of the loss and the metrics (Pascal VOC and
    # Cityscapes mark object boundaries 255); it must not be a class.
    config.data.ignore_label = 255
    config.data.class_names = ()  # tfds / folder: optional names, in class-id order
    config.data.split = (0.6, 0.2, 0.2)  # train, val, test (synthetic: of the digit scans)
    config.data.image_size = (48, 48)  # (height, width) the model sees
    config.data.max_examples = 0  # folder / per TFDS split; 0 = all
    config.data.synthetic = ml_collections.ConfigDict()
    config.data.synthetic.train_scenes = 3000
    config.data.synthetic.val_scenes = 200
    config.data.synthetic.test_scenes = 500
    config.data.synthetic.max_objects = 3
    config.data.synthetic.object_size = (0.4, 0.6)  # an object's side / min(H, W)
    config.data.augment = ml_collections.ConfigDict()
    config.data.augment.flip = False  # digits are not mirror-symmetric
    config.data.augment.shift = 0.1
    config.data.augment.color = 0.0

    config.model = ml_collections.ConfigDict()
    config.model.n_filters = 16
    config.model.depth = 4  # 2x downsamplings (the course: 4)
    config.model.batch_norm = True
    config.model.dropout = 0.0  # in the dropout_blocks deepest conv blocks (the course: 0.3)
    config.model.dropout_blocks = 2

    config.loss = ml_collections.ConfigDict()
    config.loss.class_weights = "balanced"  # none | balanced (from the training masks)
    config.loss.dice_weight = 1.0  # soft Dice added to the cross-entropy (0 = off)

    config.optimizer = optimizer_config("adam", learning_rate=3e-3, schedule="warmup_cosine")
    config.optimizer.warmup_epochs = 1.0

    config.train.batch_size = 16
    config.train.epochs = 16
    config.train.checkpoint_every = 100

    # The diagnosis at the end of a run (apps.core.diagnosis): the error is 1 - mean IoU.
    config.diagnosis.metric = "mean_iou"
    config.diagnosis.metric_is_error = False
    # Human level, an estimate: the masks are exact by construction, so what a
    # person gets wrong is which digit a region is, as in classification (2.37%,
    # the human error on USPS's digits, Chaaban & Scheessele 2007).
    config.diagnosis.human_level_error = 0.0237

    if variant == "tiny":
        config.data.image_size = (32, 32)
        config.data.synthetic.train_scenes = 64
        config.data.synthetic.val_scenes = 16
        config.data.synthetic.test_scenes = 24
        config.diagnosis.train_dev_fraction = 0.0  # too few scenes to hold any out
        config.data.synthetic.max_objects = 2
        config.model.n_filters = 4
        config.model.depth = 2
        config.model.batch_norm = False  # 16 steps are too few for BatchNorm's moving averages
        config.model.dropout = 0.2
        config.loss.class_weights = "none"
        config.optimizer.learning_rate = 1e-2
        config.train.batch_size = 16
        config.train.epochs = 2
        config.train.checkpoint_every = 2
        config.train.log_every = 2
        config.optimizer.warmup_epochs = 0.0
    elif variant == "pets":
        config.data.source = "tfds"
        config.data.name = "oxford_iiit_pet"
        config.diagnosis.human_level_error = None  # trimaps drawn by people: set it
        config.data.mask_offset = 1  # trimap values 1, 2, 3
        config.data.class_names = ("pet", "background", "outline")
        config.data.num_classes = 3
        config.data.split = (0.9, 0.0999, 0.0001)  # val carved from train; TFDS test kept
        config.data.image_size = (128, 128)
        config.data.augment.flip = True
        config.data.augment.color = 0.5
        config.model.n_filters = 32
        config.model.dropout = 0.3
        config.loss.class_weights = "none"
        config.train.batch_size = 32
        config.train.epochs = 20
        config.train.checkpoint_every = 500
    elif variant in ("carla", "folder"):
        config.data.source = "folder"
        config.diagnosis.human_level_error = None  # your data: set it
        config.data.split = (0.8, 0.1, 0.1)
        config.data.augment.flip = True
        if variant == "carla":  # the course's settings
            config.data.image_size = (96, 128)
            config.data.num_classes = 23
            config.model.n_filters = 32
            config.model.batch_norm = False
            config.model.dropout = 0.3
            config.loss.class_weights = "none"
            config.loss.dice_weight = 0.0
            config.train.batch_size = 32
            config.optimizer.learning_rate = 1e-3
            config.optimizer.schedule = "constant"
            config.train.epochs = 40
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: '', tiny, pets, carla, folder")
    return config
