"""Classification data: the embedded digits, TFDS by name, or an image folder.

    config.data.source = "digits"  scikit-learn's handwritten digits (1,797 real
                                   8x8 scans, 10 classes), shipped with scikit-learn
                       = "tfds"    config.data.name (mnist, fashion_mnist, cifar10, ...)
                                   prepared in config.data.data_dir
                       = "folder"  config.data.path/<class name>/<image files>

Images are held in memory as uint8 (N, H, W, C); the digits stay 8x8 and the
others are resized to config.data.image_size on load.
"""

import numpy as np
import tensorflow as tf

from apps.core.data import MissingSplit, Split, decode_all, load_tfds, stratified_split
from apps.core.errors import UserError
from apps.core.images import image_folder, prepare_image
from apps.core.task import Data


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
    where = "digits" if source == "digits" else f"config.data.path = {config.data.path!r}"
    splits = _nonempty(stratified_split(labels, config.data.split, config.seed), where,
                       config.data.split)
    train, val, test = (Split(images[i], labels[i]) for i in splits)
    return Data(train, val, test), names


def _nonempty(splits, where, fractions):
    """The split indices, or a UserError when the data are too few to fill every split."""
    names = ("train", "val", "test")[:len(splits)]
    empty = [name for name, part in zip(names, splits, strict=True) if not len(part)]
    if empty:
        total = sum(len(part) for part in splits)
        raise UserError(f"{where}: {total} examples are too few for config.data.split = "
                        f"{tuple(fractions)} (the {' and '.join(empty)} split would be empty); "
                        "expected at least 3 per class")
    return splits


def digits():
    """scikit-learn's digits as uint8 images (1797, 8, 8, 1), labels, names."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int64), [str(n) for n in bunch.target_names]


def _tfds(config):
    name, data_dir = config.data.name, config.data.data_dir
    size, channels = config.data.image_size, config.data.channels

    def arrays(split):
        ds, info = load_tfds(name, data_dir, split, as_supervised=True)
        names = _class_names(ds, info, name)
        if config.data.max_examples:
            ds = ds.take(config.data.max_examples)

        def prepare(image, label):  # resized, channels converted, back to uint8
            image = prepare_image(image, size, channels) * 255.0
            return tf.cast(tf.round(image), tf.uint8), label

        images, labels = decode_all(
            ds, prepare, f"TFDS data set {name!r} split {split!r}", batch_size=1024)
        labels = labels.astype(np.int64)
        bad = labels[(labels < 0) | (labels >= len(names))]
        if len(bad):
            raise UserError(f"TFDS data set {name!r} split {split!r}: label {bad[0]} is "
                            f"outside its {len(names)} classes (0..{len(names) - 1})")
        return images, labels, names

    images, labels, names = arrays("train")
    try:
        test = Split(*arrays("test")[:2])
    except MissingSplit:
        splits = _nonempty(stratified_split(labels, config.data.split, config.seed),
                           f"TFDS data set {name!r}", config.data.split)
        return Data(*(Split(images[i], labels[i]) for i in splits)), names
    # The data set's own test split is kept; validation is carved from train.
    train_frac, val_frac, _ = config.data.split
    train_idx, val_idx = _nonempty(stratified_split(labels, (train_frac, val_frac), config.seed),
                                   f"TFDS data set {name!r}", config.data.split)
    return Data(Split(images[train_idx], labels[train_idx]),
                Split(images[val_idx], labels[val_idx]), test), names


def _class_names(ds, info, name):
    """The class names of a TFDS image classification set; UserError for any other kind."""
    image, label = ds.element_spec
    if not isinstance(image, tf.TensorSpec) or image.shape.rank != 3:
        raise UserError(f"config.data.name = {name!r}: its inputs are {image}, expected "
                        "images (height, width, channels)")
    if not image.dtype.is_integer and not image.dtype.is_floating:
        raise UserError(f"config.data.name = {name!r}: its images are {image.dtype.name}, "
                        "expected numbers (uint8 pixels)")
    keys = info.supervised_keys or (None, None)
    feature = info.features[keys[1]] if isinstance(keys[1], str) else None
    names = getattr(feature, "names", None)
    if not names or not isinstance(label, tf.TensorSpec) or not label.dtype.is_integer:
        raise UserError(f"config.data.name = {name!r}: its labels are not classes (expected "
                        "a ClassLabel feature, as mnist or cifar10 have)")
    return list(names)
