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

from apps.core.data import MissingSplit, Split, load_tfds, stratified_split
from apps.core.images import image_folder
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
    splits = stratified_split(labels, config.data.split, config.seed)
    train, val, test = (Split(images[i], labels[i]) for i in splits)
    return Data(train, val, test), names


def digits():
    """scikit-learn's digits as uint8 images (1797, 8, 8, 1), labels, names."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int64), [str(n) for n in bunch.target_names]


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
