"""Neural style transfer: the optimisation method and a fast feed-forward stylizer.

    # the optimisation method (Gatys et al.) on the embedded photographs
    python -m apps.style_transfer --config=configs/style_transfer.py --workdir=runs/style_transfer
    # your own images
    python -m apps.style_transfer --config=configs/style_transfer.py --workdir=runs/mine \\
        --content=photo.jpg --style=painting.jpg
    # the fast stylizer for one style, trained on a folder of content photographs
    python -m apps.style_transfer --config=configs/style_transfer.py --workdir=runs/fast \\
        --mode=train_fast [--content=FOLDER] [--style=painting.jpg]
    python -m apps.style_transfer --config=configs/style_transfer.py --workdir=runs/fast \\
        --mode=predict --input=photo.jpg

Variants (after the colon): "" (default: under a minute on a 2-core CPU for
the optimisation method, about 3 minutes for train_fast), "tiny" (seconds; what the tests use), "vgg19"
(VGG19 with the course's settings; needs its ImageNet weights cached or
reachable, or --config.extractor.weights=FILE).
"""

import ml_collections

from apps.core import optim
from apps.core.config import (
    Rule,
    boolean,
    common_config,
    data_cache,
    fractions_summing_to_one,
    int_in,
    non_negative_float,
    non_negative_int,
    one_of,
    positive_int,
)
from apps.core.optim import optimizer_config
from apps.style_transfer.images import EMBEDDED

STYLE_LAYERS = (("block1_conv1", 0.2), ("block2_conv1", 0.2), ("block3_conv1", 0.2),
                ("block4_conv1", 0.2), ("block5_conv1", 0.2))



def _style_layers(value):
    return len(value) > 0 and all(
        len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], (int, float))
        and item[1] >= 0 for item in value)


def _widths(value):
    return len(value) == 5 and all(isinstance(v, int) and v > 0 for v in value)


_AN_IMAGE = Rule(lambda v: isinstance(v, str) and v,
                 f"an image file or an embedded name ({', '.join(sorted(EMBEDDED))})")

# What each field must hold (apps.core.config.check). config.optimize.optimizer
# is an optimizer config like config.optimizer, under the same rules.
RULES = {
    "data.content": _AN_IMAGE,
    "data.style": _AN_IMAGE,
    "data.image_size": int_in(32, 4096),
    "data.keep_aspect": boolean,
    "data.content_dir": Rule(lambda v: isinstance(v, str), "a folder path or ''"),
    "data.cache": data_cache,
    "data.crop_size": Rule(lambda v: isinstance(v, int) and v >= 16 and v % 4 == 0,
                           "an integer >= 16 and a multiple of 4"),
    "data.crops_per_image": positive_int,
    "data.eval_crops_per_image": positive_int,
    "data.split": fractions_summing_to_one,
    "data.max_images": non_negative_int,
    "extractor.weights": Rule(lambda v: isinstance(v, str) and v,
                              "'imagenet', 'random' or a VGG19 weights file"),
    "extractor.download": boolean,
    "extractor.fallback": boolean,
    "extractor.preprocess": one_of("none", "caffe"),
    "extractor.random_widths": Rule(_widths, "five channel counts > 0, one per block"),
    "extractor.seed": non_negative_int,
    "cost.alpha": non_negative_float,
    "cost.beta": non_negative_float,
    "cost.content_layer": Rule(lambda v: isinstance(v, str) and v,
                               "a layer name, e.g. 'block4_conv2'"),
    "cost.style_layers": Rule(_style_layers, "(layer name, weight >= 0) pairs, e.g. "
                              "(('block1_conv1', 0.2), ...)"),
    "cost.tv_weight": non_negative_float,
    "cost.tv_kind": one_of("absolute", "squared"),
    "optimize.steps": positive_int,
    "optimize.noise": Rule(lambda v: isinstance(v, (int, float)) and 0 <= v <= 1,
                           "a number in [0, 1]"),
    "optimize.image_every": positive_int,
    **{f"optimize.{field}": rule for field, rule in optim.RULES.items()},
    "model.width": Rule(lambda v: isinstance(v, (int, float)) and 0 < v <= 4,
                        "a number in (0, 4]"),
    "model.residual_blocks": non_negative_int,
}


