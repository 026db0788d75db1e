"""Small TFDS data sets prepared on disk, as `tfds build` leaves them.

The apps read a TFDS split by index (apps.core.tfds_source): from ArrayRecord
files through TFDS's data source, from TFRecord files through an offset index.
A mock (tfds.testing.mock_data) would replace exactly that code, so the tests
prepare real files instead, in either format, with examples they choose.
"""

import functools

import numpy as np
import tensorflow_datasets as tfds


def prepare(data_dir, name, features, splits, file_format="array_record",
            supervised_keys=None):
    """Prepares TFDS data set `name` (version 1.0.0) in `data_dir`.

    `features` is a tfds.features.FeaturesDict; `splits` is {split: [example
    dicts]}. Apps then find it with tfds.builder(name, data_dir=data_dir), as
    they would a data set prepared with `tfds build`. Returns `data_dir`.
    """
    def info(self):
        return tfds.core.DatasetInfo(builder=self, features=features,
                                     supervised_keys=supervised_keys)

    def split_generators(self, dl_manager):
        return {split: self._generate_examples(examples) for split, examples in splits.items()}

    def generate_examples(self, examples):
        yield from enumerate(examples)

    # skip_registration: the class is made anew per call; apps find the data set
    # by its files (a read-only builder), as in a process that never defined it.
    builder_class = type(
        "".join(part.title() for part in name.split("_")),
        (tfds.core.GeneratorBasedBuilder,),
        {"VERSION": tfds.core.Version("1.0.0"), "_info": info,
         "_split_generators": split_generators, "_generate_examples": generate_examples,
         "__module__": __name__, "code_path": None},
        skip_registration=True)
    builder_class.name = name
    builder_class(data_dir=str(data_dir), file_format=file_format).download_and_prepare()
    return str(data_dir)


def images(count, seed=0, channels=3, size=(20, 24)):
    """`count` random uint8 images of `size` (varying a little, as real sets do)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (size[0] + i % 3, size[1], channels), np.uint8)
            for i in range(count)]


@functools.cache
def _class_features(names, channels):
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, channels)),
        "label": tfds.features.ClassLabel(names=list(names))})


def classification(data_dir, splits, names=("a", "b", "c"), channels=3,
                   file_format="array_record", name="toy_classes"):
    """An image classification set (image, label), like mnist; `splits` is
    {split: labels}, the images random."""
    return prepare(
        data_dir, name, _class_features(tuple(names), channels),
        {split: [{"image": image, "label": label} for image, label in
                 zip(images(len(labels), seed=len(split), channels=channels), labels,
                     strict=True)]
         for split, labels in splits.items()},
        file_format, supervised_keys=("image", "label"))
