"""Timing helpers shared by the benchmarks.

`compare` times two step functions (ours and Keras's twin) alternately, after a
warm-up, so that drift on a shared machine hits both sides alike, and reports
the median step time of each and their ratio.
"""

import json
import os
import statistics
import time


def _time_once(step, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        out = step()
    # Block until the work is really done (results may be async tensors).
    if hasattr(out, "numpy"):
        out.numpy()
    return (time.perf_counter() - start) / repeats


def compare(name, ours, theirs, *, rounds=15, repeats=10, warmup=3, **extra):
    """Times `ours()` against `theirs()`; returns a result row (a dict).

    Each round runs `repeats` steps of one, then of the other (the order
    alternating every round); the medians over rounds are compared.
    """
    for _ in range(warmup):
        _time_once(ours, 1)
        _time_once(theirs, 1)
    ours_t, theirs_t = [], []
    for r in range(rounds):
        pair = [(ours, ours_t), (theirs, theirs_t)]
        if r % 2:
            pair.reverse()
        for fn, sink in pair:
            sink.append(_time_once(fn, repeats))
    ours_ms = statistics.median(ours_t) * 1e3
    keras_ms = statistics.median(theirs_t) * 1e3
    return {"name": name, "ours_ms": ours_ms, "keras_ms": keras_ms,
            "ratio": ours_ms / keras_ms, **extra}


def print_table(title, rows, target=None):
    """Prints rows from `compare` as a fixed-width table."""
    print(f"\n{title}")
    head = f"{'piece':<34}{'xla':>5}{'ours ms':>10}{'keras ms':>10}{'ratio':>8}"
    if target:
        head += f"{'target':>8}"
    print(head)
    print("-" * len(head))
    for row in rows:
        line = (f"{row['name']:<34}{str(row.get('xla', '')):>5}{row['ours_ms']:>10.3f}"
                f"{row['keras_ms']:>10.3f}{row['ratio']:>8.3f}")
        if target:
            line += f"{'ok' if row['ratio'] <= target else 'SLOW':>8}"
        print(line)


def write_json(filename, payload):
    """Writes `payload` to bench/results/<filename> and returns the path."""
    folder = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, filename)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    return path