def get_config(variant=""):
    config = common_config("style_transfer")
    # --mode=tune's default search (apps.core.tune) trains fast stylizers (the
    # optimisation method has no validation split): the learning rate and the
    # style weight beta, for the lowest validation total cost.
    config.tune.mode = "train_fast"
    config.tune.metric = "total_cost"
    config.tune.direction = "minimize"
    config.tune.space = ("optimizer.learning_rate = log_uniform(1e-4, 1e-2); "
                         "cost.beta = log_uniform(5, 200)")

    # Images: a file path or an embedded name (apps/style_transfer/images.py);
    # --content / --style override content / style (--content: content_dir with
    # --mode=train_fast); eval, export and predict use the run's (its config.json).
    config.data = ml_collections.ConfigDict()
    config.data.content = "chelsea"  # scikit-image's cat
    config.data.style = "flower"  # scikit-learn's dahlia: orange petals on dark green
    config.data.image_size = 256  # long side of the generated image (optimisation)
    config.data.keep_aspect = True  # False: square image_size x image_size
    # --mode=train_fast: content photographs, cut into random crops
    config.data.content_dir = ""  # a folder of photographs ('' = the embedded ones)
    # The crops are cut from the photographs as batches need them; "memory" cuts
    # them all at the start.
    config.data.cache = "none"  # none | memory | a folder (decoded once to .npy files)
    config.data.crop_size = 128  # training crops (and the style image) are this square size
    config.data.crops_per_image = 32  # random crops taken from each training photograph
    config.data.eval_crops_per_image = 4  # ... from each validation / test photograph
    config.data.split = (0.8, 0.1, 0.1)  # photographs of a content_dir: train, val, test
    config.data.max_images = 0  # at most this many photographs of content_dir (0 = all)

    config.extractor = ml_collections.ConfigDict()
    config.extractor.weights = "imagenet"  # imagenet | random | PATH (see extractor.py)
    config.extractor.download = True  # imagenet: download when not cached and reachable
    config.extractor.fallback = True  # imagenet unavailable: the random encoder (else an error)
    config.extractor.preprocess = "none"  # VGG19 input: none ([0, 1], the course's) | caffe
    config.extractor.random_widths = (32, 64, 128, 128, 128)  # the embedded encoder's blocks
    config.extractor.seed = 0  # the embedded encoder's filters

    # J(G) = alpha J_content + beta J_style + tv_weight TV(G)
    config.cost = ml_collections.ConfigDict()
    config.cost.alpha = 10.0
    config.cost.beta = 40.0
    config.cost.content_layer = "block4_conv2"
    config.cost.style_layers = STYLE_LAYERS
    config.cost.tv_weight = 3e-5
    config.cost.tv_kind = "absolute"  # absolute | squared

    # --mode=train: the optimisation of the generated image
    config.optimize = ml_collections.ConfigDict()
    config.optimize.steps = 300
    config.optimize.noise = 0.25  # G starts at clip(C + uniform(-noise, noise))
    config.optimize.image_every = 50  # steps between saved images
    config.optimize.optimizer = optimizer_config("adam", learning_rate=0.02)

    # --mode=train_fast: the transformation network (Johnson et al., 2016)
    config.model = ml_collections.ConfigDict()
    config.model.width = 0.5  # channels: 32, 64, 128 times width
    config.model.residual_blocks = 5
    config.optimizer = optimizer_config("adam", learning_rate=1e-3, schedule="warmup_cosine")
    config.optimizer.warmup_epochs = 0.25

    config.train.batch_size = 4
    config.train.epochs = 6  # 53 steps each on the embedded crops (11 more are train-dev)
    config.train.checkpoint_every = 50  # steps (both modes)
    config.train.log_every = 10

    # The diagnosis of a train_fast run (apps.core.diagnosis) on its total cost
    # (already an error; no human level). --mode=train optimizes one image: none.
    config.diagnosis.metric = "total_cost"
    config.diagnosis.metric_is_error = True
    config.diagnosis.human_level_error = None

    if variant == "tiny":
        config.data.image_size = 48
        config.data.crop_size = 32
        config.data.crops_per_image = 2
        config.data.eval_crops_per_image = 1
        config.extractor.weights = "random"
        config.extractor.random_widths = (8, 8, 16, 16, 16)
        config.optimize.steps = 6
        config.optimize.image_every = 3
        config.model.width = 0.125
        config.model.residual_blocks = 1
        config.train.epochs = 1
        config.optimizer.warmup_epochs = 0.0
        config.train.checkpoint_every = 3
        config.train.log_every = 2
    elif variant == "vgg19":  # the course's choices; no fallback to the random encoder
        config.extractor.weights = "imagenet"
        config.extractor.fallback = False
        config.cost.content_layer = "block5_conv4"
        config.optimize.optimizer.learning_rate = 0.01
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: '', tiny, vgg19")
    return config
