"""A loss that becomes NaN, every app: a clear stop that loses nothing.

A finished tiny run (with its checkpoints and export) is trained one epoch
further with DLSUITE_FAULT_NAN_AT_STEP (apps.core.faults) making the loss of
a step in that epoch NaN inside the compiled step, as a real divergence
would. The run must exit with status 2 and one line naming the step; the
latest checkpoint must be the last one before that step and hold finite
weights; the export must be the earlier one, untouched.
"""

import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from apps.core.faults import NAN_AT_STEP
from tests.apps import cli
from tests.suite.runs import APPS, flags_of

pytestmark = pytest.mark.slow


def _latest(workdir):
    return tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))


def _step_of(checkpoint):
    return int(re.search(r"ckpt-(\d+)$", checkpoint).group(1))


def _longer(name, workdir, finished_at):
    """The flag that asks a finished run for more steps."""
    if name == "style_transfer_optimize":
        return f"--config.optimize.steps={finished_at * 2}"
    with open(os.path.join(workdir, "config.json")) as f:
        epochs = json.load(f)["train"]["epochs"]
    return f"--config.train.epochs={epochs + 1}"


@pytest.mark.parametrize("name", sorted(APPS))
def test_a_nan_loss_stops_with_the_step_and_keeps_checkpoint_and_export(
        name, reference, suite_files, tmp_path):
    case = APPS[name]
    workdir = str(tmp_path / "run")
    shutil.copytree(reference(name), workdir)
    finished_at = _step_of(_latest(workdir))
    export_pb = os.path.join(workdir, "export", "saved_model.pb")
    export_stamp = os.path.getmtime(export_pb) if case.exports else None
    flags = flags_of(case, suite_files)
    bad_step = finished_at + 2
    result = cli.run_app(case.app, workdir, *flags, _longer(name, workdir, finished_at),
                         check=False,
                         env={NAN_AT_STEP: str(bad_step)})
    cli.assert_user_error(result, f"became nan at step {bad_step}", "last good checkpoint")
    # Checkpoints up to the step before stay; nothing of the NaN step was saved.
    latest = _latest(workdir)
    assert finished_at <= _step_of(latest) < bad_step
    reader = tf.train.load_checkpoint(latest)
    for key in reader.get_variable_to_shape_map():
        value = reader.get_tensor(key)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), key
    if case.exports:
        assert os.path.getmtime(export_pb) == export_stamp
        tf.saved_model.load(os.path.dirname(export_pb))
