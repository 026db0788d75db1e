"""Content photographs for the fast stylizer, cut into random square crops.

    config.data.content_dir = ""      the embedded photographs (images.EMBEDDED)
                                      but the style image: chelsea for test,
                                      coffee for validation, the others train
                            = FOLDER  its image files (searched recursively),
                                      split by photograph with config.data.split

Each training photograph gives config.data.crops_per_image crops (each
validation / test photograph config.data.eval_crops_per_image) of a random
side between 35% and 100% of the photograph's short side, at a random place,
resized to config.data.crop_size: the augmentation by crops that lets a
handful of photographs train a stylizer. Crops are drawn once from the seed,
so every run (and every resume) sees the same ones. Splits hold the crops as
uint8 (N, crop, crop, 3); the targets are unused (the content is the input).
"""

import os

import numpy as np
from absl import logging

from apps.core.data import Split
from apps.core.errors import UserError
from apps.core.task import Data
from apps.style_transfer import images as images_lib

EMBEDDED_ORDER = ("chelsea", "coffee", "china", "flower", "astronaut", "rocket", "hubble",
                  "motorcycle", "ihc", "camera")


def load(config):
    """Data for --mode=train_fast, from config.data."""
    d = config.data
    rng = np.random.default_rng(config.seed)
    if d.content_dir:
        photos = folder_photos(d.content_dir, d.split, config.seed, d.max_images)
    else:
        names = [n for n in EMBEDDED_ORDER if n != d.style]
        photos = tuple([(n, lambda n=n: images_lib.embedded(n)) for n in part]
                       for part in (names[2:], names[1:2], names[:1]))
    counts = (d.crops_per_image, d.eval_crops_per_image, d.eval_crops_per_image)
    splits, skipped = [], 0
    for part, count, name in zip(photos, counts, ("train", "val", "test"), strict=True):
        crops = []
        for _name, loader in part:
            try:
                image = loader()
            except UserError as e:
                logging.warning("skipped %s", e)
                skipped += 1
                continue
            crops.extend(random_crops(image, count, d.crop_size, rng))
        if not crops:
            raise UserError(f"config.data.content_dir = {d.content_dir!r}: none of the "
                            f"{len(part)} photographs of the {name} split is a readable image "
                            f"of at least {images_lib.MIN_SIDE}x{images_lib.MIN_SIDE} pixels "
                            "(each is named in a warning)")
        crops = np.stack(crops)
        splits.append(Split(crops, np.zeros(len(crops), np.int64)))
    if skipped:
        logging.warning("skipped %d of the %d photographs in config.data.content_dir = %r "
                        "(named above)", skipped, sum(map(len, photos)), d.content_dir)
    return Data(*splits)


def folder_photos(root, fractions, seed, max_images=0):
    """(train, val, test) lists of (path, loader) from the image files under `root`."""
    if not os.path.isdir(root):
        raise UserError(f"config.data.content_dir = {root!r}: no such folder")
    files = sorted(os.path.join(top, f) for top, _, names in os.walk(root) for f in names
                   if f.lower().endswith(images_lib.IMAGE_EXTENSIONS))
    if len(files) < 3:
        raise UserError(f"config.data.content_dir = {root!r}: {len(files)} image files; "
                        f"expected at least 3 ({', '.join(images_lib.IMAGE_EXTENSIONS)})")
    files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    if max_images:
        files = files[:max_images]
    n_val = max(1, round(fractions[1] * len(files)))
    n_test = max(1, round(fractions[2] * len(files)))
    parts = (files[n_val + n_test:], files[:n_val], files[n_val:n_val + n_test])
    if not parts[0]:
        raise UserError(f"config.data.content_dir = {root!r}: too few images for a "
                        "training split")
    return tuple([(f, lambda f=f: images_lib.read_image(f, "config.data.content_dir file"))
                  for f in part] for part in parts)


def random_crops(image, count, size, rng):
    """`count` random square crops of `image` (uint8 H, W, 3), resized to `size`."""
    h, w = image.shape[:2]
    short = min(h, w)
    crops = []
    for _ in range(count):
        side = max(1, int(round(short * rng.uniform(0.35, 1.0))))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        crops.append(images_lib.resize(image[top:top + side, left:left + side], size, size))
    return crops
