"""What users get wrong with the detection app, and the one line each gets back.

One table: every row sets up a mistake (a config value, a COCO-format file and
its images, a TFDS name, a workdir, a mode) and names the words the user must
read in the single `error: ...` line. The rows run the entrypoint's work in
this process (tests/apps/cli.py's `user_error_of`); an unknown field, which
only the command line's parser can meet, goes through a real
`python -m apps.detection`. Invalid boxes with `config.data.invalid_boxes=skip`
are not errors: they are dropped, counted and reported (the last test).
"""

import json
import logging

import numpy as np
import pytest
from PIL import Image

from apps.core import config as config_lib
from apps.detection import data as data_lib
from apps.detection.task import DetectionTask
from configs.detection import get_config
from tests.apps import tfds_toys
from tests.apps.bad_input import (
    TinyConfig,
    case,
    earlier_run,
    expect_unknown_field,
    expect_user_error,
)

tiny = TinyConfig(get_config)  # tiny(section__field=value)


def _labels():
    """A valid COCO-format document for the three images of `coco`."""
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 2, "file_name": "b.png", "width": 20, "height": 20},
                   {"id": 3, "file_name": "c.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [4, 3, 20, 15]},
                        {"id": 2, "image_id": 2, "category_id": 3, "bbox": [10, 5, 5, 10]},
                        {"id": 3, "image_id": 3, "category_id": 3, "bbox": [1, 1, 20, 20]}],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }


def coco(tmp, edit=None, text=None, **changes):
    """A COCO-format data set in `tmp` (labels.json, photos/) and the config reading it.

    `edit(doc)` changes the document before it is written; `text` (str or
    bytes) replaces the whole file.
    """
    photos = tmp / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(photos / "a.png")
    Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), "L").save(photos / "b.png")
    Image.fromarray(rng.integers(0, 255, (25, 25, 3), dtype=np.uint8)).save(photos / "c.jpg")
    doc = _labels()
    if edit:
        edit(doc)
    labels = tmp / "labels.json"
    text = json.dumps(doc) if text is None else text
    labels.write_bytes(text if isinstance(text, bytes) else text.encode())
    config = tiny(**{"data__source": "coco_json", "data__annotations": str(labels),
                     "data__images": str(photos), "data__channels": 3, **changes})
    return {"config": config}


def _annotation(**fields):
    """`edit` that replaces the annotations with one of these fields."""
    def edit(doc):
        doc["annotations"] = [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5],
                               **fields}]
    return edit


def _image_entry(index, **fields):
    def edit(doc):
        doc["images"][index].update(fields)
    return edit


def _replace_file(name, content):
    """A COCO set whose photos/<name> holds `content` (bytes) instead of an image."""
    def make(tmp):
        made = coco(tmp)
        (tmp / "photos" / name).write_bytes(content(tmp / "photos" / name))
        return made
    return make


def _truncated(path):
    return path.read_bytes()[:len(path.read_bytes()) // 2]


def _folder_as_image(tmp):
    made = coco(tmp, _image_entry(0, file_name="scans.png"))
    (tmp / "photos" / "scans.png").mkdir()
    return made


def _workdir_of(config):
    """A workdir whose config.json an earlier run with `config` wrote."""
    return lambda tmp: {"config": tiny(), "workdir": earlier_run(tmp, config)}


def _corrupt_workdir(tmp):
    return {"config": tiny(), "workdir": earlier_run(tmp, config_json='{"app": "detection", ')}


def _not_a_detection_set(tmp):
    data_dir = tfds_toys.classification(tmp / "tfds", {"train": [0, 1, 2]})
    return {"config": tiny(data__source="tfds", data__name="toy_classes", data__data_dir=data_dir)}


def _empty_folder(tmp):
    (tmp / "empty").mkdir()
    return {"config": tiny(), "mode": "predict", "input": tmp / "empty"}


def _images_no_export(tmp):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp / "x.png")
    return {"config": tiny(), "mode": "predict", "input": tmp / "x.png"}


