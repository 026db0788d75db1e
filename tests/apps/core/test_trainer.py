"""The shared trainer on a small regression task (in process, fast)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.core import data as data_lib
from apps.core.config import common_config
from apps.core.errors import UserError
from apps.core.inference import predict_outputs
from apps.core.optim import optimizer_config
from apps.core.task import Data, Task
from apps.core.trainer import Trainer


class Regression(Task):
    """y = x . w_true, learned by one Dense layer (after dropout)."""

    def load_data(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(96, 4)).astype(np.float32)
        y = (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)).astype(np.float32)
        if self.config.get("poison_step") is not None:
            x[:] = np.nan  # every batch is NaN from the first step on
        split = data_lib.Split(x, y)
        return Data(split.take(slice(0, 64)), split.take(slice(64, 80)),
                    split.take(slice(80, 96)))

    def build_model(self):
        inputs = keras.Input((4,))
        hidden = keras.layers.Dropout(self.config.get("dropout", 0.1), seed=1)(inputs)
        return keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden)[:, 0])

    def per_example_loss(self, targets, outputs):
        return tf.square(targets - outputs)

    def evaluate(self, model, split):
        outputs = predict_outputs(model, split, 8, self.eval_example)
        return {"mse": float(np.mean((outputs - split.targets) ** 2))}, {}

    def export_endpoints(self, model):
        return {"serving_default": (lambda x: {"y": model(x, training=False)},
                                    [tf.TensorSpec([None, 4], tf.float32)])}


def _config(**train):
    config = common_config("regression")
    config.optimizer = optimizer_config("momentum", learning_rate=0.05)
    config.optimizer.clipnorm = 0.5
    config.train.batch_size = 16
    config.train.epochs = 2
    config.train.checkpoint_every = 3
    config.train.update(train)
    # The steps these tests count are of all 64 training examples: no train-dev.
    config.diagnosis.train_dev_fraction = 0.0
    return config


def _weights(trainer):
    return [np.asarray(v.numpy()) for v in trainer.model.trainable_variables]


def test_the_train_step_is_traced_without_autograph(tmp_path):
    class Branching(Regression):
        def per_example_loss(self, targets, outputs):
            if tf.reduce_mean(outputs) > 0:  # autograph would make this a tf.cond
                return tf.abs(targets - outputs)
            return tf.square(targets - outputs)

    trainer = Trainer(Branching(_config()), str(tmp_path))
    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError):
        trainer.train()


def test_mirrored_two_replicas_equal_one_device_with_clipping(tmp_path, two_cpu_strategy):
    # No dropout here: each replica draws its own masks, so only the
    # deterministic part of training can match across replica counts.
    config = _config()
    config.dropout = 0.0
    single = Trainer(Regression(config), str(tmp_path / "one"))
    single.train()
    mirrored = Trainer(Regression(config), str(tmp_path / "two"), strategy=two_cpu_strategy)
    assert mirrored.strategy.num_replicas_in_sync == 2
    mirrored.train()
    for a, b in zip(_weights(single), _weights(mirrored), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_resume_after_a_crash_continues_from_the_checkpoint(tmp_path):
    whole = Trainer(Regression(_config()), str(tmp_path / "whole"))
    whole.train()

    first = Trainer(Regression(_config(epochs=1)), str(tmp_path / "cut"))
    first.train()  # a run stopped after epoch 1 (8 steps of 16)
    second = Trainer(Regression(_config()), str(tmp_path / "cut"))
    metrics = second.train()
    assert metrics["steps"] == 8
    for a, b in zip(_weights(whole), _weights(second), strict=True):
        np.testing.assert_array_equal(a, b)


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path):
    workdir = str(tmp_path)
    Trainer(Regression(_config(epochs=1)), workdir).train()
    saved = sorted(os.listdir(os.path.join(workdir, "ckpt")))
    config = _config(epochs=2)
    config.poison_step = 1
    with pytest.raises(UserError, match=r"loss became nan at step 5"):
        Trainer(Regression(config), workdir).train()
    assert sorted(os.listdir(os.path.join(workdir, "ckpt"))) == saved


def test_eval_and_export_need_a_checkpoint(tmp_path):
    trainer = Trainer(Regression(_config()), str(tmp_path))
    with pytest.raises(UserError, match="no checkpoint"):
        trainer.evaluate()


def test_batch_not_divisible_by_replicas_is_a_user_error(tmp_path, two_cpu_strategy):
    with pytest.raises(UserError, match="multiple of the 2 replicas"):
        Trainer(Regression(_config(batch_size=15)), str(tmp_path), strategy=two_cpu_strategy)


def test_mixed_precision_trains_with_finite_loss(tmp_path):
    config = _config(epochs=1)
    config.mixed_precision = True
    try:
        trainer = Trainer(Regression(config), str(tmp_path))
        assert trainer.model.layers[-2].compute_dtype in ("bfloat16", "float16")
        metrics = trainer.train()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(metrics["test_mse"])


def test_a_checkpoint_of_another_model_is_a_one_line_error(tmp_path):
    from apps.classification.task import ClassificationTask
    from configs.classification import get_config

    config = get_config("tiny")
    config.train.epochs = 1
    Trainer(ClassificationTask(config), str(tmp_path)).train()
    wider = get_config("tiny")
    wider.model.width = 2.0  # other kernel shapes, past the config.json check
    with pytest.raises(UserError, match=r"ckpt-\d+: does not fit this run's model") as error:
        Trainer(ClassificationTask(wider), str(tmp_path)).restore()
    assert "\n" not in str(error.value)
