"""What users get wrong with the classification app, and what each gets back.

One table. Most rows set up a mistake (a config value, an image folder, a TFDS
name, a run to transfer from, a workdir, a mode) and name the words the user
must read in the single `error: ...` line; they run the entrypoint's work in
this process (tests/apps/cli.py's `user_error_of`). The `loads` rows are files
the app reads past: an unreadable image is skipped, named in a warning and
counted; images of other channel counts and sizes are converted. An unknown
field, which only the command line's parser meets, goes through a real
`python -m apps.classification`.
"""

import logging

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from apps.classification import data as data_lib
from apps.classification.task import ClassificationTask
from apps.core import config as config_lib
from apps.core import main
from configs.classification import get_config
from tests.apps import tfds_toys
from tests.apps.bad_input import (
    TinyConfig,
    assert_contains,
    case,
    earlier_run,
    expect_unknown_field,
    expect_user_error,
    loads,
    nothing_started,
    workdir_of,
)

tiny = TinyConfig(get_config)  # tiny(variant="tiny", section__field=value)


def folder(tmp, classes=("cat", "dog"), per_class=5, edit=None, **changes):
    """`per_class` random 10x14 RGB PNGs per class in tmp/pets/<class>/, and the
    folder config reading them at 12x12x3; `edit(root)` then spoils them."""
    root = tmp / "pets"
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (10, 14, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png")
    if edit:
        edit(root)
    return {"config": tiny(**{"data__source": "folder", "data__path": str(root),
                              "data__channels": 3, "data__image_size": 12, **changes})}


def _empty_class(root):
    for path in (root / "dog").iterdir():
        path.unlink()


def _flat(root):
    """The images straight in the folder, no class sub-folders."""
    for name in ("cat", "dog"):
        for path in (root / name).iterdir():
            path.rename(root / f"{name}_{path.name}")
        (root / name).rmdir()


def _unreadable_images(root):
    (root / "cat" / "broken.jpg").write_bytes(b"not an image")
    whole = (root / "cat" / "0.png").read_bytes()
    (root / "dog" / "truncated.png").write_bytes(whole[:len(whole) // 3])
    (root / "dog" / "folder.png").mkdir()


def _odd_images(root):
    """Per class, images of other modes and sizes: RGBA, grey + alpha, palette, CMYK,
    16-bit grey."""
    for name, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        for path in (root / name).iterdir():
            path.unlink()
        solid = np.zeros((5, 40, 3), np.uint8) + np.array(colour, np.uint8)
        Image.fromarray(np.dstack([solid, np.full((5, 40), 128, np.uint8)]), "RGBA").save(
            root / name / "rgba.png")
        Image.fromarray(solid).convert("P").save(root / name / "palette.gif")
        Image.fromarray(solid).convert("CMYK").resize((7, 300)).save(root / name / "cmyk.jpg")
        Image.fromarray(np.full((12, 12, 2), 200, np.uint8), "LA").save(root / name / "la.png")
        Image.fromarray(np.full((9, 9), 200 * 257, np.uint16)).save(root / name / "grey16.png")


def _odd_images_read(loaded):
    """Every image 12x12x3; the solid colours kept (alpha dropped, grey repeated)."""
    data, names = loaded
    assert names == ["cat", "dog"]
    images = np.concatenate([s.inputs[np.arange(len(s))] for s in (data.train, data.val,
                                                                   data.test)])
    labels = np.concatenate([data.train.targets, data.val.targets, data.test.targets])
    assert images.shape == (10, 12, 12, 3) and images.dtype == np.uint8
    centres = images[:, 6, 6].astype(int)
    for centre, label in zip(centres, labels, strict=True):
        grey = centre[0] == centre[1] == centre[2]
        colour = (255, 0, 0) if label == 0 else (0, 0, 255)
        assert (grey and abs(centre[0] - 200) <= 2) or np.abs(centre - colour).max() <= 6, centre


def _kept_the_readable(loaded):
    """A file that is no image is skipped when listed; a truncated image (its header
    is fine) when a batch reads it (apps.core.columns): here its read fails."""
    data, names = loaded
    splits = (data.train, data.val, data.test)
    assert names == ["cat", "dog"] and sum(map(len, splits)) == 11
    for split in splits:
        for position, path in enumerate(split.inputs.paths[row] for row in split.inputs.rows):
            _, ok = split.inputs.read_checked(position)
            assert ok == (not path.endswith("truncated.png")), path


# ------------------------------------------------------------- TFDS (toy sets)


def _toy_set(tmp, splits, **features):
    """configs/classification.py:mnist on a toy TFDS set prepared in tmp/tfds."""
    data_dir = tfds_toys.classification(tmp / "tfds", splits, **features)
    return {"config": tiny("mnist", data__name="toy_classes", data__data_dir=data_dir,
                           data__image_size=12)}


def _not_an_image_set(tmp):
    """A prepared set whose inputs are not images (a tensor, as audio sets have)."""
    data_dir = tfds_toys.prepare(
        tmp / "tfds", "toy_sounds",
        tfds.features.FeaturesDict({"audio": tfds.features.Tensor(shape=(8,), dtype=np.int16),
                                    "label": tfds.features.ClassLabel(names=["x", "y"])}),
        {"train": [{"audio": np.zeros(8, np.int16), "label": i % 2} for i in range(4)]},
        supervised_keys=("audio", "label"))
    return {"config": tiny(data__source="tfds", data__name="toy_sounds",
                           data__data_dir=data_dir)}


# ------------------------------------------------------------------ transfer


def _foreign_saved_model(tmp):
    module = tf.Module()
    module.weight = tf.Variable([1.0, 2.0])
    tf.saved_model.save(module, str(tmp / "foreign"))
    return {"config": tiny(transfer__init_from=str(tmp / "foreign"))}


# ------------------------------------------------------------------ workdirs


def _workdir_of(config):
    """A workdir whose config.json an earlier run with `config` wrote."""
    return lambda tmp: {"config": tiny(), "workdir": earlier_run(tmp, config)}


def _corrupt_workdir(tmp):
    return {"config": tiny(), "workdir": earlier_run(tmp, config_json="[1, 2")}


def _predict(what, exported=True):
    """--mode=predict on tmp/<what>, in the exported run's workdir (or an empty one)."""
    def make(tmp, run):
        image = np.random.default_rng(1).integers(0, 255, (9, 9), np.uint8)
        if what == "digit.png":
            Image.fromarray(image).save(tmp / what)
        elif what == "broken.png":
            (tmp / what).write_bytes(b"\x89PNG cut short")
        elif what == "texts":
            (tmp / what).mkdir()
            (tmp / what / "readme.txt").write_text("no images here")
        elif what in ("all-broken", "some-broken"):
            (tmp / what).mkdir()
            (tmp / what / "a.png").write_bytes(b"\x89PNG cut short")
            (tmp / what / "b.jpg").write_bytes(b"")
            if what == "some-broken":
                Image.fromarray(image).save(tmp / what / "c.png")
        return {"config": tiny(), "mode": "predict", "input": tmp / what,
                "workdir": run() if exported else tmp / "run"}
    return make


def _printed_the_readable(result, stdout):
    lines = [line for line in stdout.splitlines() if "c.png: " in line]
    assert len(lines) == 1 and lines[0].count(" 0.") + lines[0].count(" 1.0") == 3, stdout


CASES = [
    # ------------------------------------------------------------ config values
    case("model-unknown", lambda t: {"config": tiny(model__name="resnet50")},
         "config.model.name = 'resnet50'", "expected one of 'lenet5', 'alexnet'"),
    case("source-unknown", lambda t: {"config": tiny(data__source="csv")},
         "config.data.source = 'csv'", "expected one of 'digits', 'tfds', 'folder'"),
    case("image-size-too-small", lambda t: {"config": tiny(data__image_size=4)},
         "config.data.image_size = 4", "an integer in [8, 1024]"),
    case("image-size-too-small-for-lenet5", lambda t: {"config": tiny(data__image_size=8)},
         "config.data.image_size = 8", "model lenet5 needs images of at least 10 pixels"),
    case("channels-two", lambda t: {"config": tiny(data__channels=2)},
         "config.data.channels = 2", "expected one of 1, 3"),
    case("split-not-summing-to-one", lambda t: {"config": tiny(data__split=(0.6, 0.3, 0.3))},
         "config.data.split = (0.6, 0.3, 0.3)", "three fractions > 0", "sum to 1"),
    case("dropout-one", lambda t: {"config": tiny(model__dropout=1.0)},
         "config.model.dropout = 1.0", "expected a number in [0, 1)"),
    case("rotation-beyond-180", lambda t: {"config": tiny(data__augment__rotation=270.0)},
         "config.data.augment.rotation = 270.0", "degrees in [0, 180]"),
    case("top-k-zero", lambda t: {"config": tiny(eval__top_k=0)},
         "config.eval.top_k = 0", "an integer > 0"),
    case("batch-size-zero", lambda t: {"config": tiny(train__batch_size=0)},
         "config.train.batch_size = 0", "an integer > 0"),
    case("freeze-every-layer", lambda t: {"config": tiny(transfer__freeze_layers=100)},
         "config.transfer.freeze_layers = 100", "freezes every layer of lenet5 (it has 8)"),
    case("batch-larger-than-the-training-split",
         lambda t: {"config": tiny(train__batch_size=5000)},
         "the training split has 1025 examples (and 54 held out as train-dev, "
         "config.diagnosis.train_dev_fraction)", "config.train.batch_size = 5000"),
    # ------------------------------------------------------------- image folder
    case("path-not-given", lambda t: folder(t, data__path=""),
         "config.data.path is empty", "one sub-folder per class"),
    case("path-missing", lambda t: folder(t, data__path=str(t / "nope")),
         "config.data.path = ", "nope", "no such folder"),
    case("one-class", lambda t: folder(t, classes=("cat",)),
         "expected one sub-folder of images per class (at least 2), found 1"),
    # An empty class folder is reported and skipped, leaving one class here.
    case("class-folder-empty", lambda t: folder(t, edit=_empty_class),
         "expected one sub-folder of images per class (at least 2), found 1"),
    case("images-without-class-folders", lambda t: folder(t, edit=_flat),
         "expected one sub-folder of images per class (at least 2), found 0"),
    case("too-few-images-to-split", lambda t: folder(t, per_class=2),
         "4 examples are too few for config.data.split = (0.6, 0.2, 0.2)",
         "the val and test split would be empty", "at least 3 per class"),
    loads("unreadable-images-skipped", lambda t: folder(t, edit=_unreadable_images),
          "skipped", "broken.jpg: not a readable image", "1 unreadable image(s) skipped",
          check=_kept_the_readable),
    loads("other-channels-and-sizes-converted", lambda t: folder(t, edit=_odd_images),
          check=_odd_images_read),
    # --------------------------------------------------------------------- TFDS
    case("tfds-name-unknown", lambda t: {"config": tiny("mnist", data__name="mnits")},
         "config.data.name = 'mnits': not a TFDS data set"),
    case("tfds-not-prepared", lambda t: {"config": tiny("mnist", data__data_dir=str(t))},
         "TFDS data set 'mnist' is not prepared in config.data.data_dir"),
    case("tfds-not-an-image-set", _not_an_image_set,
         "config.data.name = 'toy_sounds': its inputs are Tensor, expected images (height, "),
    case("tfds-too-few-to-split", lambda t: _toy_set(t, {"train": [0], "test": [0, 1]}),
         "TFDS data set 'toy_classes' split 'train': 1 examples are too few to split"),
    # ------------------------------------------------------------------ transfer
    case("transfer-from-a-missing-path",
         lambda t: {"config": tiny(transfer__init_from=str(t / "nowhere"))},
         "config.transfer.init_from = ", "nowhere", "no checkpoint or SavedModel there"),
    case("transfer-from-an-empty-folder",
         lambda t: {"config": tiny(transfer__init_from=str(t))},
         "config.transfer.init_from = ", "no checkpoint or SavedModel there"),
    case("transfer-from-a-foreign-saved-model", _foreign_saved_model,
         "foreign", "SavedModel not exported by this project (no model_variables)"),
    case("transfer-from-another-model",
         lambda t, run: {"config": tiny(model__name="vgg", transfer__init_from=str(run()))},
         "config.transfer.init_from = ", "variables, this model has",
         "use a run of the same config.model"),
    case("transfer-from-a-wider-model",
         lambda t, run: {"config": tiny(model__width=1.0,
                                        transfer__init_from=str(run() / "export"))},
         "config.transfer.init_from = ", "c1/kernel has shape (5, 5, 1, 4) there, "
         "(5, 5, 1, 6) here"),
    case("transfer-keeping-a-head-of-other-classes",
         lambda t, run: folder(t, data__channels=1, train__batch_size=2,
                               transfer__keep_head=True, transfer__init_from=str(run())),
         "head/kernel has shape (42, 10) there, (42, 2) here"),
    # ------------------------------------------------------------------ workdir
    case("workdir-of-another-app", _workdir_of(config_lib.common_config("trigger_word")),
         "holds a run of the 'trigger_word' app, not 'classification'"),
    case("workdir-of-another-model", _workdir_of(tiny(model__width=1.0)),
         "was trained with a different config.model"),
    case("workdir-config-corrupt", _corrupt_workdir,
         "config.json: unreadable config from an earlier run"),
    # -------------------------------------------------------------------- modes
    case("mode-unknown", lambda t: {"config": tiny(), "mode": "classify"},
         "--mode=classify: expected one of train, eval, predict, export, tune"),
    case("predict-without-input", lambda t: {"config": tiny(), "mode": "predict"},
         "--mode=predict needs --input=PATH"),
    case("predict-missing-path", _predict("none.png"), "none.png: no such file or folder"),
    case("predict-folder-without-images", _predict("texts"), "texts: no image files (.png"),
    case("predict-before-training", _predict("digit.png", exported=False), "no SavedModel in"),
    case("predict-corrupt-image", _predict("broken.png"),
         "broken.png: not a readable image"),
    case("predict-folder-all-corrupt", _predict("all-broken"),
         "all-broken: none of its 2 image files is readable"),
    loads("predict-folder-some-corrupt", _predict("some-broken"),
          "a.png: not a readable image", "b.jpg: not a readable image",
          "skipped 2 of 3 image files", check=_printed_the_readable),
    case("eval-before-training", lambda t: {"config": tiny(), "mode": "eval"},
         "no checkpoint in", "train first"),
    case("export-before-training", lambda t: {"config": tiny(), "mode": "export"},
         "no checkpoint in", "train first"),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The workdir of a tiny run that wrote its config, a checkpoint and an export
    (untrained: the rows only need them to exist and to fit)."""
    from apps.core.trainer import Trainer

    workdir = tmp_path_factory.mktemp("exported")
    config = tiny()
    trainer = Trainer(ClassificationTask(config), str(workdir))
    config_lib.save(config, str(workdir))
    trainer.save()
    trainer.export()
    return workdir


@pytest.mark.parametrize("row", CASES)
def test_bad_input_is_one_line_or_a_counted_skip(tmp_path, request, caplog, capsys, row):
    if row.make.__code__.co_argcount == 2:  # make(tmp, run): the row needs the exported run
        made = row.make(tmp_path, lambda: request.getfixturevalue("exported"))
    else:
        made = row.make(tmp_path)
    if row.check is None:
        expect_user_error(ClassificationTask, made, tmp_path, row.needles)
        return
    config, mode, workdir = made["config"], made.get("mode"), workdir_of(made, tmp_path)
    with nothing_started(workdir), caplog.at_level(logging.WARNING):
        if mode:
            result = main.execute(ClassificationTask, config, str(workdir), mode, str(made["input"]))
            stdout = capsys.readouterr().out
            row.check(result, stdout)
        else:
            stdout = ""
            row.check(data_lib.load(config))
    assert_contains(caplog.text + stdout, row.needles)


def test_unknown_config_field_on_the_command_line(tmp_path):
    expect_unknown_field("classification", tmp_path, "--config.model.nme=resnet")
