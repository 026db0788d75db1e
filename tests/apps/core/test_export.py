"""Export is atomic: a failure never damages the export already there."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.core import export as export_lib


def _model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(inputs))


def _endpoints(model, fn=None):
    signature = [tf.TensorSpec([None, 3], tf.float32)]
    return {"serving_default": (fn or (lambda x: {"y": model(x)}), signature)}


def test_export_writes_a_loadable_saved_model(tmp_path):
    model = _model()
    path = export_lib.write_saved_model(str(tmp_path / "export"), model, _endpoints(model),
                                        {"model_variables": model.variables})
    loaded = tf.saved_model.load(path)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(loaded.signatures["serving_default"](x=x)["y"], model(x),
                               rtol=1e-6)
    assert len(loaded.model_variables) == len(model.variables)
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no temporary folders left


def test_failed_export_keeps_the_previous_one(tmp_path):
    model = _model()
    path = str(tmp_path / "export")
    export_lib.write_saved_model(path, model, _endpoints(model))
    before = sorted(os.listdir(path))
    stamp = os.path.getmtime(os.path.join(path, "saved_model.pb"))

    def broken(x):
        raise RuntimeError("crash while tracing")

    with pytest.raises(RuntimeError, match="crash while tracing"):
        export_lib.write_saved_model(path, model, _endpoints(model, broken))
    assert sorted(os.listdir(path)) == before
    assert os.path.getmtime(os.path.join(path, "saved_model.pb")) == stamp
    assert sorted(os.listdir(tmp_path)) == ["export"]
    tf.saved_model.load(path)


def test_recover_puts_back_an_export_moved_aside_by_a_crash(tmp_path):
    model = _model()
    path = str(tmp_path / "export")
    export_lib.write_saved_model(path, model, _endpoints(model))
    os.rename(path, path + ".old")  # a crash between the two renames
    export_lib.recover(path)
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert not os.path.exists(path + ".old")


def test_recover_removes_the_staging_folders_of_killed_writers(tmp_path):
    model = _model()
    path = str(tmp_path / "export")
    export_lib.write_saved_model(path, model, _endpoints(model))
    stale = tmp_path / ".export-killed"
    (stale / "saved_model").mkdir(parents=True)  # what a SIGKILLed writer leaves
    export_lib.recover(path)
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_every_start_of_the_entrypoint_recovers_the_export(tmp_path):
    from apps.classification.task import ClassificationTask
    from apps.core import main
    from configs.classification import get_config

    model = _model()
    path = str(tmp_path / "export")
    export_lib.write_saved_model(path, model, _endpoints(model))
    os.rename(path, path + ".old")  # killed between the two renames
    with pytest.raises(main.UserError, match="no checkpoint"):
        main.execute(ClassificationTask, get_config("tiny"), str(tmp_path), "eval")
    assert os.path.exists(os.path.join(path, "saved_model.pb"))


def test_recover_leaves_a_live_writers_staging_folder_alone(tmp_path):
    import subprocess
    import sys

    model = _model()
    path = str(tmp_path / "export")
    export_lib.write_saved_model(path, model, _endpoints(model))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".export-{live.pid}-abc" / "staged").mkdir(parents=True)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (tmp_path / f".export-{dead.pid}-def" / "staged").mkdir(parents=True)
        export_lib.recover(path)
        assert sorted(os.listdir(tmp_path)) == [f".export-{live.pid}-abc", "export"]
    finally:
        live.kill()
        live.wait()
