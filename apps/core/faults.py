"""Fault injection, so the suite can prove the NaN guard end to end.

With the environment variable DLSUITE_FAULT_NAN_AT_STEP=N set, the training
loss of step N (1-based, the step counter after it) is replaced by NaN inside
the compiled step, so the gradients and then the weights become NaN exactly
as in a real divergence. Unset (always, outside tests) the step is unchanged:
the check happens once, when the step function is built.
"""

import os

import tensorflow as tf

NAN_AT_STEP = "DLSUITE_FAULT_NAN_AT_STEP"


def nan_at_step():
    """The step asked for by DLSUITE_FAULT_NAN_AT_STEP, or 0 for none."""
    value = os.environ.get(NAN_AT_STEP, "").strip()
    if not value:
        return 0
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{NAN_AT_STEP}={value!r}: expected a step number >= 1")
    return int(value)


def poison_loss(loss, steps_done):
    """`loss`, or NaN when this is the step that DLSUITE_FAULT_NAN_AT_STEP names.

    `steps_done` is the number of steps finished before this one (a tensor).
    """
    at = nan_at_step()
    if not at:
        return loss
    return tf.where(tf.equal(tf.cast(steps_done, tf.int64) + 1, at),
                    tf.constant(float("nan"), loss.dtype), loss)
