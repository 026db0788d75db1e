"""Test-session setup shared by the whole suite.

TensorFlow's CPU is split into two logical devices before anything else touches
it, so tests can train under a MirroredStrategy with two replicas on one CPU.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import pytest  # noqa: E402
from tensorflow.python.framework import config as tf_config  # noqa: E402


@pytest.fixture(autouse=True)
def _no_leaked_op_determinism():
    """Tests that run an app in process turn op determinism on for the whole
    process; switch it back off so later tests (XLA ones) see the default."""
    yield
    tf_config.disable_op_determinism()


@pytest.fixture
def two_cpu_strategy():
    """A MirroredStrategy over the two logical CPU devices.

    Every new MirroredStrategy in a process numbers its collective ops from
    the same key, so a second one whose first all-reduce has another shape
    fails ("Shape mismatch in the collective instance"); TensorFlow's own
    tests move this class attribute (documented "only set this in tests").
    """
    tf.distribute.MirroredStrategy._collective_key_base += 1000
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