CASES = [
    # ------------------------------------------------------------ config values
    case("box-loss-unknown", lambda t: {"config": tiny(loss__box="l1")},
         "config.loss.box = 'l1'", "expected one of 'squared', 'iou', 'giou'"),
    case("iou-threshold-zero", lambda t: {"config": tiny(decode__iou_threshold=0.0)},
         "config.decode.iou_threshold = 0.0", "expected a number in (0, 1]"),
    case("score-threshold-above-one", lambda t: {"config": tiny(decode__score_threshold=1.5)},
         "config.decode.score_threshold = 1.5", "expected a number in [0, 1]"),
    case("batch-size-zero", lambda t: {"config": tiny(train__batch_size=0)},
         "config.train.batch_size = 0", "expected an integer > 0"),
    case("learning-rate-negative", lambda t: {"config": tiny(optimizer__learning_rate=-1.0)},
         "config.optimizer.learning_rate = -1.0", "expected a number > 0"),
    case("channels-two", lambda t: {"config": tiny(data__channels=2)},
         "config.data.channels = 2", "expected one of 1, 3"),
    case("source-unknown", lambda t: {"config": tiny(data__source="voc_xml")},
         "config.data.source = 'voc_xml'", "expected one of"),
    case("split-not-summing-to-one", lambda t: {"config": tiny(data__split=(0.5, 0.5, 0.5))},
         "config.data.split", "sum to 1"),
    case("image-size-not-a-multiple-of-the-stride",
         lambda t: {"config": tiny(data__image_size=36)},
         "config.data.image_size = 36", "expected a multiple of 8"),
    case("anchor-larger-than-the-image",
         lambda t: {"config": tiny(model__anchors=((0.1, 2.0),))},
         "config.model.anchors = ((0.1, 2.0),)", "pairs in (0, 1]"),
    case("anchors-fewer-than-num-anchors",
         lambda t: {"config": tiny(model__anchors=((0.1, 0.2),))},
         "config.model.anchors has 1 anchors", "expected config.model.num_anchors = 2"),
    case("digit-min-size-above-max-size",
         lambda t: {"config": tiny(data__digits__min_size=20)},
         "config.data.digits.min_size = 20", "expected <= config.data.digits.max_size = 16"),
    case("scenes-zero", lambda t: {"config": tiny(data__digits__scenes=(0, 16, 16))},
         "config.data.digits.scenes = (0, 16, 16)", "integers in [1, 1000000]"),
    case("batch-larger-than-the-training-split",
         lambda t: {"config": tiny(train__batch_size=100)},
         "the training split has 64 examples", "config.train.batch_size = 100"),
    # ------------------------------------------------ COCO-format file and images
    case("annotations-not-given", lambda t: coco(t, data__annotations=""),
         "config.data.annotations is empty", "COCO-format JSON"),
    case("annotations-missing", lambda t: coco(t, data__annotations=str(t / "nope.json")),
         "config.data.annotations = ", "nope.json", "no such file"),
    case("annotations-a-folder", lambda t: coco(t, data__annotations=str(t / "photos")),
         "photos", "a folder; expected the COCO-format JSON file"),
    case("image-folder-missing", lambda t: coco(t, data__images=str(t / "pics")),
         "config.data.images = ", "pics", "no such folder"),
    case("json-truncated", lambda t: coco(t, text=json.dumps(_labels())[:70]),
         "labels.json: not valid JSON"),
    case("json-empty-file", lambda t: coco(t, text=""), "labels.json: not valid JSON"),
    case("json-not-text", lambda t: coco(t, text=b"\xff\xfe\x00x"),
         "labels.json: not valid JSON"),
    case("json-a-list", lambda t: coco(t, text="[1, 2]"),
         "labels.json: the file has no 'images'"),
    case("json-without-annotations", lambda t: coco(t, lambda d: d.pop("annotations")),
         "labels.json: the file has no 'annotations'"),
    case("images-empty", lambda t: coco(t, lambda d: d.update(images=[], annotations=[])),
         "labels.json: 'images' is empty"),
    case("categories-empty", lambda t: coco(t, lambda d: d.update(categories=[])),
         "labels.json: 'categories' is empty"),
    case("category-without-name", lambda t: coco(t, lambda d: d["categories"][0].pop("name")),
         "labels.json: category 7 has no 'name'"),
    case("category-ids-repeated",
         lambda t: coco(t, lambda d: d["categories"].append({"id": 3, "name": "cow"})),
         "labels.json: two categories have id 3", "expected distinct ids"),
    case("image-ids-repeated", lambda t: coco(t, _image_entry(2, id=1)),
         "labels.json: images[2] repeats the id 1 of a.png", "expected distinct ids"),
    case("image-without-file-name", lambda t: coco(t, lambda d: d["images"][1].pop("file_name")),
         "labels.json: image 2 has no 'file_name'"),
    case("box-outside-the-image", lambda t: coco(t, _annotation(bbox=[45, 0, 20, 5])),
         "labels.json: annotations[0] of a.png", "(45, 0, 65, 5) lies outside the 40 x 30 image"),
    case("box-negative-width", lambda t: coco(t, _annotation(bbox=[10, 1, -3, 4])),
         "annotations[0] of a.png", "has non-positive size -3 x 4"),
    case("box-zero-height", lambda t: coco(t, _annotation(bbox=[10, 1, 3, 0])),
         "annotations[0] of a.png", "has non-positive size 3 x 0"),
    case("box-not-a-number", lambda t: coco(t, _annotation(bbox=[float("nan"), 1, 3, 4])),
         "annotations[0] of a.png", "has a non-finite coordinate"),
    case("box-three-numbers", lambda t: coco(t, _annotation(bbox=[1, 1, 5])),
         "labels.json: annotations[0]: 'bbox' must be [x, y, width, height]"),
    case("box-with-text", lambda t: coco(t, _annotation(bbox=[1, 1, "5", 5])),
         "labels.json: annotations[0]: 'bbox' must be [x, y, width, height]"),
    case("box-missing", lambda t: coco(t, lambda d: d["annotations"][0].pop("bbox")),
         "labels.json: annotations[0] has no 'bbox'"),
    case("class-unknown", lambda t: coco(t, _annotation(category_id=9)),
         "labels.json: annotations[0] has category_id 9, which is not in 'categories'"),
    case("image-id-unknown", lambda t: coco(t, _annotation(image_id=5)),
         "labels.json: annotations[0] refers to image_id 5, which is not in 'images'"),
    case("declared-size-differs-from-the-file", lambda t: coco(t, _image_entry(0, width=80)),
         "labels.json: image 1 has 'width' 80", "a.png is 40 x 30 pixels",
         "expected the file's own size"),
    case("declared-size-not-a-number", lambda t: coco(t, _image_entry(1, height="20")),
         "image 2 has 'height' '20'", "b.png is 20 x 20 pixels"),
    case("image-file-missing", lambda t: coco(t, _image_entry(1, file_name="gone.png")),
         "labels.json: image 2:", "gone.png does not exist"),
    case("image-corrupt", _replace_file("a.png", lambda p: b"\x89PNG\r\n\x1a\n not really"),
         "a.png: not a readable image"),
    case("image-truncated", _replace_file("c.jpg", _truncated), "c.jpg: not a readable image"),
    case("image-a-folder", _folder_as_image, "scans.png: not a readable image"),
    case("no-boxes-for-the-anchors", lambda t: coco(t, lambda d: d.update(annotations=[])),
         "the training split has 0 boxes", "config.model.num_anchors = 2"),
    case("too-few-images", lambda t: coco(t, lambda d: (d["images"].pop(),
                                                        d["annotations"].pop())),
         "config.data.annotations = ", "2 image(s); need at least 3"),
    # --------------------------------------------------------------------- TFDS
    case("tfds-name-unknown",
         lambda t: {"config": tiny(data__source="tfds", data__name="no_such_set")},
         "config.data.name = 'no_such_set': not a TFDS data set"),
    case("tfds-not-prepared",
         lambda t: {"config": tiny(data__source="tfds", data__name="voc/2007",
                                   data__data_dir=str(t))},
         "TFDS data set 'voc/2007' is not prepared in config.data.data_dir"),
    case("tfds-not-a-detection-set", _not_a_detection_set,
         "config.data.name = 'toy_classes': not a detection data set",
         "expected the features image and objects/bbox"),
    # ------------------------------------------------------------------ workdir
    case("workdir-of-another-app", _workdir_of(config_lib.common_config("segmentation")),
         "holds a run of the 'segmentation' app, not 'detection'"),
    case("workdir-of-another-model", _workdir_of(tiny(model__width=16)),
         "was trained with a different config.model"),
    case("workdir-config-corrupt", _corrupt_workdir,
         "config.json: unreadable config from an earlier run"),
    # -------------------------------------------------------------------- modes
    case("mode-unknown", lambda t: {"config": tiny(), "mode": "serve"},
         "--mode=serve: expected one of train, eval, predict, export, tune"),
    case("predict-missing-path",
         lambda t: {"config": tiny(), "mode": "predict", "input": t / "missing.png"},
         "missing.png: no such file or folder"),
    case("predict-without-input", lambda t: {"config": tiny(), "mode": "predict"},
         "--mode=predict needs --input=PATH"),
    case("predict-folder-without-images", _empty_folder, "empty: no image files (.png"),
    case("predict-before-training", _images_no_export, "no SavedModel in", "export"),
    case("eval-before-training", lambda t: {"config": tiny(), "mode": "eval"},
         "no checkpoint in", "train first"),
]


