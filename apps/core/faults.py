"""Fault injection, so the suite can prove the NaN guard and resume end to end.

Each is driven by an environment variable that is unset outside tests.

- DLSUITE_FAULT_NAN_AT_STEP=N: the training loss of step N (1-based, the step
  counter after it) is replaced by NaN inside the compiled step, so the
  gradients and then the weights become NaN exactly as in a real divergence.
  Unset, the step is unchanged: the check happens once, when the step
  function is built.
- DLSUITE_FAULT_KILL_AT_STEP=N+SECONDS: once a training call has brought the
  step counter to N or past it, the process SIGKILLs itself SECONDS later,
  from a timer thread, while training goes on (writing the checkpoint that
  may be due, running the next call). The next call's end waits for the
  kill, so it lands anywhere between the end of the call that reached
  step N and the end of the next one (during a checkpoint write too), and
  never after training has ended (its end waits too). A kill from outside
  would race a fast run's end.
- DLSUITE_FAULT_KILL_IN_EXPORT=SECONDS: the first export the process starts
  (apps.core.export.staged_folder) SIGKILLs it SECONDS after its staging
  folder is made; the export's end waits for the kill, so it lands anywhere
  in the writing, the renames or the cleanup.
"""

import os
import signal
import threading
import time

import tensorflow as tf

NAN_AT_STEP = "DLSUITE_FAULT_NAN_AT_STEP"
KILL_AT_STEP = "DLSUITE_FAULT_KILL_AT_STEP"
KILL_IN_EXPORT = "DLSUITE_FAULT_KILL_IN_EXPORT"


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


def _kill_at_step():
    """(step, seconds) asked for by DLSUITE_FAULT_KILL_AT_STEP, or None."""
    value = os.environ.get(KILL_AT_STEP, "").strip()
    if not value:
        return None
    step, _, seconds = value.partition("+")
    try:
        step, seconds = int(step), float(seconds or 0)
    except ValueError:
        step = seconds = -1
    if step < 1 or not seconds >= 0:
        raise ValueError(f"{KILL_AT_STEP}={value!r}: expected STEP+SECONDS, "
                         "a step >= 1 and seconds >= 0")
    return step, seconds


_kill_timer = []  # the armed timer, once there is one


def _arm_kill(seconds):
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGKILL))
    timer.daemon = True
    _kill_timer.append(timer)
    timer.start()


def _wait_for_an_armed_kill():
    while _kill_timer:  # the timer's SIGKILL ends this wait
        time.sleep(1.0)


def after_train_call(step):
    """Called by the training loops after each train call, with the step
    counter after it; acts only under DLSUITE_FAULT_KILL_AT_STEP."""
    kill = _kill_at_step()
    if kill is None:
        return
    _wait_for_an_armed_kill()
    at, seconds = kill
    if step >= at:
        _arm_kill(seconds)


def before_finish():
    """Called by the training loops after the last train call: an armed kill
    lands before the run tests, exports and writes its metrics."""
    _wait_for_an_armed_kill()


def export_started():
    """Called by apps.core.export once its staging folder exists."""
    value = os.environ.get(KILL_IN_EXPORT, "").strip()
    if not value or _kill_timer:
        return
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ValueError(f"{KILL_IN_EXPORT}={value!r}: expected seconds >= 0")
    _arm_kill(seconds)


def export_ended():
    """Called by apps.core.export as it returns: an armed kill lands first."""
    _wait_for_an_armed_kill()
