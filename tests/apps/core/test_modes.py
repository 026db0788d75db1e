"""The core's modes and entrypoint: flags a mode does not read, configs of
another app, predict's one output rule, --mode=config and a quiet console."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from apps.classification.task import ClassificationTask
from apps.core import console, modes
from apps.core.errors import UserError
from apps.core.main import execute
from apps.core.task import Run, Task
from configs.classification import get_config
from configs.detection import get_config as detection_config
from tests.apps.cli import ROOT, user_error_of


def test_verbose_reads_absl_verbosity_flags():
    assert not console.verbose(["app", "--mode=train"])
    assert console.verbose(["app", "-v", "1"])
    assert console.verbose(["app", "--verbosity=1"])
    assert console.verbose(["app", "--verbosity", "2", "--mode=train"])
    assert not console.verbose(["app", "-v"])  # absl wants its value
    assert not console.verbose(["app", "--verbosity=0"])
    assert not console.verbose(["app", "--verbosity=-1"])


def test_a_config_of_another_app_is_named(tmp_path):
    user_error_of(ClassificationTask, detection_config("tiny"), tmp_path,
                  "a config of the 'detection' app, not 'classification'",
                  "configs/classification.py")


def test_input_is_refused_in_train_mode(tmp_path):
    user_error_of(ClassificationTask, get_config("tiny"), tmp_path,
                  f"--input={tmp_path} is not read by --mode=train", input=str(tmp_path))


def test_output_is_refused_outside_predict(tmp_path):
    with pytest.raises(UserError, match="--output=x is for --mode=predict, not --mode=eval"):
        execute(ClassificationTask, get_config("tiny"), str(tmp_path), "eval", output="x")


def test_a_data_path_the_source_does_not_read_is_an_error(tmp_path):
    config = get_config("tiny")
    config.data.path = str(tmp_path)
    user_error_of(ClassificationTask, config, tmp_path / "run",
                  "config.data.path", "read only when config.data.source is 'folder'", "'digits'")


class _Doubler(Task):
    """A task whose SavedModel doubles numbers; its inputs are lines of a file."""

    input_kind = "a file of numbers"
    input_unit = "numbers"
    input_is_files = False

    def predict_items(self, path):
        return open(path).read().split()

    def read_item(self, item):
        try:
            return float(item)
        except ValueError:
            raise UserError(f"{item!r}: not a number") from None

    def predict_item(self, saved_model, item, value, output):
        doubled = float(saved_model.double(tf.constant(value)))
        print(f"{item} -> {doubled}")
        return {"input": item, "doubled": doubled}


@pytest.fixture
def doubler_workdir(tmp_path):
    module = tf.Module()
    module.double = tf.function(lambda x: 2 * x, input_signature=[tf.TensorSpec([], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "export"))
    return tmp_path


def _predict(workdir, text, output=None):
    numbers = workdir / "numbers.txt"
    numbers.write_text(text)
    task = _Doubler(get_config("tiny"))
    modes.predict(task, Run(str(workdir), "predict", str(numbers), output))
    return json.loads((workdir / "predictions" / "predictions.json").read_text()) \
        if output is None else None


def test_predict_skips_counts_and_replaces_the_last_runs_outputs(doubler_workdir, capsys):
    first = _predict(doubler_workdir, "1 2 x 3")
    assert [r["doubled"] for r in first] == [2.0, 4.0, 6.0]
    assert "skipped 1 of 4 numbers" in capsys.readouterr().out
    (doubler_workdir / "predictions" / "stale.png").write_text("from the first run")
    second = _predict(doubler_workdir, "5")
    assert second == [{"input": "5", "doubled": 10.0}]
    assert not (doubler_workdir / "predictions" / "stale.png").exists()


def test_predict_refuses_all_unreadable_and_foreign_output_folders(doubler_workdir):
    with pytest.raises(UserError, match="none of its 2 numbers is readable"):
        _predict(doubler_workdir, "x y")
    foreign = doubler_workdir / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(UserError, match="a folder with other files in it"):
        _predict(doubler_workdir, "1", output=str(foreign))
    assert (foreign / "thesis.tex").read_text() == "keep me"


def test_predict_without_input_or_export_names_what_is_missing(doubler_workdir, tmp_path):
    task = _Doubler(get_config("tiny"))
    with pytest.raises(UserError, match=r"--mode=predict needs --input=PATH \(a file of numbers"):
        modes.predict(task, Run(str(doubler_workdir), "predict", None))
    (tmp_path / "n.txt").write_text("1")
    with pytest.raises(UserError, match="no SavedModel in .*; train or --mode=export first"):
        modes.predict(task, Run(str(tmp_path / "nothing"), "predict", str(tmp_path / "n.txt")))


def _command(*flags, env=None):
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "apps.classification", *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**clean, **(env or {})})


def test_mode_config_prints_the_resolved_config_and_the_console_is_quiet(tmp_path):
    result = _command("--config=configs/classification.py:tiny", f"--workdir={tmp_path}",
                      "--mode=config", "--config.train.epochs=7")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["train"]["epochs"] == 7 and config["model"]["name"] == "lenet5"
    # TensorFlow's start-up lines (oneDNN, CUDA drivers, cuInit) are hidden ...
    assert "I0000" not in result.stderr and "cuInit" not in result.stderr, result.stderr
    # ... unless asked for.
    verbose = _command("--config=configs/classification.py:tiny", f"--workdir={tmp_path}",
                       "--mode=config", "-v", "1")
    assert verbose.returncode == 0, verbose.stderr
    assert "oneDNN" in verbose.stderr or "cuda" in verbose.stderr.lower(), verbose.stderr


def test_an_unknown_variant_names_the_variants(tmp_path):
    result = _command("--config=configs/classification.py:tinyy", f"--workdir={tmp_path}")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "unknown variant 'tinyy'" in errors[0] and "cifar10" in errors[0], errors


def test_headline_line_shows_the_named_metrics_only():
    line = modes.headline_line("epoch 2 validation", {"accuracy": 0.5, "macro_f1": 0.25,
                                                      "class_a_f1": 0.1}, ("accuracy",))
    assert line == "epoch 2 validation: accuracy 0.5000"


def test_a_training_run_prints_what_a_keras_user_expects(tmp_path):
    result = _command("--config=configs/classification.py:tiny", f"--workdir={tmp_path}",
                      "--config.train.epochs=1")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    # 1,025 of the 1,079 training digits (the rest is train-dev): 32 steps of 32
    assert out[0] == "Epoch 1/1" and out[1].startswith("32/32")
    assert "loss:" in out[1] and "examples/s:" in out[1]
    assert out[2].startswith("epoch 1 validation: accuracy ")
    assert any(line.startswith("test: accuracy ") for line in out)
    assert any(line.startswith("SavedModel:  ") for line in out)
    assert not any("class_" in line for line in out)  # per-class figures: metrics.json only
    # TensorFlow's INFO lines (savers, signature renames, fingerprints) stay hidden.
    for internal in ("Sharding callback", "fingerprint", "unsupported characters", "I0000"):
        assert internal not in result.stderr, result.stderr
    # TensorBoard's HParams dashboard gets the config and the final test figures.
    tags = set()
    for name in os.listdir(tmp_path / "tb" / "train"):
        for event in tf.compat.v1.train.summary_iterator(str(tmp_path / "tb" / "train" / name)):
            tags |= {value.tag for value in event.summary.value}
    assert {"final/test_accuracy", "final/examples_per_sec", "_hparams_/experiment",
            "_hparams_/session_start_info"} <= tags, tags


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path, monkeypatch):
    """A checkpoint write that fails (the disk full) stops the run with one line
    saying what and where; the last good checkpoint stays, the half-written
    one goes, and the same command then resumes and finishes."""
    saves = []
    real_save = tf.train.CheckpointManager.save

    def failing_save(manager, checkpoint_number=None, **kwargs):
        saves.append(checkpoint_number)
        if len(saves) == 3:
            os.makedirs(os.path.join(manager.directory, f"ckpt-{checkpoint_number}_temp"))
            raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
        return real_save(manager, checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", failing_save)
    workdir = tmp_path / "run"
    with pytest.raises(UserError, match=r"could not write the checkpoint to .*ckpt \(No space "
                                        r"left on device\); kept .*ckpt-(\d+) and"):
        execute(ClassificationTask, get_config("tiny"), str(workdir))
    kept = tf.train.latest_checkpoint(str(workdir / "ckpt"))
    assert kept.endswith(f"ckpt-{saves[1]}")
    assert not [n for n in os.listdir(workdir / "ckpt") if n.endswith("_temp")]
    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    metrics = execute(ClassificationTask, get_config("tiny"), str(workdir))
    assert metrics["steps"] == 64  # 2 epochs of 32 steps (1,025 digits; 54 are train-dev)
    # An export that cannot be written leaves the last one as it was.
    before = sorted(os.listdir(workdir / "export"))

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("apps.core.export.write_saved_model", no_space)
    with pytest.raises(UserError, match=r"could not write the SavedModel to .*export \(No "
                                        r"space left on device\)"):
        execute(ClassificationTask, get_config("tiny"), str(workdir), "export")
    assert sorted(os.listdir(workdir / "export")) == before
