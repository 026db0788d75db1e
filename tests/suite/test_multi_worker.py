"""Scale out, every app: two MultiWorkerMirroredStrategy workers on loopback.

Each app's tiny run is started as two processes with TF_CONFIG naming both
on 127.0.0.1 and `--config.strategy=multi_worker`, sharing one workdir (the
chief writes the outputs). `config.train.batch_size` is the global batch and
each worker's input pipeline takes its half of every global batch, so the
two workers see exactly the examples one worker sees; only the order of the
floating-point sums in the all-reduce differs. The final test metrics must
therefore match the one-worker reference run to TOLERANCE.

A killed worker: both workers are stopped (as a cluster scheduler restarts a
failed job) after a checkpoint, restarted, and resume from that checkpoint.

The optimisation mode of style transfer optimises one image on one device and
is not distributed; style transfer's fast stylizer is.
"""

import json
import os
import re
import signal
import socket

import pytest
import tensorflow as tf

from apps.core.faults import KILL_AT_STEP
from apps.core.workdir import read_metrics
from tests.apps import cli
from tests.suite.runs import APPS, flags_of, is_timing

pytestmark = pytest.mark.slow

# Metrics of the two-worker run and the one-worker run agree to this
# (absolute, on metrics in [0, 1] and on losses of order 1..10: relative).
TOLERANCE = 1e-3
DISTRIBUTED = sorted(name for name in APPS if name != "style_transfer_optimize")


def _cluster_environments():
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    hosts = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return [{"TF_CONFIG": json.dumps({"cluster": {"worker": hosts},
                                      "task": {"type": "worker", "index": i}})}
            for i in range(2)]


def _start_workers(case, workdir, flags, logs, extra_env=None):
    """Starts the two workers; `extra_env` maps a worker's index to more
    environment variables for it."""
    return [cli.start_app(case.app, workdir, *flags, "--config.strategy=multi_worker",
                          env={**env, **(extra_env or {}).get(i, {})}, log=log)
            for i, (env, log) in enumerate(zip(_cluster_environments(), logs, strict=True))]


def _wait(processes, logs, timeout=900):
    for process, log in zip(processes, logs, strict=True):
        try:
            process.wait(timeout=timeout)
        finally:
            process.kill()
        with open(log) as f:
            assert process.returncode == 0, f.read()[-3000:]


def _latest_step(workdir):
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))
    return int(re.search(r"ckpt-(\d+)$", latest).group(1)) if latest else 0


def _assert_close(metrics, expected):
    differ = {key: (metrics[key], value) for key, value in expected.items()
              if not is_timing(key) and isinstance(value, float)
              and metrics[key] != pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE)}
    assert not differ, f"two workers vs one: {differ}"


@pytest.mark.parametrize("name", DISTRIBUTED)
def test_two_workers_reach_the_one_worker_metrics(name, reference, suite_files, tmp_path):
    case = APPS[name]
    expected = read_metrics(reference(name))
    workdir = str(tmp_path / "run")
    logs = [str(tmp_path / f"worker{i}.log") for i in range(2)]
    _wait(_start_workers(case, workdir, flags_of(case, suite_files), logs), logs)
    metrics = read_metrics(workdir)
    assert metrics["steps"] == expected["steps"]
    _assert_close(metrics, expected)
    if case.exports:
        assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))
    # Only the chief's checkpoints remain.
    assert not [d for d in os.listdir(os.path.join(workdir, "ckpt")) if d.startswith(".worker")]


def test_killed_workers_restarted_resume_from_the_last_checkpoint(reference, suite_files,
                                                                  tmp_path):
    name = "classification"
    case = APPS[name]
    flags = flags_of(case, suite_files)
    workdir = str(tmp_path / "run")
    logs = [str(tmp_path / f"first{i}.log") for i in range(2)]
    # Worker 1 SIGKILLs itself (apps.core.faults) soon after step 4, which
    # leaves the chief stuck in its next all-reduce: the job is stopped and
    # restarted, as a cluster scheduler does with a failed job.
    workers = _start_workers(case, workdir, flags, logs, {1: {KILL_AT_STEP: "4+0.2"}})
    workers[1].wait(timeout=900)
    workers[0].kill()
    workers[0].wait()
    with open(logs[1]) as f:
        assert workers[1].returncode == -signal.SIGKILL, f.read()[-3000:]
    assert read_metrics(workdir) is None
    latest = _latest_step(workdir)
    assert latest >= 1
    logs = [str(tmp_path / f"second{i}.log") for i in range(2)]
    _wait(_start_workers(case, workdir, flags, logs), logs)
    with open(logs[0]) as f:
        restored = re.findall(r"Restored \S+ \(step (\d+)\)", f.read())
    assert restored and int(restored[0]) == latest
    _assert_close(read_metrics(workdir), read_metrics(reference(name)))
