"""End to end, as a user runs it: train, resume, not retrain, export, reload, predict.

The training runs are real `python -m apps.detection` processes on the tiny
config (tests/apps/cli.py); the no-op rerun and --mode=predict go through the
same entry in this process, to spare a start-up each. The export's score
threshold is set to 0 so the barely trained model still returns real boxes,
which the test compares with the training side's own decoding of the same
checkpoint. Bad input is tests/apps/detection/test_bad_input.py.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.core.main import execute
from apps.core.workdir import read_metrics as _metrics
from apps.detection.task import DetectionTask
from configs.detection import get_config
from tests.apps.cli import run_app, run_isolated

FLAGS = ["--config.decode.score_threshold=0.0", "--config.decode.max_detections=12"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One epoch, then the same command with two epochs resumes, then a third run is a no-op."""
    workdir = str(tmp_path_factory.mktemp("detection"))
    run_app("detection", workdir, *FLAGS, "--config.train.epochs=1")
    assert _metrics(workdir)["steps"] == 4
    resumed = run_app("detection", workdir, *FLAGS)
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
        saved = json.load(f)
    # The config as given: the run's k-means anchors are the export's (metadata), not the config's.
    assert "anchors" not in saved and saved["model"]["anchors"] == []

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
            "val_precision_recall", "test_map50", "test_detections"} <= tags
    train = event_accumulator.EventAccumulator(os.path.join(workdir, "tb", "train"),
                                               size_guidance={"tensors": 0})
    train.Reload()
    terms = ("loss_objectness", "loss_no_object", "loss_box", "loss_class")
    assert {"loss", *terms} <= set(train.Tags()["tensors"])
    # The terms written at a step add up to the loss written at that step.
    total = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in train.Tensors("loss")}
    parts = {}
    for term in terms:
        for e in train.Tensors(term):
            parts[e.step] = parts.get(e.step, 0.0) + float(tf.make_ndarray(e.tensor_proto))
    assert total and set(parts) == set(total)
    for step, value in total.items():
        assert parts[step] == pytest.approx(value, rel=1e-5), step


# Run by tests/apps/cli.py's run_isolated: the project cannot be imported.
ISOLATED = """
import json
import sys

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
"""


def _config():
    """The config of the CLI runs (FLAGS), built in this process."""
    config = get_config("tiny")
    config.decode.score_threshold = 0.0
    config.decode.max_detections = 12
    return config


def test_saved_model_detects_in_a_process_without_the_project(workdir, tmp_path):
    task = DetectionTask(_config())
    data = task.load_data()
    images = data.test.inputs[:4]
    np.savez(tmp_path / "test.npz", images=images)
    out = run_isolated(ISOLATED, os.path.join(workdir, "export"), tmp_path / "test.npz")
    assert out["names"] == [str(i) for i in range(10)]
    # k-means anchors; a fresh task computes the same ones from the training boxes
    # (as the resumed run did), so they are the export's.
    assert len(out["anchors"]) == 2 and all(0 < v <= 1 for a in out["anchors"] for v in a)
    np.testing.assert_allclose(out["anchors"], task.anchors, atol=1e-6)

    # The training side's own decoding of the same checkpoint, in input pixels.
    model = task.build_model()
    checkpoint = tf.train.Checkpoint(model_variables=list(model.variables))
    checkpoint.restore(tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))).expect_partial()
    big = np.kron(images, np.ones((1, 2, 2, 1), np.uint8))  # 64 x 64
    for name, batch, side in (("small", images, 32), ("big", big, 64)):
        raw = model(task.prepare(batch), training=False)
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


def test_predict_writes_annotated_images_and_json(workdir, tmp_path, capsys, caplog):
    data = DetectionTask(get_config("tiny")).load_data()
    for i in range(2):
        Image.fromarray(data.test.inputs[i, ..., 0]).save(tmp_path / f"scene{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # skipped, counted
    # --mode=predict, through the same entry the CLI uses (in this process).
    execute(DetectionTask, _config(), workdir, "predict", str(tmp_path))
    printed = capsys.readouterr().out
    assert printed.count("detection(s)") == 2 and "skipped 1 of 3 image files" in printed
    assert "broken.png: not a readable image" in caplog.text
    with open(os.path.join(workdir, "predictions", "predictions.json")) as f:
        found = json.load(f)
    assert [os.path.basename(entry["file"]) for entry in found] == ["scene0.png", "scene1.png"]
    for entry in found:
        assert entry["width"] == 32 and 0 < len(entry["detections"]) <= 12
        first = entry["detections"][0]
        assert first["class_name"] == str(first["class_id"]) and 0 <= first["score"] <= 1
        assert all(0 <= v <= 32 for v in first["box"])  # input pixels, clipped to the image
        assert entry["annotated"] == os.path.join(workdir, "predictions",
                                                  os.path.basename(entry["file"]))
        with Image.open(entry["annotated"]) as picture:
            assert picture.size == (256, 256) and picture.mode == "RGB"

