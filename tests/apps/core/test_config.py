"""Config rules, workdir ownership, and one-line errors from the entrypoint."""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from apps.core import config as config_lib
from apps.core.errors import UserError
from configs import classification as classification_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def test_rules_accept_good_and_reject_bad_values():
    assert config_lib.positive_int(3)
    for bad in (0, -1, 2.5, True, "3"):
        assert not config_lib.positive_int(bad)
    assert config_lib.fractions_summing_to_one((0.6, 0.2, 0.2))
    assert not config_lib.fractions_summing_to_one((0.6, 0.2, 0.3))
    assert not config_lib.fractions_summing_to_one((0.8, 0.2))
    assert config_lib.one_of("a", "b")("a") and not config_lib.one_of("a", "b")("c")


def test_check_names_the_field_and_the_expectation():
    config = classification_config.get_config("tiny")
    config.train.batch_size = 0
    with pytest.raises(UserError, match=r"config\.train\.batch_size = 0: expected an integer > 0"):
        config_lib.check(config, config_lib.COMMON_RULES)


def test_workdir_of_another_app_or_model_is_refused(tmp_path):
    config = classification_config.get_config("tiny")
    config_lib.save(config, str(tmp_path))
    config_lib.check_workdir_owner(config, str(tmp_path))  # same config: fine
    longer = classification_config.get_config("tiny")
    longer.train.epochs = 5  # training longer in the same workdir is allowed
    config_lib.check_workdir_owner(longer, str(tmp_path))
    other_model = classification_config.get_config("tiny")
    other_model.model.name = "resnet"
    with pytest.raises(UserError, match="different config.model"):
        config_lib.check_workdir_owner(other_model, str(tmp_path))
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["app"] = "segmentation"
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(UserError, match="'segmentation' app"):
        config_lib.check_workdir_owner(config, str(tmp_path))


def test_workdir_fields_beyond_the_model_are_kept_and_a_file_is_refused(tmp_path):
    config = classification_config.get_config("tiny")
    config_lib.save(config, str(tmp_path))
    fields = ("model", "data.image_size")
    config_lib.check_workdir_owner(config, str(tmp_path), fields)
    other = classification_config.get_config("tiny")
    other.data.image_size = config.data.image_size + 4
    with pytest.raises(UserError, match=r"different config\.data\.image_size "
                                        rf"\({config.data.image_size} there, "
                                        rf"{config.data.image_size + 4} here"):
        config_lib.check_workdir_owner(other, str(tmp_path), fields)
    config_lib.check_workdir_owner(other, str(tmp_path))  # not a kept field by default
    other_model = classification_config.get_config("tiny")
    other_model.model.width = 3.0
    with pytest.raises(UserError, match=r"config\.model \(width: .* there, 3\.0 here"):
        config_lib.check_workdir_owner(other_model, str(tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file; expected a folder"):
        config_lib.check_workdir_owner(config, str(tmp_path / "file"))


def _run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "apps.classification", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("override, words", [
    ("--config.train.batch_sie=3", ["--config.train.batch_sie:", "'batch_sie' Did you mean",
                                    "batch_size"]),
    ("--config.model.widht=2", ["--config.model.widht:", "width"]),
    ("--config.train.batch_size=abc", ["--config.train.batch_size", "abc"]),
    ("--config.train.batch_size=-4", ["config.train.batch_size = -4", "integer > 0"]),
    ("--config.model.name=lenet", ["config.model.name = 'lenet'", "resnet"]),
    ("--config.data.split=(0.5,0.2,0.2)", ["config.data.split", "sum to 1"]),
])
def test_cli_reports_a_bad_override_in_one_line(tmp_path, override, words):
    # A good override first: the error must name the bad one, not the first.
    result = _run_cli("--config=configs/classification.py:tiny", f"--workdir={tmp_path}",
                      "--config.train.epochs=2", override)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for word in words:
        assert word in last
    assert "\\" not in last and "epochs" not in last, last  # no escaped quotes, not the good one
    assert not os.listdir(tmp_path)  # nothing written for a bad config


def test_cli_reports_missing_config_file_and_workdir(tmp_path):
    result = _run_cli("--config=configs/nope.py", f"--workdir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nope.py" in result.stderr.strip().splitlines()[-1]
    result = _run_cli("--config=configs/classification.py:tiny")
    assert result.returncode == 2
    assert "--workdir is required" in result.stderr


def test_warmup_longer_than_the_run_is_a_user_error(tmp_path):
    result = _run_cli("--config=configs/classification.py", f"--workdir={tmp_path}",
                      "--config.train.epochs=1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "config.optimizer.warmup_epochs = 1.0" in result.stderr.strip().splitlines()[-1]


def test_a_data_field_of_another_source_is_refused():
    from apps.core.config import check_source_fields

    data = ml_collections.ConfigDict({"source": "digits", "path": "", "name": "mnist"})
    readers = {"path": ("folder",), "name": ("tfds", "hub")}
    with pytest.raises(UserError, match="config.data.name = 'mnist' is read only when "
                       "config.data.source is 'tfds' or 'hub'; this config's source is 'digits'"):
        check_source_fields(data, readers)
    data.source = "hub"
    check_source_fields(data, readers)  # name is read; path is empty
    data.path = "/data"
    with pytest.raises(UserError, match="config.data.path = '/data'"):
        check_source_fields(data, readers)


def test_xla_auto_default_follows_the_device_and_the_app(monkeypatch):
    """config.xla unset: on with a GPU or TPU, else the app's xla_on_cpu; an explicit
    value wins; several replicas on CPUs never compile (no XLA collectives there)."""
    import tensorflow as tf

    from configs import translation as translation_config

    gpus = []
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: list(gpus) if kind == "GPU" else [])
    classification = classification_config.get_config()
    attention = translation_config.get_config()
    transformer = translation_config.get_config("transformer")
    assert classification.xla is None and attention.xla is None
    assert not config_lib.xla_enabled(classification)
    assert config_lib.xla_enabled(attention)  # its measured faster side on a CPU
    assert not config_lib.xla_enabled(transformer)
    classification.xla = True
    assert config_lib.xla_enabled(classification)
    attention.xla = False
    assert not config_lib.xla_enabled(attention)
    attention.xla = None
    attention.strategy = "multi_worker"
    assert not config_lib.xla_enabled(attention)
    attention.xla = True
    with pytest.raises(UserError, match=r"config\.xla = True: XLA cannot compile a step over "
                                        r"several replicas on CPUs \(strategy 'multi_worker'"):
        config_lib.xla_enabled(attention)
    # Replicas on several CPU devices (mirrored, or a strategy handed to the trainer).
    attention.xla, attention.strategy = None, "mirrored"
    assert not config_lib.xla_enabled(attention)
    attention.strategy = "default"
    assert config_lib.xla_enabled(attention, replicas=1)
    assert not config_lib.xla_enabled(attention, replicas=2)
    attention.xla = True
    with pytest.raises(UserError, match="several replicas on CPUs"):
        config_lib.xla_enabled(attention, replicas=2)
    gpus.append("GPU:0")
    assert config_lib.xla_enabled(attention)
    for config in (classification_config.get_config(), transformer):
        assert config_lib.xla_enabled(config)
        config.xla = False
        assert not config_lib.xla_enabled(config)
    tpu = classification_config.get_config()
    gpus.clear()
    tpu.strategy = "tpu"
    assert config_lib.xla_enabled(tpu)
    classification = classification_config.get_config()
    for bad in ("yes", 1):
        with pytest.raises(TypeError, match="Could not override field 'xla'"):
            classification.xla = bad
