"""End to end, as a user runs it: train, resume, export, reload in a bare process, predict.

The training runs and --mode=predict are real `python -m apps.segmentation`
processes on the tiny config (tests/apps/cli.py); the no-op rerun and
--mode=eval go through the same entry in this process, to spare a start-up
each. Bad input is tests/apps/segmentation/test_bad_input.py.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from apps.core.errors import UserError
from apps.core.main import execute
from apps.core.workdir import read_metrics as _metrics
from apps.segmentation import data as data_lib
from apps.segmentation.task import SegmentationTask
from configs.segmentation import get_config
from tests.apps.cli import run_app, run_isolated

EPOCHS = 4

# Run by tests/apps/cli.py's run_isolated: the project cannot be imported.
ISOLATED = """
import json
import sys

import numpy as np
import tensorflow as tf

serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
data = np.load(sys.argv[2])
out = serve(images=tf.constant(data["images"]))
big = serve(images=tf.constant(data["big"]))          # 2x the size, grey
odd = serve(images=tf.constant(data["odd"]))          # 27 x 45, RGBA
class_map = out["class_map"].numpy()
print(json.dumps({
    "pixel_accuracy": float(np.mean(class_map == data["masks"])),
    "shape": list(class_map.shape),
    "probability_sums": [float(out["probabilities"].numpy().sum(-1).min()),
                         float(out["probabilities"].numpy().sum(-1).max())],
    "argmax_agrees": bool(np.array_equal(np.argmax(out["probabilities"].numpy(), -1),
                                         class_map)),
    "mask_rgb": [list(out["mask_rgb"].shape), str(out["mask_rgb"].dtype.name)],
    "names": [n.decode() for n in out["class_names"].numpy()],
    "big_shape": list(big["class_map"].shape),
    "odd_shape": list(odd["class_map"].shape),
    "odd_probabilities_shape": list(odd["probabilities"].shape),
}))
"""


def _config():
    """The config of the finished CLI run, built in this process."""
    config = get_config("tiny")
    config.train.epochs = EPOCHS
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One epoch, then the same workdir trained to EPOCHS resumes from its checkpoint."""
    workdir = str(tmp_path_factory.mktemp("segmentation"))
    first = run_app("segmentation", workdir, "--config.train.epochs=1")
    assert "Epoch 1/1" in first.stdout
    resumed = run_app("segmentation", workdir, f"--config.train.epochs={EPOCHS}")
    restored = [line for line in resumed.stderr.splitlines() if "Restored" in line]
    assert restored and "(step 4)" in restored[0], resumed.stderr[-2000:]
    assert f"Epoch 1/{EPOCHS}" not in resumed.stdout and f"Epoch 2/{EPOCHS}" in resumed.stdout
    return workdir


@pytest.fixture(scope="module")
def test_split():
    data, names = data_lib.load(get_config("tiny"))
    return data.test, names


def test_training_writes_the_workdir_learns_and_is_not_rerun(finished, test_split):
    assert {"metrics.json", "config.json", "ckpt", "tb", "export"} <= set(os.listdir(finished))
    metrics = _metrics(finished)
    for key in ("test_mean_iou", "test_pixel_accuracy", "test_dice", "examples_per_sec",
                "train_seconds", "test_class_background_iou"):
        assert isinstance(metrics[key], float), key
    assert metrics["steps"] == 16
    test, _ = test_split
    background = float(np.mean(test.targets == 0))
    # Learned the background at least (an untrained U-Net gets 0.25 to 0.5 of the pixels).
    assert metrics["test_pixel_accuracy"] > background - 0.05
    assert metrics["test_class_background_iou"] > 0.75
    assert 0 < metrics["test_mean_iou"] <= metrics["test_dice"] <= 1

    # The same command again is not retrained; --mode=eval reproduces the test metrics.
    stamp = os.path.getmtime(os.path.join(finished, "metrics.json"))
    assert execute(SegmentationTask, _config(), finished) == metrics
    assert os.path.getmtime(os.path.join(finished, "metrics.json")) == stamp
    evaluated = execute(SegmentationTask, _config(), finished, "eval")
    assert evaluated["test_mean_iou"] == pytest.approx(metrics["test_mean_iou"])
    assert evaluated["test_pixel_accuracy"] == pytest.approx(metrics["test_pixel_accuracy"])


