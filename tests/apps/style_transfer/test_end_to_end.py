"""End to end, as a user runs it, on the tiny config.

The optimisation method from the command line with --content/--style files
(then the same command again: not redone; then --mode=eval without them, on
the run's images), and the fast stylizer trained from
the command line (conftest.fast_run), its SavedModel reloaded in a process
that cannot import the project, and --mode=predict.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.core.main import execute
from apps.core.workdir import read_metrics
from apps.style_transfer import images as images_lib
from apps.style_transfer import model as model_lib
from apps.style_transfer.task import StyleTransferTask
from configs.style_transfer import get_config
from tests.apps.cli import run_app, run_isolated


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
    result = run_app("style_transfer", workdir, f"--content={content}", f"--style={style}")
    metrics = read_metrics(workdir)
    for label, name in (("Result:", "generated.png"), ("Metrics:", "metrics.json")):
        assert [label, os.path.join(workdir, name)] in [
            line.split() for line in result.stdout.splitlines()]
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

    # The same command again (in process, the flags as the task's options) is
    # not redone: nothing is optimised, checkpointed or written again.
    files = ("metrics.json", "ckpt/checkpoint", "generated.png")
    stamps = [os.path.getmtime(os.path.join(workdir, f)) for f in files]
    again = execute(StyleTransferTask, get_config("tiny"), workdir, content=content,
                    style=style)
    assert again == metrics == read_metrics(workdir)
    assert [os.path.getmtime(os.path.join(workdir, f)) for f in files] == stamps

    # --mode=eval takes no --content/--style: it scores the run's own images
    # (its config.json), not the config's defaults.
    evaluated = execute(StyleTransferTask, get_config("tiny"), workdir, "eval")
    assert evaluated["test_style_cost"] == pytest.approx(metrics["style_cost_final"], rel=1e-5)
    assert evaluated["test_content_cost"] == pytest.approx(metrics["content_cost_final"],
                                                           rel=1e-5)
    assert [os.path.getmtime(os.path.join(workdir, f)) for f in files] == stamps


ISOLATED = """
import json
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
data = np.load(sys.argv[2])
out = serve(images=tf.constant(data["rgb"]))["images"].numpy()
grey = serve(images=tf.constant(data["grey"]))["images"].numpy()
np.savez(sys.argv[3], rgb=out, grey=grey)
print(json.dumps({"dtype": str(out.dtype), "keys": sorted(serve.structured_outputs)}))
"""


def test_fast_stylizer_trains_exports_and_reloads_without_the_project(fast_run, tmp_path):
    metrics = read_metrics(fast_run)
    for key in ("test_content_cost", "test_style_cost", "test_total_cost",
                "test_input_style_cost", "examples_per_sec", "train_seconds"):
        assert isinstance(metrics[key], float) and metrics[key] >= 0, key
    assert metrics["steps"] == 3  # 14 crops / batch 4, one epoch

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, 30, 41, 3), dtype=np.uint8)  # sides not multiples of 4
    grey = rng.integers(0, 256, (1, 24, 24, 1), dtype=np.uint8)
    np.savez(tmp_path / "in.npz", rgb=rgb, grey=grey)
    info = run_isolated(ISOLATED, os.path.join(fast_run, "export"), tmp_path / "in.npz",
                        tmp_path / "out.npz")
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


def test_predict_writes_stylized_files(fast_run, photos, tmp_path, capsys):
    content, _ = photos
    workdir = tmp_path / "run"  # the trained run's export; predictions of its own
    workdir.mkdir()
    os.symlink(os.path.join(fast_run, "export"), workdir / "export")
    execute(StyleTransferTask, get_config("tiny"), str(workdir), "predict", content)
    written = os.path.join(workdir, "predictions", "cat_stylized.png")
    assert f"{content} -> {written}" in capsys.readouterr().out
    assert np.asarray(Image.open(written)).shape == (75, 113, 3)
    with open(os.path.join(workdir, "predictions", "predictions.json")) as f:
        assert json.load(f) == [{"file": content, "stylized": written}]
