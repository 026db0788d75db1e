"""Classification data: the embedded digits, TFDS by name, or an image folder.

    config.data.source = "digits"  scikit-learn's handwritten digits (1,797 real
                                   8x8 scans, 10 classes), shipped with scikit-learn
                       = "tfds"    config.data.name (mnist, fashion_mnist, cifar10, ...)
                                   prepared in config.data.data_dir
                       = "folder"  config.data.path/<class name>/<image files>

Images are held in memory as uint8 (N, H, W, C); the digits stay 8x8 and the
others are resized to config.data.image_size on load.
"""

import os

import numpy as np
from absl import logging
from PIL import Image

from apps.core.data import MissingSplit, Split, load_tfds, stratified_split
from apps.core.errors import UserError
from apps.core.task import Data

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load(config):
    """Returns (Data, class_names) for config.data."""
    source = config.data.source
    if source == "digits":
        images, labels, names = digits()
    elif source == "folder":
        images, labels, names = image_folder(config.data.path, config.data.image_size,
                                             config.data.channels)
    else:
        return _tfds(config)
    splits = stratified_split(labels, config.data.split, config.seed)
    train, val, test = (Split(images[i], labels[i]) for i in splits)
    return Data(train, val, test), names


def digits():
    """scikit-learn's digits as uint8 images (1797, 8, 8, 1), labels, names."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int64), [str(n) for n in bunch.target_names]


def image_folder(root, image_size, channels):
    """One sub-folder per class (its name is the class name), images inside.

    Unreadable images are skipped with a warning naming the file.
    """
    if not root:
        raise UserError("config.data.path is empty: give the folder with one "
                        "sub-folder per class")
    if not os.path.isdir(root):
        raise UserError(f"config.data.path = {root!r}: no such folder")
    names = sorted(d for d in os.listdir(root)
                   if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if len(names) < 2:
        raise UserError(f"config.data.path = {root!r}: expected one sub-folder per class "
                        f"(at least 2), found {len(names)}")
    images, labels, skipped = [], [], 0
    for label, name in enumerate(names):
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        count = 0
        for file in files:
            path = os.path.join(folder, file)
            try:
                images.append(read_image(path, image_size, channels))
            except UserError as e:
                logging.warning("skipped %s", e)
                skipped += 1
                continue
            labels.append(label)
            count += 1
        if count == 0:
            raise UserError(f"{folder}: no readable images ({', '.join(IMAGE_EXTENSIONS)})")
    if skipped:
        logging.warning("%d unreadable image(s) skipped in %s", skipped, root)
    return np.stack(images), np.asarray(labels, np.int64), names


def read_image(path, image_size=None, channels=3):
    """One image file -> uint8 (H, W, channels), resized when `image_size` is given."""
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image_size:
                image = image.resize((image_size, image_size), Image.BILINEAR)
            array = np.asarray(image, np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not a readable image ({e})") from None
    return array.reshape(array.shape[0], array.shape[1], channels)


def _tfds(config):
    import tensorflow as tf

    name, data_dir = config.data.name, config.data.data_dir
    size, channels = config.data.image_size, config.data.channels

    def arrays(split):
        ds, info = load_tfds(name, data_dir, split, as_supervised=True)
        if config.data.max_examples:
            ds = ds.take(config.data.max_examples)

        def prepare(image, label):
            image = tf.image.resize(image, (size, size), antialias=True)
            if channels == 1 and image.shape[-1] == 3:
                image = tf.image.rgb_to_grayscale(image)
            elif channels == 3 and image.shape[-1] == 1:
                image = tf.image.grayscale_to_rgb(image)
            return tf.cast(tf.round(tf.clip_by_value(image, 0, 255)), tf.uint8), label

        images, labels = [], []
        for image, label in ds.map(prepare).batch(1024).as_numpy_iterator():
            images.append(image)
            labels.append(label)
        return np.concatenate(images), np.concatenate(labels).astype(np.int64), info

    images, labels, info = arrays("train")
    names = list(info.features["label"].names)
    try:
        test = Split(*arrays("test")[:2])
    except MissingSplit:
        splits = stratified_split(labels, config.data.split, config.seed)
        return Data(*(Split(images[i], labels[i]) for i in splits)), names
    # The data set's own test split is kept; validation is carved from train.
    train_frac, val_frac, _ = config.data.split
    train_idx, val_idx = stratified_split(labels, (train_frac, val_frac), config.seed)
    return Data(Split(images[train_idx], labels[train_idx]),
                Split(images[val_idx], labels[val_idx]), test), names