@pytest.mark.parametrize("row", CASES)
def test_bad_input_is_one_line_naming_the_file_or_field(tmp_path, row):
    expect_user_error(DetectionTask, row.make(tmp_path), tmp_path, row.needles)


def test_unknown_config_field_on_the_command_line(tmp_path):
    expect_unknown_field("detection", tmp_path, "--config.model.depht=3")


@pytest.mark.parametrize("bbox, problem", [
    ([30, 0, 20, 5], "outside"), ([10, 1, -3, 4], "negative width"),
    ([10, 1, 3, 0], "zero height"), ([float("nan"), 1, 3, 4], "not a number"),
])
def test_invalid_boxes_are_skipped_counted_and_reported_when_asked(tmp_path, caplog, bbox,
                                                                   problem):
    def edit(doc):
        doc["annotations"].append({"image_id": 2, "category_id": 7, "bbox": bbox})

    config = coco(tmp_path, edit, data__invalid_boxes="skip")["config"]
    with caplog.at_level(logging.WARNING):
        data, _, _ = data_lib.load(config)
    kept = sum(int((split.targets["classes"] >= 0).sum())
               for split in (data.train, data.val, data.test))
    assert kept == 3, problem  # the three good boxes, not the bad one
    assert "labels.json: skipped 1 invalid box(es) (config.data.invalid_boxes=skip)" \
        in caplog.text


def test_boxes_beyond_max_boxes_are_counted_and_reported(tmp_path, caplog):
    def edit(doc):
        doc["annotations"] += [{"image_id": 1, "category_id": 3, "bbox": [i, i, 4, 4]}
                               for i in range(5)]

    config = coco(tmp_path, edit, data__max_boxes=4)["config"]
    with caplog.at_level(logging.WARNING):
        data, _, _ = data_lib.load(config)
    assert "labels.json: 2 box(es) beyond config.data.max_boxes dropped" in caplog.text
