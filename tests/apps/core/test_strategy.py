"""The strategy factory and the precision policy."""

import json

import keras
import pytest
import tensorflow as tf

from apps.core import strategy as strategy_lib
from apps.core.errors import UserError


def test_default_and_one_device_and_mirrored():
    assert strategy_lib.make_strategy("default") is tf.distribute.get_strategy()
    one = strategy_lib.make_strategy("one_device")
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert one.num_replicas_in_sync == 1
    mirrored = strategy_lib.make_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert strategy_lib.is_chief(mirrored)


def test_multi_worker_needs_a_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="TF_CONFIG"):
        strategy_lib.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        strategy_lib.make_strategy("multi_worker")


def test_unknown_strategy_is_a_user_error():
    with pytest.raises(UserError, match="config.strategy = 'gpu'"):
        strategy_lib.make_strategy("gpu")


def test_chief_is_worker_zero_without_a_chief_task():
    class Resolver:
        def __init__(self, task_type, task_id, cluster):
            self.task_type, self.task_id, self._cluster = task_type, task_id, cluster

        def cluster_spec(self):
            return tf.train.ClusterSpec(self._cluster)

    class FakeMultiWorker(tf.distribute.MultiWorkerMirroredStrategy):
        def __init__(self, resolver):  # no cluster is started
            self._resolver = resolver

        @property
        def cluster_resolver(self):
            return self._resolver

    workers = {"worker": ["localhost:1", "localhost:2"]}
    assert strategy_lib.is_chief(FakeMultiWorker(Resolver("worker", 0, workers)))
    assert not strategy_lib.is_chief(FakeMultiWorker(Resolver("worker", 1, workers)))
    with_chief = {"chief": ["localhost:3"], **workers}
    assert not strategy_lib.is_chief(FakeMultiWorker(Resolver("worker", 0, with_chief)))
    assert strategy_lib.is_chief(FakeMultiWorker(Resolver("chief", 0, with_chief)))
    assert strategy_lib.worker_id(FakeMultiWorker(Resolver("worker", 1, workers))) == 1
    assert json.dumps(workers)  # the cluster description is plain JSON


def test_precision_policy():
    try:
        assert strategy_lib.set_precision(False) is False
        assert keras.mixed_precision.global_policy().name == "float32"
        scale = strategy_lib.set_precision(True)
        policy = keras.mixed_precision.global_policy().name
        assert policy == ("mixed_float16" if scale else "mixed_bfloat16")
        assert scale == bool(tf.config.list_logical_devices("GPU"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
