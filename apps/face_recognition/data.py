"""Face data: synthetic faces, TFDS `lfw` by name, or a folder per person.

    config.data.source = "synthetic"  generated faces (apps.face_recognition.synth),
                                      config.data.synthetic.* sets how many
                       = "tfds"       config.data.name (lfw) prepared in config.data.data_dir
                       = "folder"     config.data.path/<person name>/<image files> (LFW layout)

The split is by identity (open set): the people of the validation and test
splits are never seen in training. People with fewer than
config.data.min_images images are left out (a person needs two images for a
same-person pair). Faces are assumed cropped; config.data.crop keeps the
central fraction of each image first (LFW's faces fill about the central
half). Synthetic faces are held in memory as uint8 (N, size, size, channels);
a folder's and a TFDS set's are decoded when a batch needs them. The targets
are int64 identity ids indexing the returned names.
"""


import numpy as np
from absl import logging

from apps.core.columns import ExampleColumn
from apps.core.data import Split, cached
from apps.core.errors import UserError
from apps.core.images import image_column, image_folder_files, read_image
from apps.core.task import Data
from apps.core.tfds_source import TFDSSource
from apps.face_recognition import synth


def load(config):
    """Returns (Data, names): the three identity-disjoint splits and every person's name."""
    d = config.data
    if d.source == "synthetic":
        s = d.synthetic
        images, labels = synth.faces(s.num_identities, s.images_per_identity, d.image_size,
                                     seed=s.seed, variation=s.variation)
        if d.channels == 1:
            images = _to_grey(images)
        names = [f"person_{i:04d}" for i in range(s.num_identities)]
    elif d.source == "folder":
        paths, labels, names = image_folder_files(d.path)
        images = image_column(paths, d.image_size, d.channels, d.crop)
    else:
        images, labels, names = _tfds(config)
    people, counts = np.unique(labels, return_counts=True)
    eligible = int((counts >= d.min_images).sum())
    if eligible < len(people):
        logging.warning("left out %d of %d people with fewer than %d images "
                        "(config.data.min_images)", len(people) - eligible, len(people),
                        d.min_images)
    if eligible < 6:
        raise UserError(f"{_source(config)}: {eligible} of {len(people)} people have at least "
                        f"{d.min_images} images (config.data.min_images); expected at least "
                        "6 such people, 2 for each of the training, validation and test "
                        "splits")
    parts = split_identities(labels, d.split, config.seed, d.min_images)
    everyone = Split(images, labels)
    train, val, test = (cached(everyone.take(i), d.cache) for i in parts)
    for name, split in (("train", train), ("validation", val), ("test", test)):
        people = len(np.unique(split.targets))
        if people < 2:
            raise UserError(f"config.data.split = {tuple(d.split)}: the {name} split has "
                            f"{people} {'person' if people == 1 else 'people'} with >= "
                            f"{d.min_images} images; expected at least 2 (other fractions, or "
                            "more people)")
    return Data(train, val, test), names


def _source(config):
    """The config field that says where the faces came from."""
    d = config.data
    if d.source == "folder":
        return f"config.data.path = {d.path!r}"
    if d.source == "tfds":
        return f"TFDS data set {d.name!r} (config.data.name)"
    return "config.data.synthetic"


def split_identities(labels, fractions, seed, min_images=2):
    """Index arrays (train, val, test) that split the *people* by `fractions`.

    People with fewer than `min_images` images are left out. Each later split
    with a fraction > 0 gets at least one person when there are enough.
    """
    labels = np.asarray(labels)
    people, counts = np.unique(labels, return_counts=True)
    people = np.random.default_rng(seed).permutation(people[counts >= min_images])
    n = len(people)
    sizes = [max(1, round(f * n)) if n >= len(fractions) else round(f * n)
             for f in fractions[1:]]
    bounds = np.cumsum([n - sum(sizes)] + sizes)[:-1]
    return tuple(np.flatnonzero(np.isin(labels, group)).astype(np.int64)
                 for group in np.split(people, bounds))


def _to_grey(images):
    luma = np.array([0.2989, 0.5870, 0.1140], np.float32)
    return (images.astype(np.float32) @ luma + 0.5).astype(np.uint8)[..., None]


def _tfds(config):
    """TFDS `lfw` (or any data set with an image and a person label), one split:
    the labels read in one pass over its records (the images left encoded),
    each image decoded when a batch needs it (apps.core.tfds_source)."""
    d = config.data
    source = TFDSSource(d.name, d.data_dir, "train")
    for key in (d.image_key, d.label_key):
        if key not in source.features:
            raise UserError(f"TFDS data set {d.name!r} has no feature {key!r} "
                            f"(config.data.image_key / label_key); it has "
                            f"{', '.join(sorted(source.features))}")
    count = min(len(source), d.max_examples) if d.max_examples else len(source)
    raw = [source.example(i)[d.label_key] for i in range(count)]
    raw = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in raw])
    names, labels = np.unique(raw, return_inverse=True)
    images = ExampleColumn(
        source, lambda example: read_image(example[d.image_key], d.image_size, d.channels,
                                           d.crop),
        np.uint8, (d.image_size, d.image_size, d.channels),
        decoding=f"read_image {d.image_size} {d.channels} {d.crop}").take(np.arange(count))
    return images, labels.astype(np.int64), [str(n) for n in names]
