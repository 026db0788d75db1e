"""Object detection (YOLO-style: S x S grid, B anchors per cell, NMS, mAP).

    python -m apps.detection --config=configs/detection.py --workdir=runs/detection
    python -m apps.detection --config=configs/detection.py:tiny --workdir=/tmp/det

Variants (after the colon): "" (default: scenes of scikit-learn's handwritten
digits on a textured 96x96 canvas; a ResNet backbone with a 12x12 YOLO head),
"tiny" (seconds; what the tests use), "voc" and "coco" (TFDS by name; set
--config.data.data_dir), "coco_json" (a COCO-format annotation file: set
--config.data.annotations and --config.data.images).
"""

import ml_collections

from apps.core.config import (
    AUGMENT_RULES,
    Rule,
    check_source_fields,
    common_config,
    data_cache,
    fraction,
    fractions_summing_to_one,
    int_in,
    non_negative_float,
    non_negative_int,
    one_of,
    positive_fraction,
    positive_int,
)
from apps.core.errors import UserError
from apps.core.optim import optimizer_config
from apps.detection.loss import BOX_LOSSES
from apps.detection.model import stride

# Fractions, from the core's number rules (the core has no such rule yet).


def _ints(low, high, length=None):
    return Rule(lambda v: isinstance(v, tuple) and (length is None or len(v) == length)
                and len(v) >= 1 and all(isinstance(x, int) and low <= x <= high for x in v),
                f"a tuple of {length or 'one or more'} integers in [{low}, {high}]")


# What each field must hold (apps.core.config.check). The augmentation's flip
# and colour jitter are the image apps' (apps.core.config.AUGMENT_RULES); its
# zoom and shift move the boxes too (apps.detection.data.augment).
RULES = {
    "data.source": one_of("digits", "tfds", "coco_json"),
    "data.cache": data_cache,
    "data.split": fractions_summing_to_one,
    "data.tfds_splits": Rule(lambda v: isinstance(v, tuple) and len(v) == 3
                             and all(isinstance(s, str) and s for s in v),
                             "three TFDS split names (train, val, test)"),
    "data.image_size": int_in(32, 1024),
    "data.channels": one_of(1, 3),
    "data.max_boxes": int_in(1, 1000),
    "data.max_examples": non_negative_int,
    "data.invalid_boxes": one_of("error", "skip"),
    "data.digits.scenes": _ints(1, 10**6, length=3),
    "data.digits.max_digits": int_in(1, 50),
    "data.digits.min_size": int_in(4, 1024),
    "data.digits.max_size": int_in(4, 1024),
    "data.digits.max_overlap": fraction,
    "data.augment.flip": AUGMENT_RULES["data.augment.flip"],
    "data.augment.scale": fraction,
    "data.augment.translate": Rule(lambda v: 0 <= v < 0.5, "a fraction in [0, 0.5)"),
    "data.augment.color": AUGMENT_RULES["data.augment.color"],
    "model.stages": _ints(1, 16),
    "model.width": int_in(1, 1024),
    "model.head_width": int_in(1, 4096),
    "model.num_anchors": int_in(1, 16),
    "model.anchors": Rule(
        lambda v: isinstance(v, tuple) and all(
            isinstance(a, tuple) and len(a) == 2
            and all(isinstance(x, (int, float)) and 0 < x <= 1 for x in a) for a in v),
        "() for k-means anchors, or a tuple of (width, height) pairs in (0, 1]"),
    "loss.box": one_of(*BOX_LOSSES),
    "loss.obj_scale": non_negative_float,
    "loss.noobj_scale": non_negative_float,
    "loss.coord_scale": non_negative_float,
    "loss.class_scale": non_negative_float,
    "loss.ignore_iou": non_negative_float,
    "decode.score_threshold": fraction,
    "decode.iou_threshold": positive_fraction,
    "decode.max_per_class": positive_int,
    "decode.max_detections": positive_int,
    "decode.pre_nms_top_k": positive_int,
    "eval.score_threshold": fraction,
    "eval.images": non_negative_int,
}


def check(config):
    """The checks across fields: the image fits the model's grid, the anchors
    their count, and the digits' sizes their range."""
    check_source_fields(config.data, {"annotations": ("coco_json",), "images": ("coco_json",),
                                      "data_dir": ("tfds",)})
    c = config
    s = stride(c.model.stages)
    if c.data.image_size % s:
        raise UserError(f"config.data.image_size = {c.data.image_size}: expected a multiple "
                        f"of {s}, the stride of config.model.stages = {c.model.stages}")
    if c.model.anchors and len(c.model.anchors) != c.model.num_anchors:
        raise UserError(f"config.model.anchors has {len(c.model.anchors)} anchors: expected "
                        f"config.model.num_anchors = {c.model.num_anchors} (or () for k-means)")
    if c.data.digits.min_size > c.data.digits.max_size:
        raise UserError(f"config.data.digits.min_size = {c.data.digits.min_size}: expected "
                        f"<= config.data.digits.max_size = {c.data.digits.max_size}")


