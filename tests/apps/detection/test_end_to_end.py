"""End to end, as a user runs it: train, resume, not retrain, export, reload, predict.

Every run is a real `python -m apps.detection` process on the tiny config.
The export's score threshold is set to 0 so the barely trained model still
returns real boxes, which the test compares with the training side's own
decoding of the same checkpoint.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.core import config as config_lib
from apps.core.errors import UserError
from apps.core.main import execute
from apps.core.workdir import read_metrics as _metrics
from apps.detection.task import DetectionTask
from configs.detection import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
ARGS = ["--config=configs/detection.py:tiny", "--config.decode.score_threshold=0.0",
        "--config.decode.max_detections=12"]


def _run(workdir, *extra, check=True):
    command = [sys.executable, "-m", "apps.detection", *ARGS, f"--workdir={workdir}", *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One epoch, then the same command with two epochs resumes, then a third run is a no-op."""
    workdir = str(tmp_path_factory.mktemp("detection"))
    _run(workdir, "--config.train.epochs=1")
    assert _metrics(workdir)["steps"] == 4
    resumed = _run(workdir)
    restored = [line for line in resumed.stderr.splitlines() if "Restored" in line]
    assert restored and "(step 4)" in restored[0], resumed.stderr[-2000:]
    return workdir


def test_training_writes_the_workdir_and_resumes(workdir):
    assert {"metrics.json", "config.json", "ckpt", "tb", "export"} <= set(os.listdir(workdir))
    metrics = _metrics(workdir)
    assert metrics["steps"] == 8
    for key in ("test_map50", "test_map", "test_map75", "examples_per_sec", "train_seconds",
                "test_loss_box", "test_loss_class", "test_loss_objectness",
                "test_loss_no_object"):
        assert isinstance(metrics[key], float), key
    assert 0 <= metrics["test_map"] <= metrics["test_map50"] <= 1
    assert metrics["test_loss_class"] > 0 and metrics["train_seconds"] > 0
    with open(os.path.join(workdir, "config.json")) as f:
        anchors = json.load(f)["anchors"]
    assert len(anchors) == 2 and all(0 < v <= 1 for a in anchors for v in a)  # k-means, stored

    # The same run again is not retrained (in this process, to spare a start-up).
    stamp = os.path.getmtime(os.path.join(workdir, "metrics.json"))
    again = execute(DetectionTask, _config(), workdir)
    assert again == metrics
    assert os.path.getmtime(os.path.join(workdir, "metrics.json")) == stamp


def test_tensorboard_has_loss_terms_map_and_pictures(workdir):
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(os.path.join(workdir, "tb", "eval"),
                                                size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"val_map50", "val_map", "val_loss_box", "val_loss_no_object", "val_detections",
            "val_precision_recall", "test_map50", "detections"} <= tags


ISOLATED = textwrap.dedent("""
    import sys
    for name in ("apps", "layers", "optimizers", "configs"):
        sys.modules[name] = None  # this process cannot import the project
    import json
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    serve = loaded.signatures["serving_default"]
    images = np.load(sys.argv[2])["images"]
    out = {}
    for name, batch in (("small", images), ("big", np.kron(images, np.ones((1, 2, 2, 1), np.uint8))),
                        ("rgb", np.repeat(images, 3, axis=-1))):
        result = serve(images=tf.constant(batch))
        out[name] = {k: v.numpy().tolist() if v.dtype != tf.string else
                     [[s.decode() for s in row] for row in v.numpy()] for k, v in result.items()}
    meta = loaded.signatures["metadata"]()
    out["anchors"] = meta["anchors"].numpy().tolist()
    out["names"] = [s.decode() for s in meta["class_names"].numpy()]
    print(json.dumps(out))
""")


def _config():
    """The config of the CLI runs (ARGS), built in this process."""
    config = get_config("tiny")
    config.decode.score_threshold = 0.0
    config.decode.max_detections = 12
    return config


