"""apps.core.faults: the self-kill that the suite's resume tests use."""

import signal
import subprocess
import sys

import pytest

from apps.core import faults
from tests.apps.cli import ROOT

pytestmark = pytest.mark.slow  # run with the suite's kill-and-resume tests that use it

SCRIPT = """
import sys
from apps.core import faults
for step in map(int, sys.argv[1:]):
    faults.after_train_call(step)
    print("ran", step, flush=True)
faults.before_finish()
print("finished", flush=True)
"""


def _run(kill, *steps):
    return subprocess.run([sys.executable, "-c", SCRIPT, *map(str, steps)], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", faults.KILL_AT_STEP: kill,
                               "TF_CPP_MIN_LOG_LEVEL": "3"},
                          capture_output=True, text=True, timeout=120)


def test_unset_does_nothing(monkeypatch):
    monkeypatch.delenv(faults.KILL_AT_STEP, raising=False)
    for step in range(1, 5):
        faults.after_train_call(step)
    faults.before_finish()
    assert not faults._kill_timer


@pytest.mark.parametrize("value", ["x", "0+1", "3+-1", "3+nan", "+1", "3+a"])
def test_a_malformed_value_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(faults.KILL_AT_STEP, value)
    with pytest.raises(ValueError, match=faults.KILL_AT_STEP):
        faults.after_train_call(1)


def test_the_kill_lands_before_the_next_call_ends():
    # Armed at the call that reaches step 3 (from 2 to 4); the delay is long,
    # so the next call's end waits for it.
    result = _run("3+0.5", 2, 4, 6, 8)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert result.stdout.split() == ["ran", "2", "ran", "4"], result.stdout


def test_the_kill_lands_before_training_ends():
    result = _run("4+0.3", 2, 4)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert "finished" not in result.stdout and "ran 4" in result.stdout


def test_a_step_never_reached_lets_the_run_finish():
    result = _run("9+0", 2, 4)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ran", "2", "ran", "4", "finished"]


EXPORT_SCRIPT = """
import os
import sys
from apps.core import export
with export.staged_folder(sys.argv[1]) as staged:
    os.makedirs(staged)
    print("wrote", flush=True)
print("returned", flush=True)
"""


def test_an_export_kills_itself_before_it_returns(tmp_path):
    target = str(tmp_path / "export")
    result = subprocess.run([sys.executable, "-c", EXPORT_SCRIPT, target], cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin", faults.KILL_IN_EXPORT: "0.2",
                                 "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert "returned" not in result.stdout


def test_a_malformed_export_delay_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(faults.KILL_IN_EXPORT, "soon")
    with pytest.raises(ValueError, match=faults.KILL_IN_EXPORT):
        faults.export_started()
