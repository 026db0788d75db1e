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
so every run (and every resume) sees the same ones. A split's inputs are a
column of crops (apps.core.columns) cut when a batch needs them, so a folder
of any size is never held in memory ("memory" in config.data.cache cuts them
all at the start); the targets are unused (the content is the input).
"""

import functools
import os

import numpy as np
from absl import logging

from apps.core.columns import Column
from apps.core.data import Split, cached
from apps.core.errors import UserError
from apps.core.images import image_files, shown_size
from apps.core.task import Data
from apps.style_transfer import images as images_lib

EMBEDDED_ORDER = ("chelsea", "coffee", "china", "flower", "astronaut", "rocket", "hubble",
                  "motorcycle", "ihc", "camera")


def load(config):
    """Data for --mode=train_fast, from config.data."""
    d = config.data
    if d.content_dir:
        photos = folder_photos(d.content_dir, d.split, config.seed, d.max_images)
    else:
        names = [n for n in EMBEDDED_ORDER if n != d.style]
        # The embedded photographs (a few, small) are decoded once, not for
        # every crop: the default config trains as fast as when crops were arrays.
        photos = tuple([(n, functools.cache(lambda n=n: images_lib.embedded(n))) for n in part]
                       for part in (names[2:], names[1:2], names[:1]))
    counts = (d.crops_per_image, d.eval_crops_per_image, d.eval_crops_per_image)
    splits = []
    for part, (photos_of_part, count) in enumerate(zip(photos, counts, strict=True)):
        crops = CropColumn(photos_of_part, count, d.crop_size, (config.seed, part))
        splits.append(cached(Split(crops, np.zeros(len(crops), np.int64)), d.cache))
    return Data(*splits)


class CropColumn(Column):
    """Crop c of photograph p at position p * count + c: a random square of a
    side between 35% and 100% of the photograph's short side, at a random place,
    resized to `size`, drawn from (seed, position) alone (so the same on every
    read, in every run)."""

    def __init__(self, photos, count, size, seed):
        """`photos`: (name, loader) pairs, loader() -> the photograph (uint8 H x W x 3)."""
        super().__init__(np.uint8, (size, size, 3), np.arange(len(photos) * count))
        self.names = [name for name, _ in photos]
        self.loaders = [loader for _, loader in photos]
        self.count, self.size, self.seed = count, size, seed

    def identity(self):
        return f"crops|{self.count}|{self.size}|{self.seed}|" + "\n".join(self.names)

    def _read(self, row):
        photo = self.loaders[row // self.count]()
        u = np.random.default_rng([*self.seed, int(row)]).uniform(size=3)
        return crop(photo, u, self.size)


def folder_photos(root, fractions, seed, max_images=0):
    """(train, val, test) lists of (path, loader) from the image files under `root`."""
    if not os.path.isdir(root):
        raise UserError(f"config.data.content_dir = {root!r}: no such folder")
    try:
        listed = image_files(root)
    except UserError:  # no image files: said below with what is expected
        listed = []
    files = []
    for path in listed:  # the headers only; the pixels are read as crops are cut
        try:
            width, height = shown_size(path)
            images_lib.check_sides(height, width, path)
            files.append(path)
        except UserError as e:
            logging.warning("skipped %s", e)
    if len(files) < len(listed):
        logging.warning("skipped %d of the %d photographs in config.data.content_dir = %r "
                        "(named above)", len(listed) - len(files), len(listed), root)
    if len(files) < 3:
        raise UserError(f"config.data.content_dir = {root!r}: {len(files)} readable image "
                        f"files of at least {images_lib.MIN_SIDE}x{images_lib.MIN_SIDE} "
                        f"pixels (of {len(listed)}); expected at least 3 "
                        f"({', '.join(images_lib.IMAGE_EXTENSIONS)})")
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


def crop(image, u, size):
    """The square crop of `image` (uint8 H, W, 3) that three uniform numbers `u`
    choose (its side in [35%, 100%] of the short side, its place), resized to `size`."""
    h, w = image.shape[:2]
    side = max(1, int(round(min(h, w) * (0.35 + 0.65 * u[0]))))
    top = min(int(u[1] * (h - side + 1)), h - side)
    left = min(int(u[2] * (w - side + 1)), w - side)
    return images_lib.resize(image[top:top + side, left:left + side], size, size)