def test_saved_model_detects_in_a_process_without_the_project(workdir, tmp_path):
    task = DetectionTask(_config())
    data = task.load_data()
    images = data.test.inputs[:4]
    np.savez(tmp_path / "test.npz", images=images)
    result = subprocess.run([sys.executable, "-I", "-c", ISOLATED, os.path.join(workdir, "export"),
                             str(tmp_path / "test.npz")], cwd=str(tmp_path), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["names"] == [str(i) for i in range(10)]
    np.testing.assert_allclose(out["anchors"], task.anchors, atol=1e-6)

    # The training side's own decoding of the same checkpoint, in input pixels.
    model = task.build_model()
    checkpoint = tf.train.Checkpoint(model_variables=list(model.variables))
    checkpoint.restore(tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))).expect_partial()
    big = np.kron(images, np.ones((1, 2, 2, 1), np.uint8))  # 64 x 64
    for name, batch, side in (("small", images, 32), ("big", big, 64)):
        raw = model(task._prepare(batch), training=False)
        boxes, scores, classes, count = (t.numpy() for t in task.detect(raw, 0.0))
        got = out[name]
        assert got["num_detections"] == count.tolist() and min(count) > 0
        np.testing.assert_allclose(got["scores"], scores, rtol=1e-4, atol=1e-6)
        assert got["classes"] == classes.tolist()
        np.testing.assert_allclose(got["boxes"], boxes * side, rtol=1e-4, atol=1e-3)
        assert np.min(got["boxes"]) >= 0 and np.max(got["boxes"]) <= side
        for i, n in enumerate(count):
            assert got["class_names"][i][:n] == [str(c) for c in classes[i, :n]]
            assert all(label == "" for label in got["class_names"][i][n:])
            assert np.all(np.diff(got["scores"][i][:n]) <= 0)  # best first
    assert np.abs(np.asarray(out["big"]["boxes"])).max() > 32  # in the big image's pixels
    # An RGB copy is converted to grey: the same detections.
    np.testing.assert_allclose(out["rgb"]["scores"], out["small"]["scores"], atol=1e-4)


def test_predict_writes_annotated_images_and_json(workdir, tmp_path, capsys):
    data = DetectionTask(get_config("tiny")).load_data()
    for i in range(2):
        Image.fromarray(data.test.inputs[i, ..., 0]).save(tmp_path / f"scene{i}.png")
    # --mode=predict, through the same entry the CLI uses (in this process).
    execute(DetectionTask, _config(), workdir, "predict", str(tmp_path))
    assert capsys.readouterr().out.count("detection(s)") == 2
    with open(os.path.join(workdir, "predict", "detections.json")) as f:
        found = json.load(f)
    assert [os.path.basename(entry["file"]) for entry in found] == ["scene0.png", "scene1.png"]
    for entry in found:
        assert entry["width"] == 32 and 0 < len(entry["detections"]) <= 12
        first = entry["detections"][0]
        assert first["class_name"] == str(first["class_id"]) and 0 <= first["score"] <= 1
        assert all(0 <= v <= 32 for v in first["box"])  # input pixels, clipped to the image
        with Image.open(entry["annotated"]) as picture:
            assert picture.size == (256, 256) and picture.mode == "RGB"
    with pytest.raises(UserError, match="none.png: no such file"):
        execute(DetectionTask, _config(), workdir, "predict", str(tmp_path / "none.png"))


@pytest.mark.parametrize("field, value, message", [
    ("loss.box", "l1", "config.loss.box = 'l1': expected one of 'squared', 'iou', 'giou'"),
    ("decode.iou_threshold", 0.0, "config.decode.iou_threshold = 0.0: expected a number in (0"),
    ("model.anchors", ((0.1, 2.0),), "config.model.anchors = ((0.1, 2.0),): expected ()"),
    ("data.image_size", 36, "config.data.image_size = 36: expected a multiple of 8"),
    ("model.anchors", ((0.1, 0.2),), "config.model.anchors has 1 anchors: expected "
                                     "config.model.num_anchors = 2"),
])
def test_bad_config_values_name_the_field(field, value, message):
    config = get_config("tiny")
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(UserError) as error:
        config_lib.check(config, {**config_lib.COMMON_RULES, **DetectionTask.rules})
        DetectionTask(config)
    assert str(error.value).startswith(message), str(error.value)
