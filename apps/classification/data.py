"""Classification data: the embedded digits, TFDS by name, or an image folder.

    config.data.source = "digits"  scikit-learn's handwritten digits (1,797 real
                                   8x8 scans, 10 classes), shipped with scikit-learn
                       = "tfds"    config.data.name (mnist, fashion_mnist, cifar10, ...)
                                   prepared in config.data.data_dir
                       = "folder"  config.data.path/<class name>/<image files>
                       = "h5"      the course's HDF5 files: config.data.path (the
                                   training file, train_set_x / train_set_y /
                                   list_classes) and config.data.test_path

The digits are held in memory as uint8 (N, H, W, C). A folder, HDF5 files and
TFDS sets are read as training goes (apps.core.columns): the files are listed
(an image's header checked) at the start and each image decoded when a batch
needs it, so memory and start-up do not grow with the data set;
config.data.cache = "memory" reads them all once instead, a folder decodes them
once into .npy files.
"""

import numpy as np

from apps.core.columns import ExampleColumn, H5Column
from apps.core.data import Split, cached, stratified_split
from apps.core.errors import UserError
from apps.core.images import image_column, image_folder_files, read_image
from apps.core.task import Data
from apps.core.tfds_source import tfds_data


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
    """A prepared TFDS image classification set (mnist, cifar10, imagenet2012, ...),
    each image decoded when a batch needs it (apps.core.tfds_source)."""
    d = config.data
    names = None

    def make_split(source):
        nonlocal names
        names = names or _class_names(source, d.name)
        image_key, label_key = source.supervised_keys
        images = ExampleColumn(
            source, lambda example: read_image(example[image_key], d.image_size, d.channels),
            np.uint8, (d.image_size, d.image_size, d.channels),
            decoding=f"read_image {d.image_size} {d.channels}")
        labels = ExampleColumn(source, lambda example: _label(example[label_key], names),
                               np.int64, (), decoding="label")
        return Split(images, labels)

    return Data(*(cached(split, d.cache)
                  for split in tfds_data(d, config.seed, make_split))), names


def _label(label, names):
    if not 0 <= label < len(names):
        raise UserError(f"label {label} is outside its {len(names)} classes "
                        f"(0..{len(names) - 1})")
    return label


def _class_names(source, name):
    """The class names of a TFDS image classification set; UserError for any other kind."""
    import tensorflow_datasets as tfds

    keys = source.supervised_keys
    if not keys or not all(isinstance(key, str) for key in keys):
        raise UserError(f"config.data.name = {name!r}: not an (image, label) data set "
                        "(expected supervised keys, as mnist or cifar10 have)")
    image, label = (source.features[key] for key in keys)
    if not isinstance(image, tfds.features.Image):
        raise UserError(f"config.data.name = {name!r}: its inputs are "
                        f"{type(image).__name__}, expected images (height, width, channels)")
    if not isinstance(label, tfds.features.ClassLabel):
        raise UserError(f"config.data.name = {name!r}: its labels are not classes (expected "
                        "a ClassLabel feature, as mnist or cifar10 have)")
    return list(label.names)
