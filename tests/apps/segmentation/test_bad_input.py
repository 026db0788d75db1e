"""What users get wrong with the segmentation app, and the one line each gets back.

One table: every row sets up a mistake (a config value, a folder of
image/mask pairs, a TFDS name, a workdir, a mode) and names the words the
user must read in the single `error: ...` line. The rows run the
entrypoint's work in this process (tests/apps/cli.py's `user_error_of`); an
unknown field, which only the command line's parser can meet, goes through a
real `python -m apps.segmentation`.
"""

import numpy as np
import pytest
from PIL import Image

from apps.core import config as config_lib
from apps.segmentation.task import SegmentationTask
from configs.segmentation import get_config
from tests.apps import tfds_toys
from tests.apps.bad_input import (
    TinyConfig,
    case,
    earlier_run,
    expect_unknown_field,
    expect_user_error,
)

NUM_CLASSES = 4


tiny = TinyConfig(get_config)  # tiny(variant="tiny", section__field=value)


def pairs(tmp, count=5, edit=None, **changes):
    """`count` valid image/mask pairs in tmp/data/{CameraRGB,CameraMask}, 20x30 pixels
    with labels below NUM_CLASSES, and the folder config reading them; `edit(root)`
    then spoils them."""
    root = tmp / "data"
    (root / "CameraRGB").mkdir(parents=True)
    (root / "CameraMask").mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(
            root / "CameraRGB" / f"{i:03d}.png")
        Image.fromarray(rng.integers(0, NUM_CLASSES, (20, 30), dtype=np.uint8), "L").save(
            root / "CameraMask" / f"{i:03d}.png")
    if edit:
        edit(root)
    config = tiny(**{"data__source": "folder", "data__path": str(root),
                     "data__num_classes": NUM_CLASSES, "train__batch_size": 2, **changes})
    return {"config": config}


def _mask(name, array, mode=None):
    """`edit` that writes `array` as the mask <name> (replacing its PNG)."""
    def edit(root):
        (root / "CameraMask" / "001.png").unlink()
        Image.fromarray(array, mode).save(root / "CameraMask" / name)
    return edit


def _write(path, content):
    """`edit` that writes bytes to root/<path> (`content` a function of the old bytes)."""
    def edit(root):
        target = root / path
        old = target.read_bytes() if target.is_file() else b""
        target.write_bytes(content(old))
    return edit


def _remove(path):
    return lambda root: (root / path).unlink()


def _folder_as_image(root):
    (root / "CameraRGB" / "001.png").unlink()
    (root / "CameraRGB" / "001.png").mkdir()


def _empty_images(root):
    for path in (root / "CameraRGB").iterdir():
        path.unlink()


def _pets(tmp, masks_from=1, **changes):
    """configs/segmentation.py:pets on a toy TFDS set whose trimaps hold `masks_from`..3."""
    data_dir = tfds_toys.segmentation(tmp / "tfds", {"train": 6, "test": 2},
                                      mask_values=(masks_from, 4))
    return {"config": tiny("pets", data__name="toy_pets", data__data_dir=data_dir,
                           data__image_size=(16, 16), **changes)}


def _not_a_segmentation_set(tmp):
    data_dir = tfds_toys.classification(tmp / "tfds", {"train": [0, 1, 2]})
    return {"config": tiny(data__source="tfds", data__name="toy_classes", data__num_classes=3,
                           data__data_dir=data_dir)}


def _workdir_of(config):
    """A workdir whose config.json an earlier run with `config` wrote."""
    return lambda tmp: {"config": tiny(), "workdir": earlier_run(tmp, config)}


def _corrupt_workdir(tmp):
    return {"config": tiny(), "workdir": earlier_run(tmp, config_json="")}


def _predict(tmp, what):
    """--mode=predict in a workdir without an export, on `what` in tmp."""
    made = {"config": tiny(), "mode": "predict", "input": tmp / what}
    if what == "empty":
        (tmp / "empty").mkdir()
    elif what == "x.png":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp / "x.png")
    return made


