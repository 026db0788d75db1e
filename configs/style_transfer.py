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

from apps.core.config import common_config
from apps.core.optim import optimizer_config

STYLE_LAYERS = (("block1_conv1", 0.2), ("block2_conv1", 0.2), ("block3_conv1", 0.2),
                ("block4_conv1", 0.2), ("block5_conv1", 0.2))


def get_config(variant=""):
    config = common_config("style_transfer")

    # Images: a file path or an embedded name (apps/style_transfer/images.py);
    # --content / --style override content / style.
    config.data = ml_collections.ConfigDict()
    config.data.content = "chelsea"  # scikit-image's cat
    config.data.style = "flower"  # scikit-learn's dahlia: orange petals on dark green
    config.data.image_size = 256  # long side of the generated image (optimisation)
    config.data.keep_aspect = True  # False: square image_size x image_size
    # --mode=train_fast: content photographs, cut into random crops
    config.data.content_dir = ""  # a folder of photographs ('' = the embedded ones)
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
    config.train.epochs = 6  # 56 steps each on the embedded crops
    config.train.checkpoint_every = 50  # steps (both modes)
    config.train.log_every = 10

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
