"""Two MultiWorkerMirroredStrategy workers on loopback train the tiny config.

Each worker is a separate process (TF_CONFIG names both on 127.0.0.1 ports);
run as `python -m tests.apps.core.test_multi_worker INDEX PORT0 PORT1 WORKDIR OUT`
it trains and saves its final weights to OUT, so the test can compare them.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # two training processes that talk over loopback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_end_with_identical_weights(tmp_path):
    ports = _free_ports(2)
    workdir = str(tmp_path / "run")
    outs = [str(tmp_path / f"worker{i}.npz") for i in range(2)]
    processes = [subprocess.Popen(
        [sys.executable, "-m", "tests.apps.core.test_multi_worker", str(i), str(ports[0]),
         str(ports[1]), workdir, outs[i]],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    try:
        logs = [p.communicate(timeout=300)[0] for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, log in zip(processes, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    first, second = np.load(outs[0]), np.load(outs[1])
    assert len(first.files) > 4 and first.files == second.files
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name])
    # Only the chief writes the run's outputs; the other worker's checkpoint
    # copies are removed.
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))
    assert not [d for d in os.listdir(os.path.join(workdir, "ckpt")) if d.startswith(".worker")]


def _worker(index, port0, port1, workdir, out):
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{port0}", f"127.0.0.1:{port1}"]},
        "task": {"type": "worker", "index": index}})
    from apps.classification.task import ClassificationTask
    from apps.core.trainer import Trainer
    from configs.classification import get_config

    config = get_config("tiny")
    config.strategy = "multi_worker"
    config.train.epochs = 1
    trainer = Trainer(ClassificationTask(config), workdir)
    trainer.train()
    np.savez(out, *[np.asarray(v.numpy()) for v in trainer.model.variables])


if __name__ == "__main__":
    index, port0, port1, workdir, out = sys.argv[1:]
    _worker(int(index), port0, port1, workdir, out)
