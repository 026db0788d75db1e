"""Test-session setup shared by the whole suite.

TensorFlow's CPU is split into two logical devices before anything else touches
it, so tests can train under a MirroredStrategy with two replicas on one CPU.

Under `KERAS_BACKEND=jax` (the library's tests, `make test`'s second run, and
bench/gpu.sh on a GPU host without TensorFlow) TensorFlow is not imported here,
64-bit types are enabled (the gradient checks and float64 twins need them), and
the TensorFlow-only fixture skips its tests.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras reads the same variable (it overrides ~/.keras/keras.json).
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")

if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    from tensorflow.python.framework import config as tf_config
elif BACKEND == "jax":
    os.environ.setdefault("JAX_ENABLE_X64", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_leaked_op_determinism():
    """Tests that run an app in process turn op determinism on for the whole
    process; switch it back off so later tests (XLA ones) see the default."""
    yield
    if BACKEND == "tensorflow":
        tf_config.disable_op_determinism()


@pytest.fixture
def two_cpu_strategy():
    """A MirroredStrategy over the two logical CPU devices.

    Every new MirroredStrategy in a process numbers its collective ops from
    the same key, so a second one whose first all-reduce has another shape
    fails ("Shape mismatch in the collective instance"); TensorFlow's own
    tests move this class attribute (documented "only set this in tests").
    """
    if BACKEND != "tensorflow":
        pytest.skip("tf.distribute needs the TensorFlow backend")
    tf.distribute.MirroredStrategy._collective_key_base += 1000
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
