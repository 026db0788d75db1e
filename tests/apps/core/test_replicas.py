"""Two replicas train as one does, app by app (what multi-worker relies on).

`config.train.batch_size` is the global batch: with two replicas each takes
half of it, and training must still follow the one-replica trajectory up to
the order of floating-point sums. Each case exercises one way that can fail:
BatchNorm statistics of a half batch (classification's ResNet, detection),
mining triplets in half a batch (face recognition: the embeddings are
all-gathered), and clipping the global norm of sparse embedding gradients
whose rows repeat across replicas (translation).
"""

import importlib

import numpy as np
import pytest
import tensorflow as tf

from apps.core.trainer import Trainer

pytestmark = pytest.mark.slow  # with the suite's two-worker runs, which rely on it

CASES = {
    "classification": ("ClassificationTask", {"model.name": "resnet"}),
    "detection": ("DetectionTask", {}),
    "face_recognition": ("FaceRecognitionTask", {}),
    "translation": ("TranslationTask", {}),  # clipnorm 1.0, embedding rows repeat
}


def _trajectory(app, workdir, strategy, steps=3):
    class_name, overrides = CASES[app]
    task_cls = getattr(importlib.import_module(f"apps.{app}.task"), class_name)
    config = importlib.import_module(f"configs.{app}").get_config("tiny")
    for dotted, value in overrides.items():
        section, field = dotted.split(".")
        config[section][field] = value
    trainer = Trainer(task_cls(config), str(workdir), strategy=strategy)
    step = trainer.train_step_function()
    iterator = iter(trainer.train_dataset(0))
    losses = [float(step(iterator)) for _ in range(steps)]
    return losses, [v.numpy() for v in trainer.model.trainable_variables]


@pytest.mark.parametrize("app", sorted(CASES))
def test_two_replicas_follow_the_one_replica_trajectory(app, tmp_path, two_cpu_strategy):
    one_losses, one = _trajectory(app, tmp_path / "one", tf.distribute.get_strategy())
    two_losses, two = _trajectory(app, tmp_path / "two", two_cpu_strategy)
    np.testing.assert_allclose(two_losses, one_losses, rtol=2e-5)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)
