"""Several train steps per call (Trainer.train_step_function(steps=True)) are exact."""

import numpy as np
import pytest
import tensorflow as tf

from apps.core.trainer import MAX_STEPS_PER_CALL, Trainer
from tests.apps.core.test_trainer import Regression, _config, _weights


def _run(trainer, counts):
    """Trains `trainer` in calls of `counts` steps; returns the losses, step by step."""
    iterator = iter(trainer.train_dataset(0))
    if counts is None:  # one call per step, as before
        step = trainer.train_step_function()
        losses = []
        for _ in range(6):
            losses.append(float(step(iterator)))
            trainer.step.assign_add(1)
        return losses
    steps = trainer.train_step_function(steps=True)
    return [float(x) for n in counts for x in steps(iterator, tf.constant(n))[0]]


@pytest.mark.parametrize("counts, xla", [((6,), False), ((1, 3, 2), False), ((2, 4), True)])
def test_steps_in_one_call_reach_the_weights_of_one_call_per_step(tmp_path, counts, xla):
    config = _config(epochs=3)  # dropout 0.1: the masks must follow the steps too
    config.xla = xla
    one = Trainer(Regression(config), str(tmp_path / "one"))
    many = Trainer(Regression(config), str(tmp_path / "many"))
    assert _run(one, None) == _run(many, counts)
    for a, b in zip(_weights(one), _weights(many), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(many.step.numpy()) == int(one.step.numpy()) == 6


def test_calls_end_at_every_log_checkpoint_and_epoch_boundary(tmp_path):
    trainer = Trainer(Regression(_config(checkpoint_every=3, log_every=5, epochs=2)),
                      str(tmp_path))
    assert trainer.steps_per_epoch == 4
    # boundaries at multiples of 3 (checkpoint), 4 (epoch) and 5 (log)
    assert [trainer.steps_in_call(s) for s in range(8)] == [3, 2, 1, 1, 1, 1, 2, 1]
    trainer = Trainer(Regression(_config(checkpoint_every=0, log_every=1000, epochs=40)),
                      str(tmp_path / "long"))
    trainer.steps_per_epoch = 100
    assert trainer.steps_in_call(0) == MAX_STEPS_PER_CALL


def test_training_in_calls_matches_the_tensorboard_steps(tmp_path):
    """train() logs, checkpoints and validates at the same steps as before."""
    trainer = Trainer(Regression(_config(checkpoint_every=3, log_every=2)), str(tmp_path))
    metrics = trainer.train()
    assert metrics["steps"] == 8 and metrics["examples_per_sec"] > 0
    assert trainer.manager.checkpoints[-1].endswith("-8")
    assert [int(p.rsplit("-", 1)[1]) for p in trainer.manager.checkpoints] == [4, 6, 8]
