"""Face recognition: triplet-loss embeddings, one-shot verification and identification.

    python -m apps.face_recognition --config=configs/face_recognition.py --workdir=runs/faces
    python -m apps.face_recognition --config=configs/face_recognition.py --workdir=runs/faces \\
        --mode=enroll --gallery=my_people/
    python -m apps.face_recognition --config=configs/face_recognition.py --workdir=runs/faces \\
        --mode=identify --input=face.jpg
    python -m apps.face_recognition --config=configs/face_recognition.py --workdir=runs/faces \\
        --mode=verify --input=face.jpg --identity=ada

Variants (after the colon): "" (default: a ResNet embedding on 1,000 synthetic
people, split 850 / 50 / 100 by person; about 11 minutes on a busy 2-core CPU),
"tiny" (seconds; what the tests use), "lfw" (TFDS `lfw` by name; set
--config.data.data_dir), "folder" (set --config.data.path to a folder with one
sub-folder per person, the LFW layout).
"""

import ml_collections

from apps.core.config import (
    AUGMENT_RULES,
    Rule,
    augment_config,
    check_source_fields,
    common_config,
    data_cache,
    fractions_summing_to_one,
    int_in,
    non_negative_int,
    one_of,
    positive_fraction,
    positive_int,
    probability,
)
from apps.core.errors import UserError
from apps.core.optim import optimizer_config
from apps.face_recognition.model import BACKBONES
from layers.losses import MINING_MODES

# What each field must hold (apps.core.config.check), the image augmentation's too.
RULES = {
    **AUGMENT_RULES,
    "data.source": one_of("synthetic", "tfds", "folder"),
    "data.split": fractions_summing_to_one,
    "data.image_size": int_in(8, 512),
    "data.channels": one_of(1, 3),
    "data.crop": positive_fraction,
    "data.cache": data_cache,
    "data.min_images": int_in(2, 1_000_000),
    "data.max_examples": non_negative_int,
    "data.synthetic.num_identities": int_in(6, 1_000_000),
    "data.synthetic.images_per_identity": int_in(2, 10_000),
    "data.synthetic.seed": non_negative_int,
    "data.synthetic.variation": Rule(lambda v: 0 <= v <= 2, "a number in [0, 2]"),
    "model.backbone": one_of(*BACKBONES),
    "model.width": int_in(2, 512),
    "model.blocks": Rule(lambda v: len(v) >= 1 and all(isinstance(b, int) and b >= 1 for b in v),
                         "a tuple of block counts >= 1, one per stage"),
    "model.embedding_dim": int_in(2, 4096),
    "model.dropout": probability,
    "loss.margin": Rule(lambda v: 0 <= v <= 4, "a number in [0, 4]"),
    "loss.mining": one_of(*MINING_MODES),
    "loss.distance": one_of("squared_l2", "l2"),
    "train.images_per_identity": int_in(2, 1024),
    "eval.pairs": positive_int,
    "eval.initial_threshold": Rule(lambda v: 0 < v <= 2, "a number in (0, 2]"),
    "eval.far": positive_fraction,
    "eval.batch_size": positive_int,
    "eval.projector_images": non_negative_int,
}


def check(config):
    """The checks across fields: a batch is P people x K images."""
    check_source_fields(config.data, {"path": ("folder",), "data_dir": ("tfds",)})
    batch, k = config.train.batch_size, config.train.images_per_identity
    if batch % k:
        raise UserError(f"config.train.batch_size = {batch} must be a multiple of "
                        f"config.train.images_per_identity = {k} (P people x K images)")


