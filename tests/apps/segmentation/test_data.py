"""Segmentation data: generated scenes, image/mask pair folders, TFDS (mocked), augmentation."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.core.columns import ExampleColumn
from apps.core.errors import UserError
from apps.segmentation import data as data_lib
from apps.segmentation import synth
from apps.segmentation.task import augment_pair, to_rgb
from configs.segmentation import get_config
from tests.apps import tfds_toys


def test_synthetic_scenes_have_pixel_exact_masks_and_fixed_splits():
    config = get_config("tiny")
    data, names = data_lib.load(config)
    assert names == list(synth.CLASS_NAMES) and len(names) == 14
    assert (len(data.train), len(data.val), len(data.test)) == (64, 16, 24)
    images, masks = data.train.inputs, data.train.targets
    assert images.shape == (64, 32, 32, 3) and images.dtype == np.uint8
    assert masks.shape == (64, 32, 32) and masks.dtype == np.uint8
    assert masks.max() < 14 and len(np.unique(masks)) > 5
    # Objects are painted in a colour contrasting with the background: the mean
    # brightness inside an object's mask differs from the background's.
    for image, mask in zip(images[:10], masks[:10], strict=True):
        grey = image.mean(-1)
        if (mask > 0).any():
            assert abs(grey[mask > 0].mean() - grey[mask == 0].mean()) > 60
    again, _ = data_lib.load(config)  # a function of the seed
    np.testing.assert_array_equal(again.test.inputs, data.test.inputs)
    np.testing.assert_array_equal(again.test.targets, data.test.targets)
    assert not np.array_equal(data.val.targets[:16], data.test.targets[:16])


def test_digit_and_shape_masks():
    scans, labels = synth.digit_scans()
    one = scans[labels == 1][0]
    mask = synth._digit(one, 24)
    assert mask.shape == (24, 24) and 0.05 < mask.mean() < 0.6
    rng = np.random.default_rng(0)
    circle = synth._shape("circle", 20, rng)
    assert circle.mean() == pytest.approx(np.pi / 4, abs=0.03)
    assert circle[10, 10] and not circle[0, 0]
    triangle = synth._shape("triangle", 30, rng)
    # an equilateral triangle inscribed in a circle of radius r has area 3*sqrt(3)/4 r^2
    assert triangle.sum() == pytest.approx(3 * np.sqrt(3) / 4 * 15 ** 2, rel=0.1)


def _write_pairs(root, sizes=((20, 30), (20, 30), (24, 16)), num_classes=4, rgb_masks=False):
    rng = np.random.default_rng(0)
    (root / "CameraRGB").mkdir(parents=True)
    (root / "CameraMask").mkdir(parents=True)
    masks = []
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            root / "CameraRGB" / f"{i:06d}.png")
        mask = rng.integers(0, num_classes, (h, w), dtype=np.uint8)
        if rgb_masks:  # CARLA: the class id in the red channel
            rgba = np.zeros((h, w, 4), np.uint8)
            rgba[..., 0], rgba[..., 3] = mask, 255
            Image.fromarray(rgba, "RGBA").save(root / "CameraMask" / f"{i:06d}.png")
        else:
            Image.fromarray(mask, "L").save(root / "CameraMask" / f"{i:06d}.png")
        masks.append(mask)
    return masks


@pytest.mark.parametrize("rgb_masks", [False, True])
def test_pair_folder_matches_by_name_and_resizes_masks_by_nearest(tmp_path, rgb_masks):
    masks = _write_pairs(tmp_path, rgb_masks=rgb_masks)
    images, read = data_lib.pair_folder(str(tmp_path), "CameraRGB", "CameraMask", (20, 30), 4)
    assert images.shape == (3, 20, 30, 3) and read.shape == (3, 20, 30)
    np.testing.assert_array_equal(read[0], masks[0])  # same size: untouched
    assert set(np.unique(read[2])) <= set(np.unique(masks[2]))  # nearest: no new labels


def test_pair_folder_errors_name_the_file(tmp_path):
    _write_pairs(tmp_path / "a")
    Image.fromarray(np.zeros((21, 30), np.uint8)).save(tmp_path / "a" / "CameraMask" / "000001.png")
    with pytest.raises(UserError, match=r"000001\.png: mask is 30x21 pixels but its image"):
        data_lib.pair_folder(str(tmp_path / "a"), "CameraRGB", "CameraMask", (20, 30), 4)

    _write_pairs(tmp_path / "b")
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(tmp_path / "b" / "CameraMask" / "000000.png")
    with pytest.raises(UserError, match=r"000000\.png: label 7 outside the 4 classes"):
        data_lib.pair_folder(str(tmp_path / "b"), "CameraRGB", "CameraMask", (20, 30), 4)

    _write_pairs(tmp_path / "c")
    (tmp_path / "c" / "CameraMask" / "000002.png").unlink()
    with pytest.raises(UserError, match=r"000002\.png: no mask of the same name"):
        data_lib.pair_folder(str(tmp_path / "c"), "CameraRGB", "CameraMask", (20, 30), 4)

    with pytest.raises(UserError, match="config.data.mask_dir = 'Masks': no folder"):
        data_lib.pair_folder(str(tmp_path / "c"), "CameraRGB", "Masks", (20, 30), 4)


def test_the_ignore_label_is_no_class_to_check(tmp_path):
    masks = _write_pairs(tmp_path)
    boundary = masks[0].copy()
    boundary[0] = 255  # Pascal VOC's object boundaries
    Image.fromarray(boundary, "L").save(tmp_path / "CameraMask" / "000000.png")
    _, read = data_lib.pair_folder(str(tmp_path), "CameraRGB", "CameraMask", (20, 30), 4)
    np.testing.assert_array_equal(read[0], boundary)
    with pytest.raises(UserError, match="label 255 outside the 4 classes .0..3. and not "
                                        "config.data.ignore_label = 0"):
        data_lib.pair_folder(str(tmp_path), "CameraRGB", "CameraMask", (20, 30), 4, 0)


def test_a_damaged_image_is_found_when_its_pair_is_read(tmp_path):
    """The images are decoded as batches need them: a truncated one (its header
    is fine) lists, and its read names it (training skips and counts it)."""
    _write_pairs(tmp_path)
    path = tmp_path / "CameraRGB" / "000001.png"
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    images, masks = data_lib.pair_folder(str(tmp_path), "CameraRGB", "CameraMask", (20, 30), 4)
    assert len(images) == 3 and masks[1].shape == (20, 30)
    assert images.read_checked(0)[1] and not images.read_checked(1)[1]
    with pytest.raises(UserError, match=r"000001\.png: not a readable image"):
        images[1]  # noqa: B018


def test_folder_source_through_the_config(tmp_path):
    _write_pairs(tmp_path, sizes=[(20, 30)] * 10)
    config = get_config("carla")
    config.data.path = str(tmp_path)
    data, names = data_lib.load(config)
    assert names == [str(i) for i in range(23)]
    assert len(data.train) + len(data.val) + len(data.test) == 10
    assert data.train.inputs.shape[1:] == (96, 128, 3) and data.train.targets.shape[1:] == (96, 128)
    config.data.num_classes = 0
    with pytest.raises(UserError, match="config.data.num_classes = 0"):
        data_lib.load(config)


@pytest.mark.parametrize("file_format", ["array_record", "tfrecord"])
def test_pets_like_tfds_set_streams_with_its_offset(tmp_path, file_format):
    data_dir = tfds_toys.segmentation(tmp_path, {"train": 12, "test": 5}, file_format=file_format)
    config = get_config("pets")
    config.data.update(name="toy_pets", data_dir=data_dir, image_size=(24, 20))
    data, names = data_lib.load(config)
    assert names == ["pet", "background", "outline"]
    assert len(data.test) == 5 and len(data.train) + len(data.val) == 12
    assert isinstance(data.train.inputs, ExampleColumn)
    assert data.train.inputs.shape[1:] == (24, 20, 3)
    masks = data.test.targets[np.arange(5)]
    assert masks.shape == (5, 24, 20) and set(np.unique(masks)) == {0, 1, 2}  # trimap 1..3 - 1


def test_tfds_mask_keeps_the_ignore_label_and_subtracts_the_offset():
    mask = np.array([[1, 2, 255], [3, 1, 255]], np.uint8)
    assert data_lib.offset_mask(mask, 1, 3, 255).tolist() == [[0, 1, 255], [2, 0, 255]]
    with pytest.raises(UserError, match="label 3 outside the 3 classes"):
        data_lib.offset_mask(mask, 0, 3, 255)


def test_tfds_not_prepared_is_a_clear_error(tmp_path):
    config = get_config("pets")
    config.data.data_dir = str(tmp_path)
    with pytest.raises(UserError, match="not prepared in config.data.data_dir"):
        data_lib.load(config)


def test_augmentation_moves_image_and_mask_together():
    rng = np.random.default_rng(0)
    mask = tf.constant(rng.integers(0, 5, (16, 20)), tf.int32)
    # The image encodes its mask, so any mismatch after augmentation shows.
    image = tf.cast(tf.stack([mask] * 3, -1), tf.float32) / 10.0
    seen = set()
    for s in range(6):
        seed = tf.constant([7, s], tf.int64)
        a_image, a_mask = augment_pair(image, mask, seed, flip=True, shift=0.25)
        np.testing.assert_array_equal(np.round(a_image.numpy()[..., 0] * 10), a_mask.numpy())
        b_image, _ = augment_pair(image, mask, seed, flip=True, shift=0.25)
        np.testing.assert_array_equal(a_image, b_image)  # a function of the seed
        seen.add(a_mask.numpy().tobytes())
    assert len(seen) > 3
    jittered, same = augment_pair(image, mask, tf.constant([1, 2], tf.int64), color=1.0)
    np.testing.assert_array_equal(same, mask)
    assert not np.allclose(jittered, image)


def test_to_rgb_takes_grey_rgb_and_rgba():
    grey = tf.fill((1, 4, 5, 1), 3.0)
    rgba = tf.concat([tf.fill((1, 4, 5, 3), 2.0), tf.zeros((1, 4, 5, 1))], -1)
    assert np.all(to_rgb(grey).numpy() == 3.0) and to_rgb(grey).shape == (1, 4, 5, 3)
    assert np.all(to_rgb(rgba).numpy() == 2.0) and to_rgb(rgba).shape == (1, 4, 5, 3)