def test_saved_model_segments_in_a_process_without_the_project(finished, test_split,
                                                                 tmp_path):
    test, names = test_split
    big = np.repeat(np.repeat(test.inputs[:3], 2, axis=1), 2, axis=2)[..., :1]
    odd = np.concatenate([np.asarray(Image.fromarray(i).resize((45, 27)))[None]
                          for i in test.inputs[:2]])
    odd = np.concatenate([odd, np.full(odd.shape[:3] + (1,), 255, np.uint8)], -1)
    np.savez(tmp_path / "test.npz", images=test.inputs, masks=test.targets, big=big, odd=odd)
    out = run_isolated(ISOLATED, os.path.join(finished, "export"), tmp_path / "test.npz")
    metrics = _metrics(finished)
    assert out["pixel_accuracy"] == pytest.approx(metrics["test_pixel_accuracy"], abs=2e-3)
    assert out["shape"] == [len(test), 32, 32]
    assert out["probability_sums"] == pytest.approx([1.0, 1.0], abs=1e-4)
    assert out["argmax_agrees"]
    assert out["mask_rgb"] == [[len(test), 32, 32, 3], "uint8"]
    assert out["names"] == names
    assert out["big_shape"] == [3, 64, 64]
    assert out["odd_shape"] == [2, 27, 45] and out["odd_probabilities_shape"] == [2, 27, 45, 14]


def test_predict_writes_colour_coded_masks_and_overlays(finished, test_split, tmp_path):
    test, _ = test_split
    inputs = tmp_path / "inputs"
    (inputs / "more").mkdir(parents=True)
    # Four inputs, two pairs of which would share a name: each keeps its own
    # outputs (apps.core.workdir.output_names), told apart here by their sizes.
    sizes = {"scene0.png": (50, 40), "scene1.png": (52, 41), "scene1.jpg": (54, 42),
             os.path.join("more", "scene0.png"): (56, 43)}
    for i, (name, size) in enumerate(sizes.items()):
        Image.fromarray(test.inputs[i]).resize(size).save(inputs / name)
    output = tmp_path / "predicted"
    result = run_app("segmentation", finished, "--mode=predict", f"--input={inputs}",
                     f"--output={output}")
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(inputs))]
    assert len(lines) == 4 and "background" in lines[0]
    names = {"scene0.png": "scene0", "scene1.png": "scene1_png", "scene1.jpg": "scene1_jpg",
             os.path.join("more", "scene0.png"): "more_scene0"}
    for name, (width, height) in sizes.items():
        mask = np.asarray(Image.open(output / f"{names[name]}_mask.png"))
        overlaid = np.asarray(Image.open(output / f"{names[name]}_overlay.png"))
        assert mask.shape == overlaid.shape == (height, width, 3), name
    with open(output / "predictions.json") as f:
        records = json.load(f)
    assert [r["file"] for r in records] == sorted(str(inputs / name) for name in sizes)
    for record in records:
        assert os.path.basename(record["mask"]).endswith("_mask.png")
        assert sum(record["class_shares"].values()) == pytest.approx(1, abs=1e-3)
    assert {f for f in os.listdir(output) if not f.startswith(".")} == {
        *(f"{name}_{kind}.png" for name in names.values() for kind in ("mask", "overlay")),
        "predictions.json"}

    # --output naming a file is refused.
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(UserError, match="a-file: a file; expected a folder"):
        execute(SegmentationTask, _config(), finished, "predict", str(inputs),
                output=str(tmp_path / "a-file"))
