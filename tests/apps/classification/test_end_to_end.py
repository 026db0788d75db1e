"""End to end, as a user runs it: train, SIGKILL, resume, export, reload, predict.

The training runs and --mode=predict are real `python -m apps.classification`
processes on the tiny config (a ResNet, so checkpoints carry BatchNorm
statistics, with dropout, so they carry the dropout generator's state too;
tests/apps/cli.py). The no-op rerun, --mode=eval, --mode=export and the
transfer run go through the same entry in this process, to spare a start-up
each. Bad input is tests/apps/classification/test_bad_input.py.
"""

import json
import logging
import os
import signal

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.classification import data as data_lib
from apps.classification.task import ClassificationTask
from apps.core.faults import KILL_AT_STEP
from apps.core.main import execute
from apps.core.workdir import read_metrics as _metrics
from configs.classification import get_config
from tests.apps import tfds_toys
from tests.apps.cli import run_app, run_isolated

CHANGES = {"model.name": "resnet", "model.width": 0.5, "model.dropout": 0.2,
           "data.image_size": 16, "train.epochs": 6}
FLAGS = [f"--config.{key}={value}" for key, value in CHANGES.items()]
VOLATILE = ("examples_per_sec", "train_seconds")


def _config(**changes):
    """The config of the command-line runs (with `changes`), built in this process."""
    config = get_config("tiny")
    for key, value in {**CHANGES, **changes}.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted run; its workdir."""
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    run_app("classification", workdir, *FLAGS)
    return workdir


def test_uninterrupted_run_writes_the_workdir_layout(finished):
    names = set(os.listdir(finished))
    assert {"metrics.json", "config.json", "ckpt", "tb", "export"} <= names
    assert set(os.listdir(os.path.join(finished, "tb"))) == {"train", "eval"}
    metrics = _metrics(finished)
    for key in ("test_accuracy", "test_top3_accuracy", "test_macro_f1", "examples_per_sec",
                "train_seconds"):
        assert isinstance(metrics[key], float), key
    assert metrics["test_accuracy"] > 0.3  # far above chance (0.1) after 6 tiny epochs
    with open(os.path.join(finished, "config.json")) as f:
        assert json.load(f)["model"]["name"] == "resnet"


@pytest.mark.slow  # two training processes; every app's SIGKILL runs are slow too
def test_sigkill_then_resume_reaches_the_same_result(finished, tmp_path):
    workdir = str(tmp_path)
    # The run SIGKILLs itself (apps.core.faults) within a checkpoint interval
    # after step 10, mid-run: a kill sent from here would race a fast run.
    killed = run_app("classification", workdir, *FLAGS, check=False,
                     env={KILL_AT_STEP: "10+0.3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not os.path.exists(os.path.join(workdir, "metrics.json"))

    resumed = run_app("classification", workdir, *FLAGS)
    restored = [line for line in resumed.stderr.splitlines() if "Restored" in line]
    assert restored and "(step 0)" not in restored[0]
    ours, theirs = _metrics(workdir), _metrics(finished)
    for key in theirs:
        if key not in VOLATILE:
            assert ours[key] == theirs[key], key

    # A finished run is not retrained: same metrics, metrics.json untouched.
    stamp = os.path.getmtime(os.path.join(workdir, "metrics.json"))
    again = execute(ClassificationTask, _config(), workdir)
    assert again == ours and _metrics(workdir) == ours
    assert os.path.getmtime(os.path.join(workdir, "metrics.json")) == stamp


# Run by tests/apps/cli.py's run_isolated: the project cannot be imported.
ISOLATED = """
import json
import logging
import sys

import numpy as np
import tensorflow as tf

serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
data = np.load(sys.argv[2])
out = serve(images=tf.constant(data["images"]))
rgb = serve(images=tf.constant(np.repeat(data["big"], 3, axis=-1)))
print(json.dumps({
    "accuracy": float(np.mean(out["class_id"].numpy() == data["labels"])),
    "names": [n.decode() for n in out["class_name"].numpy()[:3]],
    "sums": out["probabilities"].numpy().sum(-1).tolist(),
    "top_k_shape": list(out["top_k_ids"].shape),
    "rgb_ids": rgb["class_id"].numpy().tolist(),
    "grey_big_ids": serve(images=tf.constant(data["big"]))["class_id"].numpy().tolist(),
}))
"""


def test_saved_model_classifies_in_a_process_without_the_project(finished, tmp_path):
    config = get_config("tiny")
    data, _ = data_lib.load(config)  # the same split the run used (same seed)
    test = data.test
    big = np.kron(test.inputs[:5], np.ones((1, 4, 4, 1), np.uint8))  # 32x32, other size
    np.savez(tmp_path / "test.npz", images=test.inputs, labels=test.targets, big=big)
    out = run_isolated(ISOLATED, os.path.join(finished, "export"), tmp_path / "test.npz")
    assert out["accuracy"] == pytest.approx(_metrics(finished)["test_accuracy"], abs=1e-9)
    assert all(name in [str(i) for i in range(10)] for name in out["names"])
    np.testing.assert_allclose(out["sums"], 1.0, atol=1e-5)
    assert out["top_k_shape"] == [len(test), 3]
    assert out["rgb_ids"] == out["grey_big_ids"]  # RGB input is converted to grey


def test_predict_eval_and_export_modes(finished, tmp_path):
    config = get_config("tiny")
    data, _ = data_lib.load(config)
    for i in range(3):
        Image.fromarray(data.test.inputs[i, ..., 0]).save(tmp_path / f"digit{i}.png")
    result = run_app("classification", finished, *FLAGS, "--mode=predict", f"--input={tmp_path}")
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(tmp_path))]
    assert len(lines) == 3 and all(line.count(" 0.") + line.count(" 1.0") == 3 for line in lines)

    evaluated = execute(ClassificationTask, _config(), finished, "eval")
    assert evaluated["test_accuracy"] == _metrics(finished)["test_accuracy"]

    stamp = os.path.getmtime(os.path.join(finished, "export", "saved_model.pb"))
    execute(ClassificationTask, _config(), finished, "export")
    assert os.path.getmtime(os.path.join(finished, "export", "saved_model.pb")) > stamp


def test_transfer_learning_from_a_finished_run(finished, tmp_path, caplog):
    config = _config(**{"transfer.init_from": finished, "transfer.freeze_layers": 3,
                        "train.epochs": 1})
    with caplog.at_level(logging.INFO, logger="absl"):
        execute(ClassificationTask, config, str(tmp_path))
    assert "Initialised" in caplog.text and "(new head)" in caplog.text
    before = tf.saved_model.load(os.path.join(finished, "export")).model_variables
    after = tf.saved_model.load(os.path.join(str(tmp_path), "export")).model_variables
    # The first variable is the stem convolution's kernel: copied, then frozen.
    assert before[0].shape == after[0].shape and len(before[0].shape) == 4
    np.testing.assert_array_equal(before[0].numpy(), after[0].numpy())
    # The head (the last variables) is new and trained: different from the source's.
    assert not np.array_equal(before[-1].numpy(), after[-1].numpy())


def test_transfer_from_a_saved_model_copies_all_but_the_head(finished):
    from apps.classification import model as model_lib
    from apps.classification.transfer import load_pretrained

    model = model_lib.build("resnet", 16, 1, num_classes=4, width=0.5, dropout=0.2)
    copied = load_pretrained(model, os.path.join(finished, "export"))
    source = tf.saved_model.load(os.path.join(finished, "export")).model_variables
    head = {id(v) for v in model.get_layer("head").variables}
    assert copied == sum(1 for v in model.variables
                         if id(v) not in head and "seed_generator" not in v.path)
    for mine, theirs in zip(model.variables, source, strict=True):
        if id(mine) not in head and "seed_generator" not in mine.path:
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert model.get_layer("head").kernel.shape[-1] == 4  # the new head, for 4 classes


def test_tfds_set_trains_alike_streamed_and_cached_to_files(tmp_path):
    """A TFRecord-only TFDS set is read by index (apps.core.tfds_source); decoding
    it once into .npy files (config.data.cache = a folder) changes nothing."""
    data_dir = tfds_toys.classification(tmp_path / "tfds", {"train": [0, 1, 2] * 16,
                                                            "test": [0, 1, 2] * 2},
                                        file_format="tfrecord")
    cache = tmp_path / "cache"
    results = []
    for name, where in (("streamed", "none"), ("cached", str(cache)), ("reused", str(cache))):
        config = _config(**{"data.source": "tfds", "data.name": "toy_classes",
                            "data.data_dir": data_dir, "data.channels": 3,
                            "data.cache": where, "train.epochs": 1})
        execute(ClassificationTask, config, str(tmp_path / name), "train")
        metrics = _metrics(str(tmp_path / name))
        results.append({k: v for k, v in metrics.items() if k not in VOLATILE})
    assert results[0] == results[1] == results[2]
    assert results[0]["steps"] > 0
    assert len(list(cache.glob("*.npy"))) == 6  # images and labels of three splits
