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


def segmentation(data_dir, splits, mask_values=(1, 4), name="toy_pets", file_format="array_record"):
    """A segmentation set (image, segmentation_mask), like oxford_iiit_pet; `splits`
    is {split: count}, the masks random in [mask_values[0], mask_values[1])."""
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "segmentation_mask": tfds.features.Image(shape=(None, None, 1))})
    examples = {}
    for split, count in splits.items():
        rng = np.random.default_rng(len(split))
        examples[split] = [{"image": image,
                            "segmentation_mask": rng.integers(*mask_values, (*image.shape[:2], 1),
                                                              np.uint8)}
                           for image in images(count, seed=len(split))]
    return prepare(data_dir, name, features, examples, file_format)


def detection(data_dir, splits, name="toy_voc", file_format="array_record"):
    """A detection set like voc: image, objects {bbox (ymin, xmin, ymax, xmax)
    fractions, label, is_crowd}; `splits` is {split: [[(bbox, label, is_crowd), ...]
    per image]}."""
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "objects": tfds.features.Sequence({
            "bbox": tfds.features.BBoxFeature(),
            "label": tfds.features.ClassLabel(names=["cat", "dog", "bird"]),
            "is_crowd": np.bool_})})
    examples = {
        split: [{"image": image,
                 "objects": {"bbox": [tfds.features.BBox(*box) for box, _, _ in objects],
                             "label": [label for _, label, _ in objects],
                             "is_crowd": [crowd for _, _, crowd in objects]}}
                for image, objects in zip(images(len(per_image), seed=len(split)), per_image,
                                          strict=True)]
        for split, per_image in splits.items()}
    return prepare(data_dir, name, features, examples, file_format)


def faces(data_dir, people, name="toy_lfw", file_format="array_record"):
    """A face set like lfw: image and label (the person's name, a string);
    `people` is the label of each image, in order."""
    features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(None, None, 3)),
                                           "label": tfds.features.Text()})
    examples = [{"image": image, "label": person}
                for image, person in zip(images(len(people), size=(30, 30)), people, strict=True)]
    return prepare(data_dir, name, features, {"train": examples}, file_format)
