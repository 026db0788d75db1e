"""--mode=tune from the command line: a study killed (SIGKILL) mid-trial is
finished by the same command without repeating a finished trial, and two tune
processes sharing one study file run disjoint trials. Slow (command-line
processes, a minute or two in all): `make test-slow`.
"""

import json
import os
import re
import signal
import time

import pytest

from tests.apps import cli

pytestmark = pytest.mark.slow

# Three epochs of the tiny classification run per trial, the learning rate
# searched; no pruning, so every trial trains to its end.
FLAGS = ("--mode=tune", "--config.tune.trials=3", "--config.tune.pruner=none",
         "--config.train.epochs=3",
         "--config.tune.space=optimizer.learning_rate = log_uniform(1e-3, 3e-2)")


def _started_trials(output):
    """Numbers of the trials a tune process started (its 'trial N: field=...' lines)."""
    return [int(n) for n in re.findall(r"^trial (\d+): \w[\w.]*=", output, re.M)]


def _summary(workdir):
    with open(os.path.join(workdir, "tune.json")) as f:
        return json.load(f)


def _wait_for(predicate, process, timeout=300):
    deadline = time.time() + timeout
    while not predicate():
        assert process.poll() is None, "the tune process ended before the kill"
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def test_a_killed_study_is_finished_by_the_same_command(tmp_path):
    workdir = str(tmp_path / "tune")
    log = str(tmp_path / "first.log")
    process = cli.start_app("classification", workdir, *FLAGS, log=log)
    trial_1 = os.path.join(workdir, "trials", "0001")
    # Killed once trial 1 has written a checkpoint and before it has finished.
    _wait_for(lambda: os.path.exists(os.path.join(trial_1, "ckpt", "checkpoint")), process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_0 = os.path.join(workdir, "trials", "0000", "metrics.json")
    stamp = os.path.getmtime(finished_0)
    assert not os.path.exists(os.path.join(trial_1, "metrics.json"))

    result = cli.run_app("classification", workdir, *FLAGS)
    assert "trial 1: continuing it" in result.stdout
    assert _started_trials(result.stdout) == [1, 2]  # trial 0 is not run again
    assert os.path.getmtime(finished_0) == stamp
    rows = _summary(workdir)["trials"]
    assert sorted(r["trial"] for r in rows) == [0, 1, 2]
    assert all(r["state"] == "complete" for r in rows)
    assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))


def test_two_processes_share_one_study_without_repeating_a_trial(tmp_path):
    workdir = str(tmp_path / "tune")
    flags = [*FLAGS[:1], "--config.tune.trials=4", *FLAGS[2:]]
    logs = [str(tmp_path / f"process_{i}.log") for i in range(2)]
    processes = [cli.start_app("classification", workdir, *flags, log=log) for log in logs]
    for process in processes:
        assert process.wait(timeout=600) == 0
    started = []
    for log in logs:
        with open(log) as f:
            started.append(_started_trials(f.read()))
    assert all(started), f"a process ran no trial: {started}"  # they did run side by side
    assert sorted(started[0] + started[1]) == [0, 1, 2, 3]
    rows = _summary(workdir)["trials"]
    assert sorted(r["trial"] for r in rows) == [0, 1, 2, 3]
    assert all(r["state"] == "complete" for r in rows)


@pytest.mark.parametrize("app", ["classification", "detection", "segmentation",
                                 "face_recognition", "style_transfer", "embeddings",
                                 "translation", "trigger_word"])
def test_every_app_tunes_its_default_space(app, tmp_path, suite_files):
    """Two trials of each app's tiny config on its default space: both are
    normal runs, ranked by the app's tuned validation metric."""
    workdir = str(tmp_path / "tune")
    flags = ["--mode=tune", "--config.tune.trials=2"]
    if app == "trigger_word":  # the suite's shared cache of synthesized audio
        flags.append(f"--config.data.cache_dir={suite_files['trigger_word_cache']}")
    result = cli.run_app(app, workdir, *flags)
    summary = _summary(workdir)
    assert len(summary["trials"]) == 2 and summary["best"] is not None, result.stdout[-2000:]
    assert summary["metric"].startswith("val_")
    best = summary["best"]
    with open(os.path.join(best["workdir"], "metrics.json")) as f:
        assert json.load(f)[summary["metric"]] == best[summary["metric"]]
