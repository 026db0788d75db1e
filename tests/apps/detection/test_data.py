"""Detection data: digit scenes, the COCO-JSON loader, TFDS (mocked), box-moving augmentation."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.core import images as images_lib
from apps.core.columns import ExampleColumn
from apps.core.errors import UserError
from apps.detection import data as data_lib
from configs.detection import get_config
from tests.apps import tfds_toys


def test_digit_scenes_are_fixed_by_the_seed_and_boxes_are_valid():
    config = get_config("tiny")
    first, names, _ = data_lib.load(config)
    second, _, _ = data_lib.load(config)
    assert names == [str(i) for i in range(10)]
    assert [len(first.train), len(first.val), len(first.test)] == list(
        config.data.digits.scenes)
    np.testing.assert_array_equal(first.test.inputs, second.test.inputs)
    np.testing.assert_array_equal(first.train.targets["boxes"], second.train.targets["boxes"])
    assert first.train.inputs.shape[1:] == (32, 32, 1) and first.train.inputs.dtype == np.uint8
    boxes, classes = first.train.targets["boxes"], first.train.targets["classes"]
    valid = boxes[classes >= 0]
    assert len(valid) >= len(boxes)  # at least one digit per scene
    assert np.all(valid >= 0) and np.all(valid <= 1)
    assert np.all(valid[:, 2] > valid[:, 0]) and np.all(valid[:, 3] > valid[:, 1])
    assert set(classes[classes >= 0]) <= set(range(10))
    assert not np.array_equal(first.train.inputs[:16], first.val.inputs)  # other scenes


# ---------------------------------------------------------------- COCO JSON


def _coco_folder(tmp_path, annotations=None, images=None, categories=None):
    folder = tmp_path / "photos"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), "L").save(folder / "b.png")
    Image.fromarray(rng.integers(0, 255, (25, 25, 3), dtype=np.uint8)).save(folder / "c.jpg")
    doc = {
        "images": images or [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                             {"id": 2, "file_name": "b.png"},  # size read from the file
                             {"id": 3, "file_name": "c.jpg", "width": 25, "height": 25}],
        "annotations": annotations if annotations is not None else [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [4, 3, 20, 15]},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 40, 30]},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [10, 5, 5, 10]},
            {"id": 4, "image_id": 2, "category_id": 7, "bbox": [0, 0, 5, 5], "iscrowd": 1}],
        "categories": categories or [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(doc))
    return str(path), str(folder)


def test_coco_json_loader_reads_boxes_classes_and_images(tmp_path):
    path, folder = _coco_folder(tmp_path)
    images, targets, names, category_ids = data_lib.coco_json(path, folder, 16, 3,
                                                              max_boxes=3)
    assert names == ["cat", "dog"]  # categories sorted by id: 3 -> 0, 7 -> 1
    assert category_ids == [3, 7]  # the data set's own ids, for its tools
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    np.testing.assert_allclose(targets["boxes"][0, :2],
                               [[4 / 40, 3 / 30, 24 / 40, 18 / 30], [0, 0, 1, 1]], atol=1e-6)
    assert targets["classes"][0].tolist() == [1, 0, -1]
    np.testing.assert_allclose(targets["boxes"][1, 0], [0.5, 0.25, 0.75, 0.75], atol=1e-6)
    assert targets["classes"][1].tolist() == [0, -1, -1]  # the crowd box is left out
    assert targets["classes"][2].tolist() == [-1, -1, -1]  # an image without boxes


def test_coco_json_source_through_the_config(tmp_path):
    path, folder = _coco_folder(tmp_path)
    config = get_config("coco_json")
    config.data.annotations, config.data.images = path, folder
    config.data.image_size = 32
    data, names, _ = data_lib.load(config)
    assert names == ["cat", "dog"]
    assert len(data.train) + len(data.val) + len(data.test) == 3
    assert data.train.inputs.shape[1:] == (32, 32, 3)


@pytest.mark.parametrize("change, message", [
    (lambda p: p.write_text("{not json"), "not valid JSON"),
    (lambda p: p.write_text(json.dumps({"images": [], "categories": []})),
     "has no 'annotations'"),
    (lambda p: _edit(p, annotations=[{"image_id": 1, "category_id": 3, "bbox": [45, 0, 20, 5]}]),
     r"a\.png: box \(45, 0, 65, 5\) lies outside the 40 x 30 image"),
    (lambda p: _edit(p, annotations=[{"image_id": 3, "category_id": 3, "bbox": [1, 1, 0, 4]}]),
     r"c\.jpg: box .* has non-positive size"),
    (lambda p: _edit(p, annotations=[{"image_id": 1, "category_id": 9, "bbox": [1, 1, 2, 2]}]),
     "category_id 9, which is not in 'categories'"),
    (lambda p: _edit(p, annotations=[{"image_id": 5, "category_id": 3, "bbox": [1, 1, 2, 2]}]),
     "image_id 5, which is not in 'images'"),
    (lambda p: _edit(p, annotations=[{"image_id": 1, "category_id": 3, "bbox": [1, 1, 2]}]),
     r"annotations\[0\]: 'bbox' must be \[x, y, width, height\]"),
    (lambda p: _edit(p, images=[{"id": 1, "file_name": "missing.png"}], annotations=[]),
     "missing.png does not exist"),
])
def test_malformed_coco_json_is_a_clear_error(tmp_path, change, message):
    path, folder = _coco_folder(tmp_path)
    change(tmp_path / "labels.json")
    with pytest.raises(UserError, match=message) as error:
        data_lib.coco_json(path, folder, 16, 3, max_boxes=4)
    assert "\n" not in str(error.value) and "labels.json" in str(error.value)


def _edit(path, **fields):
    doc = json.loads(path.read_text())
    doc.update(fields)
    path.write_text(json.dumps(doc))


def test_a_box_sticking_out_is_clipped_as_coco_tools_do(tmp_path):
    path, folder = _coco_folder(tmp_path, annotations=[
        {"image_id": 1, "category_id": 3, "bbox": [30, -4, 20, 14]}])  # x to 50, y from -4
    _, targets, _, _ = data_lib.coco_json(path, folder, 16, 3, max_boxes=2)
    np.testing.assert_allclose(targets["boxes"][0, 0], [30 / 40, 0, 1, 10 / 30], atol=1e-6)


def test_a_missing_image_is_left_out_with_its_boxes_when_skipping(tmp_path, caplog):
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "gone.png"},
              {"id": 3, "file_name": "c.jpg"}]
    path, folder = _coco_folder(tmp_path, images=images, annotations=[
        {"image_id": 2, "category_id": 3, "bbox": [1, 1, 4, 4]},
        {"image_id": 3, "category_id": 7, "bbox": [1, 1, 4, 4]}])
    loaded, targets, _, _ = data_lib.coco_json(path, folder, 16, 3, max_boxes=2, policy="skip")
    assert len(loaded) == 2 and targets["classes"][:, 0].tolist() == [-1, 1]
    assert "gone.png does not exist" in caplog.text and "left out 1 image(s)" in caplog.text


def test_boxes_of_a_photo_stored_on_its_side_follow_its_exif_orientation(tmp_path):
    """A phone photo stored 40 wide x 30 high with EXIF orientation 6 (turn 90
    degrees) is shown 30 wide x 40 high: the labeller's boxes, and the pixels
    read_image returns, are in that shown frame."""
    folder = tmp_path / "photos"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(folder / "phone.jpg", exif=exif)
    doc = {"images": [{"id": 1, "file_name": "phone.jpg", "width": 30, "height": 40}],
           "annotations": [{"image_id": 1, "category_id": 1, "bbox": [3, 20, 15, 20]}],
           "categories": [{"id": 1, "name": "cup"}]}
    (tmp_path / "labels.json").write_text(json.dumps(doc))
    _, targets, _, _ = data_lib.coco_json(str(tmp_path / "labels.json"), str(folder),
                                          16, 3, max_boxes=1)
    assert images_lib.shown_size(str(folder / "phone.jpg")) == (30, 40)
    assert images_lib.read_image(str(folder / "phone.jpg")).shape == (40, 30, 3)
    np.testing.assert_allclose(targets["boxes"][0, 0], [0.1, 0.5, 0.6, 1.0], atol=1e-6)


def test_invalid_boxes_can_be_skipped_and_are_counted(tmp_path, caplog):
    bad = [{"image_id": 1, "category_id": 3, "bbox": [45, 0, 20, 5]},
           {"image_id": 1, "category_id": 7, "bbox": [2, 2, 4, 4]},
           {"image_id": 2, "category_id": 3, "bbox": [1, 1, -3, 4]}]
    path, folder = _coco_folder(tmp_path, annotations=bad)
    _, targets, _, _ = data_lib.coco_json(path, folder, 16, 1, max_boxes=4, policy="skip")
    assert (targets["classes"] >= 0).sum() == 1
    assert "skipped 2 invalid box(es)" in caplog.text


@pytest.mark.parametrize("file_format", ["array_record", "tfrecord"])
def test_tfds_detection_set_streams_its_boxes(tmp_path, file_format):
    cat = ((0.1, 0.2, 0.5, 0.6), 0, False)  # ymin, xmin, ymax, xmax
    crowd = ((0.0, 0.0, 1.0, 1.0), 1, True)
    flat = ((0.3, 0.3, 0.3, 0.7), 2, False)  # zero height: invalid
    per_image = [[cat, crowd], [cat, cat, cat], [cat]] * 3
    data_dir = tfds_toys.detection(tmp_path, {"train": per_image, "validation": per_image[:3],
                                              "test": per_image[:2] + [[cat, flat]]},
                                   file_format=file_format)
    config = get_config("voc")
    config.data.update(name="toy_voc", data_dir=data_dir, image_size=32, max_boxes=2)
    data, names, ids = data_lib.load(config)
    assert names == ["cat", "dog", "bird"] and ids == [0, 1, 2]
    assert [len(data.train), len(data.val), len(data.test)] == [9, 3, 3]
    assert isinstance(data.train.inputs, ExampleColumn)
    assert data.train.inputs.shape[1:] == (32, 32, 3)
    boxes = data.val.targets["boxes"][np.arange(3)]
    classes = data.val.targets["classes"][np.arange(3)]
    kept = (classes >= 0).sum(axis=1)
    assert sorted(kept.tolist()) == [1, 1, 2]  # crowd left out; 3 cats cut to max_boxes
    np.testing.assert_allclose(boxes[classes >= 0][0], (0.2, 0.1, 0.6, 0.5), atol=1e-6)
    # An invalid box is an error naming the example, at once (example 0 is read
    # now) or when a batch meets it; with invalid_boxes=skip it is dropped.
    # (TFDS stores a split's examples in an order of its own: find the flat one.)
    errors = []
    for i in range(3):
        try:
            data.test.targets["classes"][i]
        except UserError as e:
            errors.append((i, str(e)))
    [(flat_at, message)] = errors
    assert f"split 'test' example {flat_at}: its objects: box" in message
    assert "non-positive size" in message and "invalid_boxes=skip" in message
    config.data.invalid_boxes = "skip"
    data, _, _ = data_lib.load(config)
    assert (data.test.targets["classes"][flat_at] >= 0).sum() == 1


def test_tfds_not_prepared_is_a_clear_error(tmp_path):
    config = get_config("voc")
    config.data.data_dir = str(tmp_path)
    with pytest.raises(UserError, match="not prepared in config.data.data_dir"):
        data_lib.load(config)


# ------------------------------------------------------------- augmentation


def _bright_box_image(box, size=64):
    image = np.zeros((size, size, 1), np.float32)
    x1, y1, x2, y2 = (np.asarray(box) * size).round().astype(int)
    image[y1:y2, x1:x2] = 1.0
    return image


def _ink_box(image, size=64):
    ys, xs = np.nonzero(np.asarray(image)[..., 0] > 0.5)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / size


def test_flip_moves_the_boxes_with_the_image():
    box = np.array([[0.125, 0.25, 0.375, 0.5]], np.float32)
    image = _bright_box_image(box[0])
    flipped = 0
    for s in range(6):
        out, boxes, classes = data_lib.augment(image, box, [2], tf.constant([0, s], tf.int64),
                                               flip=True)
        np.testing.assert_allclose(_ink_box(out), boxes[0], atol=1e-6)
        flipped += float(boxes[0, 0]) == pytest.approx(0.625)
    assert 0 < flipped < 6  # some seeds flip, others do not


def test_scale_and_translate_move_the_boxes_with_the_image():
    box = np.array([[0.25, 0.375, 0.5, 0.625], [0, 0, 0, 0]], np.float32)
    image = _bright_box_image(box[0])
    for s in range(8):
        out, boxes, classes = data_lib.augment(image, box, [4, -1], tf.constant([1, s], tf.int64),
                                               scale=0.3, translate=0.15)
        assert classes.numpy().tolist() == [4, -1]
        np.testing.assert_allclose(_ink_box(out), boxes[0], atol=1.5 / 64)  # within a pixel
        assert not np.allclose(boxes[0], box[0])


def test_boxes_pushed_out_of_the_image_become_padding():
    box = np.array([[0.9, 0.9, 1.0, 1.0], [0.4, 0.4, 0.6, 0.6]], np.float32)
    image = np.zeros((32, 32, 1), np.float32)
    dropped = 0
    for s in range(10):
        _, boxes, classes = data_lib.augment(image, box, [1, 2], tf.constant([2, s], tf.int64),
                                             scale=0.5, translate=0.2)
        assert classes[1] == 2  # the centre box stays
        dropped += int(classes[0] == -1)
        if classes[0] == -1:
            assert np.all(boxes[0].numpy() == 0)
        else:
            assert np.all(boxes[0].numpy() <= 1)
    assert dropped > 0