CASES = [
    # ------------------------------------------------------------ config values
    case("depth-too-large", lambda t: {"config": tiny(model__depth=9)},
         "config.model.depth = 9", "expected an integer in [1, 6]"),
    case("image-size-too-small", lambda t: {"config": tiny(data__image_size=(4, 64))},
         "config.data.image_size = (4, 64)", "(height, width), integers in [8, 4096]"),
    case("image-size-one-number", lambda t: {"config": tiny(data__image_size=(64,))},
         "config.data.image_size = (64,)", "(height, width)"),
    case("class-weights-unknown", lambda t: {"config": tiny(loss__class_weights="inverse")},
         "config.loss.class_weights = 'inverse'", "expected one of 'none', 'balanced'"),
    case("dice-weight-negative", lambda t: {"config": tiny(loss__dice_weight=-1.0)},
         "config.loss.dice_weight = -1.0", "expected a number >= 0"),
    case("dropout-one", lambda t: {"config": tiny(model__dropout=1.0)},
         "config.model.dropout = 1.0", "expected a number in [0, 1)"),
    case("shift-half", lambda t: {"config": tiny(data__augment__shift=0.5)},
         "config.data.augment.shift = 0.5", "expected a fraction in [0, 0.5)"),
    case("object-size-reversed",
         lambda t: {"config": tiny(data__synthetic__object_size=(0.6, 0.4))},
         "config.data.synthetic.object_size = (0.6, 0.4)", "(smallest, largest)"),
    case("num-classes-too-many", lambda t: {"config": tiny(data__num_classes=300)},
         "config.data.num_classes = 300", "expected an integer in [0, 256]"),
    case("class-names-repeated", lambda t: {"config": tiny(data__class_names=("sky", "sky"))},
         "config.data.class_names = ('sky', 'sky')", "distinct, non-empty class names"),
    case("mask-dir-empty-name", lambda t: {"config": tiny(data__mask_dir="")},
         "config.data.mask_dir = ''", "expected a folder name"),
    case("source-unknown", lambda t: {"config": tiny(data__source="csv")},
         "config.data.source = 'csv'", "expected one of 'synthetic', 'tfds', 'folder'"),
    case("split-with-a-zero", lambda t: {"config": tiny(data__split=(0.8, 0.2, 0.0))},
         "config.data.split = (0.8, 0.2, 0.0)", "three fractions > 0"),
    case("batch-larger-than-the-training-split",
         lambda t: {"config": tiny(train__batch_size=100)},
         "the training split has 64 examples", "config.train.batch_size = 100"),
    case("ignore-label-a-class", lambda t: pairs(t, data__num_classes=4, data__ignore_label=3),
         "config.data.ignore_label = 3 is one of the 4 classes (0..3)"),
    case("num-classes-not-given", lambda t: pairs(t, data__num_classes=0),
         "config.data.num_classes = 0", "give the number of classes"),
    case("class-names-and-num-classes-disagree",
         lambda t: pairs(t, data__class_names=("sky", "road")),
         "config.data.class_names has 2 names but config.data.num_classes = 4"),
    # ---------------------------------------------------------- folder of pairs
    case("path-not-given", lambda t: pairs(t, data__path=""),
         "config.data.path is empty", "CameraRGB/ and CameraMask/"),
    case("path-missing", lambda t: pairs(t, data__path=str(t / "nope")),
         "config.data.path = ", "nope", "no such folder"),
    case("image-folder-missing", lambda t: pairs(t, data__image_dir="RGB"),
         "config.data.image_dir = 'RGB': no folder", "RGB"),
    case("mask-folder-missing", lambda t: pairs(t, data__mask_dir="Masks"),
         "config.data.mask_dir = 'Masks': no folder"),
    case("image-folder-empty", lambda t: pairs(t, edit=_empty_images),
         "CameraRGB: no image files (.png"),
    case("image-without-mask", lambda t: pairs(t, edit=_remove("CameraMask/002.png")),
         "CameraRGB/002.png: no mask of the same name in", "CameraMask"),
    case("mask-without-image", lambda t: pairs(t, edit=_remove("CameraRGB/002.png")),
         "CameraMask/002.png: no image of the same name in", "CameraRGB"),
    case("two-images-of-one-name",
         lambda t: pairs(t, edit=_write("CameraRGB/003.jpg", lambda old: b"")),
         "003.png: two files named '003'", "pairs are matched by name"),
    case("mask-size-differs-from-image",
         lambda t: pairs(t, edit=_mask("001.png", np.zeros((21, 30), np.uint8))),
         "CameraMask/001.png: mask is 30x21 pixels but its image", "001.png is 30x20"),
    case("label-out-of-range",
         lambda t: pairs(t, edit=_mask("001.png", np.full((20, 30), 7, np.uint8))),
         "CameraMask/001.png: label 7 outside the 4 classes (0..3)",
         "set config.data.num_classes"),
    case("colour-coded-mask",
         lambda t: pairs(t, edit=_mask("001.png", np.full((20, 30, 3), (128, 64, 128),
                                                          np.uint8))),
         "CameraMask/001.png: label 128 outside the 4 classes"),
    case("mask-16-bit-beyond-255",
         lambda t: pairs(t, edit=_mask("001.png", np.full((20, 30), 300, np.uint16))),
         "CameraMask/001.png: labels must lie in 0..255, found 300..300"),
    case("mask-fractional",
         lambda t: pairs(t, edit=_mask("001.tif", np.full((20, 30), 1.5, np.float32), "F")),
         "CameraMask/001.tif: mask has fractional values", "expected integer class ids"),
    case("mask-jpeg",
         lambda t: pairs(t, edit=_mask("001.jpg", np.zeros((20, 30, 3), np.uint8))),
         "CameraMask/001.jpg: a JPEG mask", "expected a lossless format (PNG)"),
    case("image-corrupt", lambda t: pairs(t, edit=_write("CameraRGB/001.png",
                                                         lambda old: b"not a png")),
         "CameraRGB/001.png: not a readable image"),
    # A truncated image (its header fine) is found when read: test_data.py.
    case("image-a-folder", lambda t: pairs(t, edit=_folder_as_image),
         "CameraRGB/001.png: not a readable image"),
    case("mask-corrupt", lambda t: pairs(t, edit=_write("CameraMask/001.png",
                                                        lambda old: old[:40])),
         "CameraMask/001.png: not a readable mask image"),
    case("too-few-pairs", lambda t: pairs(t, count=2),
         "config.data.path = ", "2 image/mask pair(s) are too few to split",
         "config.data.split = (0.6, 0.2, 0.2)"),
    # --------------------------------------------------------------------- TFDS
    case("tfds-name-unknown",
         lambda t: {"config": tiny(data__source="tfds", data__name="no_such_set",
                                   data__num_classes=3)},
         "config.data.name = 'no_such_set': not a TFDS data set"),
    case("tfds-not-prepared", lambda t: {"config": tiny("pets", data__data_dir=str(t))},
         "TFDS data set 'oxford_iiit_pet' is not prepared in config.data.data_dir"),
    case("tfds-not-a-segmentation-set", _not_a_segmentation_set,
         "config.data.name = 'toy_classes': not a segmentation data set",
         "expected the features image and segmentation_mask"),
    case("tfds-mask-offset-forgotten", lambda t: _pets(t, data__mask_offset=0),
         "TFDS data set 'toy_pets' split 'train' example ",
         ": its mask after config.data.mask_offset = 0: label 3 outside the 3 classes"),
    case("tfds-mask-below-the-offset", lambda t: _pets(t, masks_from=0),
         "mask label -1 outside the 3 classes after config.data.mask_offset = 1"),
    # ------------------------------------------------------------------ workdir
    case("workdir-of-another-app", _workdir_of(config_lib.common_config("detection")),
         "holds a run of the 'detection' app, not 'segmentation'"),
    case("workdir-of-another-model", _workdir_of(tiny(model__n_filters=8)),
         "was trained with a different config.model"),
    case("workdir-config-corrupt", _corrupt_workdir,
         "config.json: unreadable config from an earlier run"),
    # -------------------------------------------------------------------- modes
    case("mode-unknown", lambda t: {"config": tiny(), "mode": "serve"},
         "--mode=serve: expected one of train, eval, predict, export, tune"),
    case("predict-missing-path", lambda t: _predict(t, "missing.png"),
         "missing.png: no such file or folder"),
    case("predict-without-input", lambda t: {"config": tiny(), "mode": "predict"},
         "--mode=predict needs --input=PATH"),
    case("predict-folder-without-images", lambda t: _predict(t, "empty"),
         "empty: no image files (.png"),
    case("predict-before-training", lambda t: _predict(t, "x.png"), "no SavedModel in"),
    case("eval-before-training", lambda t: {"config": tiny(), "mode": "eval"},
         "no checkpoint in", "train first"),
]


@pytest.mark.parametrize("row", CASES)
def test_bad_input_is_one_line_naming_the_file_or_field(tmp_path, row):
    expect_user_error(SegmentationTask, row.make(tmp_path), tmp_path, row.needles)


def test_unknown_config_field_on_the_command_line(tmp_path):
    expect_unknown_field("segmentation", tmp_path, "--config.model.n_filter=8")
