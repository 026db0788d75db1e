"""Classification data sources: embedded digits, image folders, HDF5 files, TFDS."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from apps.classification import data as data_lib
from apps.core import images as images_lib
from apps.core.columns import ExampleColumn
from apps.core.errors import UserError
from configs.classification import get_config
from tests.apps import tfds_toys


def test_digits_are_the_real_scikit_learn_scans_split_6_2_2():
    config = get_config()
    data, names = data_lib.load(config)
    assert names == [str(i) for i in range(10)]
    sizes = len(data.train), len(data.val), len(data.test)
    assert sum(sizes) == 1797
    assert abs(sizes[1] - 0.2 * 1797) < 15 and abs(sizes[2] - 0.2 * 1797) < 15
    assert data.train.inputs.dtype == np.uint8 and data.train.inputs.shape[1:] == (8, 8, 1)
    assert data.train.inputs.max() == 255


def _write_folder(root, classes=("cat", "dog"), per_class=4, size=(10, 14), mode="RGB"):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(
                root / name / f"{i}.png")
    return root


def test_image_folder_reads_classes_and_skips_unreadable_files(tmp_path, caplog):
    root = _write_folder(tmp_path / "pets")
    (root / "dog" / "broken.jpg").write_bytes(b"not an image")
    paths, labels, names = images_lib.image_folder_files(str(root))
    images = images_lib.image_column(paths, image_size=12, channels=3).materialize()
    assert names == ["cat", "dog"]
    assert images.shape == (8, 12, 12, 3) and images.dtype == np.uint8
    assert list(labels) == [0] * 4 + [1] * 4
    assert "broken.jpg" in caplog.text


def test_image_folder_files_one_rule_for_nested_hidden_and_empty(tmp_path, caplog):
    root = _write_folder(tmp_path / "pets", classes=("cat", "dog", "owl"))
    (root / "cat" / "indoor").mkdir()
    (root / "cat" / "0.png").rename(root / "cat" / "indoor" / "0.png")  # nested: still a cat
    (root / "dog" / "._1.png").write_bytes(b"resource fork")  # a Mac's shadow file: ignored
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "x.png").write_bytes(b"")
    for path in (root / "owl").iterdir():  # an empty class: reported and skipped
        path.unlink()
    paths, labels, names = images_lib.image_folder_files(str(root))
    assert names == ["cat", "dog"]
    assert list(labels) == [0] * 4 + [1] * 4
    assert str(root / "cat" / "indoor" / "0.png") in paths
    assert not any("._" in p or "__MACOSX" in p for p in paths)
    assert "owl: no readable images" in caplog.text
    (root / "dog").rename(root / "Zoe\u0308")  # as macOS writes "Zoë"
    assert images_lib.image_folder_files(str(root))[2] == ["Zo\u00eb", "cat"]


def test_a_folder_is_read_as_training_goes(tmp_path):
    """Nothing is decoded when the folder is listed; a column reads each image
    as read_image does, and says which it could not read."""
    root = _write_folder(tmp_path / "pets")
    whole = (root / "dog" / "0.png").read_bytes()
    (root / "dog" / "0.png").write_bytes(whole[:len(whole) // 3])  # a truncated image
    paths, labels, _ = images_lib.image_folder_files(str(root))
    column = images_lib.image_column(paths, 12, 3)
    assert len(column) == 8 and column.shape == (8, 12, 12, 3)
    value, ok = column.read_checked(paths.index(str(root / "cat" / "1.png")))
    assert ok
    np.testing.assert_array_equal(value, images_lib.read_image(str(root / "cat" / "1.png"), 12, 3))
    value, ok = column.read_checked(paths.index(str(root / "dog" / "0.png")))
    assert not ok and not value.any()
    taken = column.take(np.array([5, 0]))
    np.testing.assert_array_equal(taken[np.arange(2)][1], column[0])


def test_image_folder_converts_grey_to_the_configured_channels(tmp_path):
    root = _write_folder(tmp_path / "grey", mode="L")
    images = np.asarray(images_lib.image_column(images_lib.image_folder_files(str(root))[0],
                                                image_size=8, channels=3))
    assert images.shape[-1] == 3
    np.testing.assert_array_equal(images[..., 0], images[..., 2])


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "no such folder"),
    (lambda p: _write_folder(p, classes=("only",)), "at least 2"),
    (lambda p: (p / "a").mkdir(parents=True) or (p / "b").mkdir(), "found 0"),
])
def test_image_folder_errors_name_the_problem(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(UserError, match=message):
        images_lib.image_folder_files(str(root))


def test_folder_source_through_the_config(tmp_path):
    root = _write_folder(tmp_path / "pets", per_class=10)
    config = get_config("folder")
    config.data.path = str(root)
    config.data.image_size = 16
    data, names = data_lib.load(config)
    assert names == ["cat", "dog"]
    assert len(data.train) + len(data.val) + len(data.test) == 20
    assert set(data.test.targets) == {0, 1}


@pytest.mark.parametrize("file_format", ["array_record", "tfrecord"])
def test_tfds_set_is_read_by_index_from_either_format(tmp_path, file_format):
    labels = [0, 1, 2] * 10
    data_dir = tfds_toys.classification(tmp_path, {"train": labels, "test": [2, 1, 0]},
                                        file_format=file_format)
    config = get_config("mnist")
    config.data.update(name="toy_classes", data_dir=data_dir, image_size=16, channels=3)
    data, names = data_lib.load(config)
    assert names == ["a", "b", "c"]
    # Nothing decoded up front: each split's images and labels are columns.
    assert isinstance(data.train.inputs, ExampleColumn)
    assert data.train.inputs.shape[1:] == (16, 16, 3)
    assert len(data.test) == 3  # the data set's own test split
    assert len(data.val) == round(config.data.split[1] * 30)
    assert len(data.train) == 30 - len(data.val)
    seen = np.concatenate([data.train.targets[np.arange(len(data.train))],
                           data.val.targets[np.arange(len(data.val))]])
    assert sorted(seen) == sorted(labels)
    # Example i is the image the data set holds at i, decoded as a folder image is.
    source = data.test.inputs.source
    builder = tfds.builder("toy_classes", data_dir=data_dir)
    stored = (builder.as_data_source("test") if file_format == "array_record"
              else builder.as_dataset(split="test").as_numpy_iterator())  # decoded by TFDS
    for i, example in enumerate(stored):
        expected = np.asarray(Image.fromarray(example["image"]).resize((16, 16), Image.BILINEAR))
        assert np.array_equal(data.test.inputs[i], expected)
        assert data.test.targets[i] == example["label"] == source.example(i)["label"]


def test_tfds_max_examples_and_missing_test_split(tmp_path):
    data_dir = tfds_toys.classification(tmp_path, {"train": [0, 1] * 20}, names=("x", "y"))
    config = get_config("mnist")
    config.data.update(name="toy_classes", data_dir=data_dir, max_examples=30)
    data, _ = data_lib.load(config)
    sizes = len(data.train), len(data.val), len(data.test)
    assert sizes == (24, 3, 3)  # 30 of 40 read, split 8:1:1 (the mnist config)


def test_tfds_not_prepared_is_a_clear_error(tmp_path):
    config = get_config("mnist")
    config.data.data_dir = str(tmp_path)
    with pytest.raises(UserError, match="not prepared in config.data.data_dir"):
        data_lib.load(config)


def test_prepare_image_handles_any_size_and_channels():
    grey = np.full((5, 7, 1), 255, np.uint8)
    rgb = np.zeros((20, 9, 3), np.uint8)
    rgb[..., 0] = 255
    out = images_lib.prepare_image(grey, 8, 3).numpy()
    assert out.shape == (8, 8, 3) and np.allclose(out, 1.0)
    out = images_lib.prepare_image(rgb, 8, 1).numpy()
    assert out.shape == (8, 8, 1) and np.allclose(out, 0.2989, atol=1e-3)
    dynamic = tf.function(lambda x: images_lib.prepare_image(x, 8, 1),
                          input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8)])
    assert dynamic(rgb[None]).shape == (1, 8, 8, 1)
    assert dynamic(grey[None]).shape == (1, 8, 8, 1)


def test_an_image_already_at_size_is_not_resized_and_the_same_as_resized():
    images = np.random.RandomState(0).randint(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    static = tf.function(lambda x: images_lib.prepare_image(x, 8, 3))
    ops = {op.type for op in static.get_concrete_function(
        tf.TensorSpec([2, 8, 8, 3], tf.uint8)).graph.get_operations()}
    assert not ops & {"ScaleAndTranslate", "ResizeBilinear"}
    dynamic = tf.function(lambda x: images_lib.prepare_image(x, 8, 3),
                          input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    np.testing.assert_array_equal(static(images).numpy(), dynamic(images).numpy())
    np.testing.assert_allclose(static(images).numpy(), images / 255.0, rtol=1e-6)


def test_augmentation_is_a_function_of_the_seed():
    image = tf.random.stateless_uniform((16, 16, 1), (1, 2))
    seed = tf.constant([3, 4], tf.int64)
    a = images_lib.augment_image(image, seed, flip=True, shift=0.2, rotation=20, color=0.5)
    b = images_lib.augment_image(image, seed, flip=True, shift=0.2, rotation=20, color=0.5)
    c = images_lib.augment_image(image, seed + 1, flip=True, shift=0.2, rotation=20, color=0.5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert float(tf.reduce_min(a)) >= 0 and float(tf.reduce_max(a)) <= 1
    same = images_lib.augment_image(image, seed)  # nothing asked: unchanged
    np.testing.assert_array_equal(same, image)