def get_config(variant=""):
    config = common_config("face_recognition")
    # --mode=tune's default search (apps.core.tune): Adam's learning rate, the
    # triplet margin alpha and dropout.
    config.tune.space = ("optimizer.learning_rate = log_uniform(1e-4, 1e-1); "
                         "loss.margin = uniform(0.05, 0.5); model.dropout = uniform(0, 0.3)")

    config.data = ml_collections.ConfigDict()
    config.data.source = "synthetic"  # synthetic | tfds | folder
    config.data.name = "lfw"  # TFDS name, for source=tfds
    config.data.data_dir = ""  # TFDS data_dir ('' = TFDS's default)
    config.data.image_key = "image"  # TFDS feature names
    config.data.label_key = "label"
    config.data.path = ""  # for source=folder: <path>/<person>/<images>
    # A folder is read as training goes; "memory" reads it all once at the start.
    config.data.cache = "none"  # none | memory | a folder (decoded once to .npy files)
    config.data.split = (0.85, 0.05, 0.1)  # fractions of the *people*: train, val, test
    config.data.image_size = 32
    config.data.channels = 3
    config.data.crop = 1.0  # keep the central fraction of each image (LFW: about 0.5)
    config.data.min_images = 2  # people with fewer images are left out
    config.data.max_examples = 0  # TFDS: read at most this many images; 0 = all
    config.data.synthetic = ml_collections.ConfigDict()
    config.data.synthetic.num_identities = 1000  # 850 train, 50 validation, 100 test people
    config.data.synthetic.images_per_identity = 10
    config.data.synthetic.seed = 1234  # the data set is fixed, whatever config.seed is
    config.data.synthetic.variation = 1.0  # pose, expression, lighting, noise (0 = none)
    config.data.augment = augment_config(flip=True, shift=0.05, rotation=5.0, color=0.2)

    config.model = ml_collections.ConfigDict()
    config.model.backbone = "resnet"  # resnet | inception (apps.core.backbones)
    config.model.width = 16  # filters of the first stage
    config.model.blocks = (2, 2, 2)  # resnet: residual blocks per stage
    config.model.embedding_dim = 128
    config.model.dropout = 0.0

    config.loss = ml_collections.ConfigDict()
    config.loss.margin = 0.2  # alpha
    config.loss.mining = "semi_hard"  # semi_hard | hard | all
    config.loss.distance = "squared_l2"  # squared_l2 | l2

    config.optimizer = optimizer_config("adam", learning_rate=3e-3, schedule="warmup_cosine")
    config.optimizer.warmup_epochs = 1.0

    config.train.batch_size = 64  # P people x K images
    config.train.images_per_identity = 4  # K
    config.train.epochs = 20
    config.train.checkpoint_every = 100

    config.eval = ml_collections.ConfigDict()
    config.eval.pairs = 3000  # same-person pairs (and as many different-person pairs)
    config.eval.initial_threshold = 0.7  # the notes' starting value; breaks ties
    config.eval.far = 0.01  # TAR is reported at this false accept rate
    config.eval.batch_size = 256
    config.eval.projector_images = 500  # test faces in TensorBoard's projector; 0 = none

    # The diagnosis at the end of a run (apps.core.diagnosis): the error is
    # 1 - verification accuracy; train-dev holds unseen images of the training
    # people, dev new people (so data mismatch is the open-set gap).
    config.diagnosis.metric = "verification_accuracy"
    config.diagnosis.metric_is_error = False
    # Drawn faces (each person's traits drawn apart): taken as 0, not measured.
    config.diagnosis.human_level_error = 0.0

    if variant == "tiny":
        config.data.synthetic.num_identities = 30
        config.data.synthetic.images_per_identity = 4
        config.data.image_size = 16
        config.data.split = (0.6, 0.2, 0.2)
        config.model.width = 8
        config.model.blocks = (1, 1)
        config.model.embedding_dim = 16
        config.train.batch_size = 16
        config.train.epochs = 2
        config.train.checkpoint_every = 2
        config.train.log_every = 2
        config.optimizer.warmup_epochs = 0.0
        config.eval.pairs = 200
        config.eval.projector_images = 24
    elif variant in ("lfw", "folder"):
        config.data.source = "tfds" if variant == "lfw" else "folder"
        config.data.image_size = 64
        config.data.crop = 0.5 if variant == "lfw" else 1.0
        # LFW: people verify tightly cropped faces at 97.53% (Kumar et al., ICCV 2009).
        config.diagnosis.human_level_error = 0.0247 if variant == "lfw" else None
        config.model.width = 32
        config.model.blocks = (2, 2, 2, 2)
        config.train.batch_size = 128
        config.train.epochs = 60
        config.train.checkpoint_every = 500
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: '', tiny, lfw, folder")
    return config
