"""tf.distribute strategy from config, and the precision policy.

    default       tf.distribute.get_strategy() (no distribution)
    one_device    OneDeviceStrategy on the first GPU, else the CPU
    mirrored      MirroredStrategy over the local GPUs (or CPU)
    multi_worker  MultiWorkerMirroredStrategy; workers and this task's role
                  come from the TF_CONFIG environment variable
    tpu           TPUStrategy on config.tpu (or the TPU found locally)
"""

import json
import os

import keras
import tensorflow as tf

from apps.core.errors import UserError

# A process has one cluster strategy: TensorFlow configures its collective ops
# once, at startup, before any other op runs (see apps.core.main.execute).
_CLUSTER_STRATEGIES = {}


def make_strategy(name, tpu_address=""):
    """The strategy `name`; multi_worker and tpu ones are made once per process."""
    if name in ("multi_worker", "tpu"):
        key = (name, tpu_address)
        if key not in _CLUSTER_STRATEGIES:
            _CLUSTER_STRATEGIES[key] = _make(name, tpu_address)
        return _CLUSTER_STRATEGIES[key]
    return _make(name, tpu_address)


def _make(name, tpu_address):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("config.strategy = 'multi_worker' needs the TF_CONFIG "
                            "environment variable (cluster and task)")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as e:
            raise UserError(f"TF_CONFIG is not valid JSON: {e}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(f"config.strategy = {name!r}: expected one of default, one_device, "
                    "mirrored, multi_worker, tpu")


def is_chief(strategy):
    """True on the worker that writes summaries, metrics and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (
        task_type == "worker" and task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def worker_id(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_id is None:
        return 0
    return int(resolver.task_id)


def set_precision(mixed_precision):
    """float16 compute on GPUs, bfloat16 on CPUs/TPUs; float32 when off.

    Returns True when the loss must be scaled (float16 underflows).
    """
    if not mixed_precision:
        keras.mixed_precision.set_global_policy("float32")
        return False
    if tf.config.list_logical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
        return True
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    return False
