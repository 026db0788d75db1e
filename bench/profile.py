"""Profiles training steps of an app's default config with the TensorBoard profiler.

    python -m bench.profile CASE [STEPS] [LOGDIR]    # e.g. classification, "translation (transformer)"

Traces STEPS train steps (default 30, after a warm-up) of the trainer that
bench.training times, with tf.profiler.experimental, into LOGDIR (default
runs/profile/<case>; open it with `tensorboard --logdir LOGDIR`, Profile
tab), then prints where the host's time went: the trace events summed by
name over all threads, as a share of the traced wall time, per step.
Events nest (a step's function call holds its ops), so shares add up to more
than 100%.
"""

import collections
import glob
import os
import sys
import tempfile
import time


def host_events(logdir):
    """{event name: (count, total seconds)} over the host threads of the newest profile."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")),
                   key=os.path.getmtime)
    if not paths:
        raise SystemExit(f"no profile under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.defaultdict(lambda: [0, 0.0])
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                totals[name][0] += 1
                totals[name][1] += event.duration_ps * 1e-12
    return {name: tuple(v) for name, v in totals.items()}


def profile(case_name, steps=30, logdir=None):
    import tensorflow as tf
    from absl import logging

    from bench.training import _case, _Runner

    logging.set_verbosity(logging.WARNING)
    case = _case(case_name)
    logdir = logdir or os.path.join("runs", "profile", case.name.replace(" ", "_"))
    with tempfile.TemporaryDirectory() as tmp:
        runner = _Runner(case, False, tmp)
        runner.run(5)
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        speed = runner.run(steps)
        wall = time.perf_counter() - start
        tf.profiler.experimental.stop()
    events = host_events(logdir)
    print(f"\n{case.name}: {steps} steps in {wall:.2f} s ({speed:.1f} examples/s while "
          f"tracing); profile in {logdir}")
    print(f"{'host event':<70}{'count':>8}{'ms/step':>9}{'share':>8}")
    for name, (count, seconds) in sorted(events.items(), key=lambda kv: -kv[1][1])[:30]:
        print(f"{name[:69]:<70}{count:>8}{seconds / steps * 1e3:>9.2f}{seconds / wall:>8.1%}")
    return events


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    profile(args[0], int(args[1]) if len(args) > 1 else 30, args[2] if len(args) > 2 else None)
