"""End to end, as a user runs it: the real CLI on the tiny config.

The optimisation method with --content/--style files (run, then the same
command again: not redone), user mistakes (one line, exit status 2), and the
fast stylizer: train_fast, its SavedModel reloaded in a process that cannot
import the project, and --mode=predict.
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

from apps.core.workdir import read_metrics as _metrics
from apps.style_transfer import images as images_lib
from apps.style_transfer import model as model_lib
from configs.style_transfer import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
CONFIG = "--config=configs/style_transfer.py:tiny"


def _run(workdir, *extra, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "apps.style_transfer", CONFIG, f"--workdir={workdir}", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    content = folder / "cat.jpg"
    Image.fromarray(images_lib.embedded("chelsea")[::4, ::4]).save(content)  # 75x113
    style = folder / "flower.png"
    Image.fromarray(images_lib.embedded("flower")[::8, ::8]).save(style)  # 54x80
    return str(content), str(style)


def test_optimisation_from_the_command_line(photos, tmp_path):
    content, style = photos
    workdir = str(tmp_path / "run")
    result = _run(workdir, f"--content={content}", f"--style={style}")
    metrics = _metrics(workdir)
    assert json.loads(result.stdout[result.stdout.index("{"):]) == metrics
    assert metrics["steps"] == 6 and metrics["extractor"] == "random"
    for key in ("content_cost_initial", "content_cost_final", "style_cost_initial",
                "style_cost_final", "steps_per_sec", "train_seconds", "examples_per_sec"):
        assert isinstance(metrics[key], float) and metrics[key] > 0, key
    assert metrics["style_cost_final"] < 0.8 * metrics["style_cost_initial"]
    generated = np.asarray(Image.open(os.path.join(workdir, "generated.png")))
    assert generated.shape == (32, 48, 3)  # the content's aspect ratio, long side 48
    assert {"config.json", "ckpt", "tb", "images", "side_by_side.png"} <= set(os.listdir(workdir))
    assert set(os.listdir(os.path.join(workdir, "tb"))) == {"train", "eval"}
    with open(os.path.join(workdir, "config.json")) as f:
        recorded = json.load(f)["data"]
    assert (recorded["content"], recorded["style"]) == (content, style)

    again = _run(workdir, f"--content={content}", f"--style={style}")
    assert "already finished" in again.stderr
    assert _metrics(workdir) == metrics


def test_a_missing_image_is_a_one_line_error(photos, tmp_path):
    content, _ = photos
    missing = _run(str(tmp_path / "a"), f"--content={content}", "--style=nowhere.png",
                   check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("error: --style=nowhere.png: "
                                                              "no such file")
    assert "Traceback" not in missing.stderr
    assert not os.path.exists(tmp_path / "a" / "ckpt")


ISOLATED = textwrap.dedent("""
    import sys
    for name in ("apps", "layers", "optimizers", "configs"):
        sys.modules[name] = None  # this process cannot import the project
    import json
    import numpy as np
    import tensorflow as tf
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    data = np.load(sys.argv[2])
    out = serve(images=tf.constant(data["rgb"]))["images"].numpy()
    grey = serve(images=tf.constant(data["grey"]))["images"].numpy()
    np.savez(sys.argv[3], rgb=out, grey=grey)
    print(json.dumps({"dtype": str(out.dtype), "keys": sorted(serve.structured_outputs)}))
""")


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("fast"))
    _run(workdir, "--mode=train_fast")
    return workdir


def test_fast_stylizer_trains_exports_and_reloads_without_the_project(fast_run, tmp_path):
    metrics = _metrics(fast_run)
    for key in ("test_content_cost", "test_style_cost", "test_total_cost",
                "test_input_style_cost", "examples_per_sec", "train_seconds"):
        assert isinstance(metrics[key], float) and metrics[key] >= 0, key
    assert metrics["steps"] == 3  # 14 crops / batch 4, one epoch

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, 30, 41, 3), dtype=np.uint8)  # sides not multiples of 4
    grey = rng.integers(0, 256, (1, 24, 24, 1), dtype=np.uint8)
    np.savez(tmp_path / "in.npz", rgb=rgb, grey=grey)
    result = subprocess.run([sys.executable, "-I", "-c", ISOLATED,
                             os.path.join(fast_run, "export"), str(tmp_path / "in.npz"),
                             str(tmp_path / "out.npz")],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info == {"dtype": "uint8", "keys": ["images"]}
    out = np.load(tmp_path / "out.npz")
    assert out["rgb"].shape == (2, 30, 41, 3) and out["grey"].shape == (1, 24, 24, 3)

    # The same as the trained network (restored from the checkpoint) in this process.
    config = get_config("tiny")
    model = model_lib.build(config.model.width, config.model.residual_blocks)
    tf.train.Checkpoint(model_variables=list(model.variables)).restore(
        tf.train.latest_checkpoint(os.path.join(fast_run, "ckpt"))).expect_partial()
    x = np.pad(rgb / np.float32(255), [(0, 0), (0, 2), (0, 3), (0, 0)], mode="symmetric")
    want = images_lib.to_uint8(model(x, training=False).numpy()[:, :30, :41])
    assert np.abs(out["rgb"].astype(int) - want).max() <= 1
    want_grey = images_lib.to_uint8(model(np.repeat(grey / np.float32(255), 3, -1),
                                          training=False).numpy())
    assert np.abs(out["grey"].astype(int) - want_grey).max() <= 1
    assert not np.array_equal(out["rgb"], rgb)


def test_predict_writes_stylized_files(fast_run, photos):
    content, _ = photos
    result = _run(fast_run, "--mode=predict", f"--input={content}")
    written = os.path.join(fast_run, "predictions", "cat_stylized.png")
    assert f"{content} -> {written}" in result.stdout
    assert np.asarray(Image.open(written)).shape == (75, 113, 3)
