"""Classification data: the embedded digits, TFDS by name, or an image folder.

    config.data.source = "digits"  scikit-learn's handwritten digits (1,797 real
                                   8x8 scans, 10 classes), shipped with scikit-learn
                       = "tfds"    config.data.name (mnist, fashion_mnist, cifar10, ...)
                                   prepared in config.data.data_dir
                       = "folder"  config.data.path/<class name>/<image files>
                       = "h5"      the course's HDF5 files: config.data.path (the
                                   training file, train_set_x / train_set_y /
                                   list_classes) and config.data.test_path

The digits and TFDS images are held in memory as uint8 (N, H, W, C). A folder
and HDF5 files are read as training goes (apps.core.columns): the files are
listed (an image's header checked) at the start and each image decoded when a
batch needs it, so memory and start-up do not grow with the data set;
config.data.cache = "memory" reads them all once instead.
"""

import numpy as np
import tensorflow as tf

from apps.core.columns import H5Column
from apps.core.data import (
    MissingSplit,
    Split,
    cached,
    decode_all,
    load_tfds,
    stratified_split,
)
from apps.core.errors import UserError
from apps.core.images import image_column, image_folder_files, prepare_image
from apps.core.task import Data


def load(config):
    """Returns (Data, class_names) for config.data."""
    source, d = config.data.source, config.data
    if source == "digits":
        images, labels, names = digits()
    elif source == "folder":
        paths, labels, names = image_folder_files(d.path)
        images = image_column(paths, d.image_size, d.channels)
    elif source == "h5":
        return _h5(config)
    else:
        return _tfds(config)
    where = "digits" if source == "digits" else f"config.data.path = {d.path!r}"
    splits = _nonempty(stratified_split(labels, d.split, config.seed), where, d.split)
    split = Split(images, labels)
    return Data(*(cached(split.take(i), d.cache) for i in splits)), names


def _h5(config):
    """The course's HDF5 files: train_set_x (N, H, W, C) uint8 images, train_set_y
    labels and list_classes in config.data.path; test_set_x / test_set_y (and
    list_classes) in config.data.test_path. Validation is carved from train."""
    d = config.data

    def read(path, part):
        if not path:
            raise UserError(f"config.data.{'path' if part == 'train' else 'test_path'} is "
                            f"empty: give the HDF5 file with {part}_set_x and {part}_set_y")
        images, labels = H5Column(path, f"{part}_set_x"), H5Column(path, f"{part}_set_y")
        if len(images.value_shape) != 3 or images.value_shape[-1] not in (1, 3):
            raise UserError(f"{path}: {part}_set_x holds values of shape {images.value_shape}, "
                            "expected images (height, width, 1 or 3 channels)")
        if len(labels) != len(images):
            raise UserError(f"{path}: {len(images)} images in {part}_set_x but {len(labels)} "
                            f"labels in {part}_set_y")
        return images, labels.materialize().reshape(-1).astype(np.int64)

    images, labels = read(d.path, "train")
    names = h5_class_names(d.path, labels)
    test_images, test_labels = read(d.test_path, "test")
    bad = np.concatenate([labels, test_labels])
    bad = bad[(bad < 0) | (bad >= len(names))]
    if len(bad):
        raise UserError(f"{d.path}: label {bad[0]} outside its {len(names)} classes "
                        f"(list_classes)")
    train_frac, val_frac, _ = d.split
    train_idx, val_idx = _nonempty(stratified_split(labels, (train_frac, val_frac), config.seed),
                                   f"config.data.path = {d.path!r}", d.split)
    train = Split(images, labels)
    return Data(cached(train.take(train_idx), d.cache), cached(train.take(val_idx), d.cache),
                cached(Split(test_images, test_labels), d.cache)), names


def h5_class_names(path, labels):
    """The class names of list_classes (bytes decoded), or the label values as names."""
    import h5py

    with h5py.File(path, "r") as f:
        if "list_classes" in f:
            return [c.decode() if isinstance(c, bytes) else str(c) for c in f["list_classes"][:]]
    return [str(c) for c in range(int(labels.max()) + 1)]


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