def get_config(variant=""):
    config = common_config("detection")
    # --mode=tune's default search (apps.core.tune): Adam's learning rate (Adam
    # diverges above 0.1 here) and beta_1, and the backbone's width.
    config.tune.space = ("optimizer.learning_rate = log_uniform(1e-4, 1e-1); "
                         "optimizer.beta_1 = one_minus_log(0.8, 0.99); "
                         "model.width = choice(16, 32, 48)")

    config.data = ml_collections.ConfigDict()
    config.data.source = "digits"  # digits | tfds | coco_json
    config.data.name = ""  # TFDS name, for source=tfds (voc/2007, coco/2017, ...)
    config.data.data_dir = ""  # TFDS data_dir ('' = TFDS's default)
    config.data.tfds_splits = ("train", "validation", "test")  # train, val, test
    config.data.annotations = ""  # COCO-format JSON, for source=coco_json
    config.data.images = ""  # its image folder ('' = the JSON's folder)
    # COCO-JSON images are read as training goes; "memory" reads them all once.
    config.data.cache = "none"  # none | memory | a folder (decoded once to .npy files)
    config.data.split = (0.8, 0.1, 0.1)  # train, val, test of a coco_json set
    config.data.image_size = 96  # images are resized to image_size x image_size
    config.data.channels = 1
    config.data.max_boxes = 8  # boxes kept per image (the rest are dropped, with a warning)
    config.data.max_examples = 0  # per TFDS split; 0 = all
    config.data.invalid_boxes = "error"  # error | skip (and count) boxes outside / empty
    config.data.digits = ml_collections.ConfigDict()
    config.data.digits.scenes = (4000, 300, 500)  # train, val, test scenes
    config.data.digits.max_digits = 4
    config.data.digits.min_size = 14  # digit side in pixels, before the ink's tight box
    config.data.digits.max_size = 40
    config.data.digits.max_overlap = 0.1  # largest IoU between two digits of a scene
    config.data.augment = ml_collections.ConfigDict()
    config.data.augment.flip = False  # digits are not mirror-symmetric
    config.data.augment.scale = 0.2  # zoom in or out by up to 20%
    config.data.augment.translate = 0.1  # shift by up to 10% of the side
    config.data.augment.color = 0.0

    config.model = ml_collections.ConfigDict()
    config.model.stages = (2, 2)  # residual blocks per stage; stride 4 * 2**(stages - 1)
    config.model.width = 32  # filters of the first stage (doubling per stage)
    config.model.head_width = 128
    config.model.num_anchors = 3  # B
    # (w, h) pairs, normalized; () = k-means on the training boxes (the anchors
    # used are logged and kept in the export's `metadata` signature)
    config.model.anchors = ()

    config.loss = ml_collections.ConfigDict()
    config.loss.box = "squared"  # squared | iou | giou
    config.loss.obj_scale = 1.0
    config.loss.noobj_scale = 0.5  # no-object cells are down-weighted
    config.loss.coord_scale = 5.0
    config.loss.class_scale = 1.0
    config.loss.ignore_iou = 0.6  # no-object predictions overlapping a true box more are ignored

    config.decode = ml_collections.ConfigDict()  # the exported detector and --mode=predict
    config.decode.score_threshold = 0.6  # objectness x class probability, as the notes
    config.decode.iou_threshold = 0.5  # NMS
    config.decode.max_per_class = 20
    config.decode.max_detections = 100
    config.decode.pre_nms_top_k = 100  # candidates per class entering NMS

    config.eval = ml_collections.ConfigDict()
    config.eval.score_threshold = 0.01  # mAP integrates over scores, so keep low ones
    config.eval.images = 8  # validation images drawn in TensorBoard

    config.optimizer = optimizer_config("adam", learning_rate=2e-3, schedule="warmup_cosine")
    config.optimizer.warmup_epochs = 1.0
    config.optimizer.clipnorm = 10.0

    config.train.batch_size = 32
    config.train.epochs = 20
    config.train.checkpoint_every = 100

    # The diagnosis at the end of a run (apps.core.diagnosis): the error is 1 - mAP@0.5.
    config.diagnosis.metric = "map50"
    config.diagnosis.metric_is_error = False
    # Human level, an estimate: the boxes are exact by construction, so what a
    # person gets wrong is the digit, as in classification (2.37%, the human
    # error on USPS's digits, Chaaban & Scheessele 2007).
    config.diagnosis.human_level_error = 0.0237

    if variant == "tiny":
        config.data.image_size = 32
        config.data.digits.scenes = (64, 16, 16)
        config.diagnosis.train_dev_fraction = 0.0  # too few scenes to hold any out
        config.data.digits.max_digits = 2
        config.data.digits.min_size = 10
        config.data.digits.max_size = 16
        config.data.max_boxes = 4
        config.model.stages = (1, 1)
        config.model.width = 8
        config.model.head_width = 16
        config.model.num_anchors = 2
        config.train.batch_size = 16
        config.train.epochs = 2
        config.train.checkpoint_every = 3
        config.train.log_every = 2
        config.optimizer.warmup_epochs = 0.0
        config.eval.images = 2
    elif variant in ("voc", "coco"):
        config.data.source = "tfds"
        config.data.name = "voc/2007" if variant == "voc" else "coco/2017"
        # COCO's test split has no labels: validation is carved from train.
        config.data.tfds_splits = (("train", "validation", "test") if variant == "voc" else
                                   ("train[:95%]", "train[95%:]", "validation"))
        config.data.image_size = 256
        config.data.channels = 3
        config.data.max_boxes = 50 if variant == "voc" else 100
        config.diagnosis.human_level_error = None  # no human mAP published: set it
        config.data.augment.flip = True
        config.data.augment.color = 0.5
        config.model.stages = (2, 2, 2, 2)
        config.model.width = 32
        config.model.head_width = 256
        config.model.num_anchors = 5
        config.train.batch_size = 32
        config.train.epochs = 50
        config.train.checkpoint_every = 500
    elif variant == "coco_json":
        config.data.source = "coco_json"
        config.diagnosis.human_level_error = None  # your data: set it
        config.data.image_size = 256
        config.data.channels = 3
        config.data.max_boxes = 50
        config.data.augment.flip = True
        config.data.augment.color = 0.5
        config.model.stages = (2, 2, 2, 2)
        config.model.num_anchors = 5
        config.train.epochs = 50
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: '', tiny, voc, coco, coco_json")
    return config
