"""End to end, as a user runs it: train, resume, export, reload in a bare process, predict.

Every run is a real `python -m apps.segmentation` process on the tiny config.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from apps.core.workdir import read_metrics as _metrics
from apps.segmentation import data as data_lib
from configs.segmentation import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
ARGS = ["--config=configs/segmentation.py:tiny"]


def _run(workdir, *extra, check=True):
    command = [sys.executable, "-m", "apps.segmentation", *ARGS, f"--workdir={workdir}", *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


ISOLATED = textwrap.dedent("""
    import sys
    for name in ("apps", "layers", "optimizers", "configs"):
        sys.modules[name] = None  # this process cannot import the project
    import json
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
""")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("segmentation"))
    first = _run(workdir, "--config.train.epochs=1")
    assert "Epoch 1/1" in first.stderr
    return workdir


def test_train_resume_export_reload_and_predict(finished, tmp_path):
    workdir = finished
    # Resume: the same workdir trained further resumes from the last checkpoint.
    resumed = _run(workdir, "--config.train.epochs=4")
    restored = [line for line in resumed.stderr.splitlines() if "Restored" in line]
    assert restored and "(step 4)" in restored[0]
    assert "Epoch 1/4" not in resumed.stderr and "Epoch 2/4" in resumed.stderr
    again = _run(workdir, "--config.train.epochs=4")  # finished: not retrained
    assert "already finished" in again.stderr

    assert {"metrics.json", "config.json", "ckpt", "tb", "export"} <= set(os.listdir(workdir))
    metrics = _metrics(workdir)
    for key in ("test_mean_iou", "test_pixel_accuracy", "test_dice", "examples_per_sec",
                "train_seconds", "test_class_background_iou"):
        assert isinstance(metrics[key], float), key
    assert metrics["steps"] == 16
    config = get_config("tiny")
    data, names = data_lib.load(config)
    test = data.test
    background = float(np.mean(test.targets == 0))
    # Learned the background at least (an untrained U-Net gets 0.25 to 0.5 of the pixels).
    assert metrics["test_pixel_accuracy"] > background - 0.05
    assert metrics["test_class_background_iou"] > 0.75
    assert 0 < metrics["test_mean_iou"] <= metrics["test_dice"] <= 1

    # The SavedModel in a process that cannot import the project.
    big = np.repeat(np.repeat(test.inputs[:3], 2, axis=1), 2, axis=2)[..., :1]
    odd = np.concatenate([np.asarray(Image.fromarray(i).resize((45, 27)))[None]
                          for i in test.inputs[:2]])
    odd = np.concatenate([odd, np.full(odd.shape[:3] + (1,), 255, np.uint8)], -1)
    np.savez(tmp_path / "test.npz", images=test.inputs, masks=test.targets, big=big, odd=odd)
    result = subprocess.run([sys.executable, "-I", "-c", ISOLATED,
                             os.path.join(workdir, "export"), str(tmp_path / "test.npz")],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["pixel_accuracy"] == pytest.approx(metrics["test_pixel_accuracy"], abs=2e-3)
    assert out["shape"] == [len(test), 32, 32]
    assert out["probability_sums"] == pytest.approx([1.0, 1.0], abs=1e-4)
    assert out["argmax_agrees"]
    assert out["mask_rgb"] == [[len(test), 32, 32, 3], "uint8"]
    assert out["names"] == names
    assert out["big_shape"] == [3, 64, 64]
    assert out["odd_shape"] == [2, 27, 45] and out["odd_probabilities_shape"] == [2, 27, 45, 14]

    # --mode=predict writes colour-coded masks and overlays at the input's size.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(2):
        Image.fromarray(test.inputs[i]).resize((50, 40)).save(inputs / f"scene{i}.png")
    output = tmp_path / "predicted"
    result = _run(workdir, "--mode=predict", f"--input={inputs}", f"--output={output}")
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(inputs))]
    assert len(lines) == 2 and "background" in lines[0]
    for i in range(2):
        mask = np.asarray(Image.open(output / f"scene{i}_mask.png"))
        overlaid = np.asarray(Image.open(output / f"scene{i}_overlay.png"))
        assert mask.shape == overlaid.shape == (40, 50, 3)

    # --mode=eval reproduces the test metrics; a bad input is one line, exit 2.
    stdout = _run(workdir, "--mode=eval").stdout
    evaluated = json.loads(stdout[stdout.index("{"):])
    assert evaluated["test_mean_iou"] == pytest.approx(metrics["test_mean_iou"])
    missing = _run(workdir, "--mode=predict", f"--input={tmp_path / 'none.png'}", check=False)
    assert missing.returncode == 2 and "none.png" in missing.stderr


def test_bad_config_is_one_line_naming_the_field(tmp_path):
    result = _run(str(tmp_path), "--config.model.depth=9", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: config.model.depth = 9")
    assert not os.path.exists(tmp_path / "ckpt")
