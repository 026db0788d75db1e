"""The machine a benchmark ran on, and its practical float32 peak.

`describe()` records what a reader needs to weigh the figures (CPU model,
cores, TensorFlow version, date, load average); `matmul_peak()` measures the
CPU's practical peak as the GFLOP/s of a large float32 `tf.linalg.matmul`:

    GFLOP/s = 2 n^3 / seconds / 1e9     (n^3 multiply-adds for an n x n by n x n product)

    python -m bench machine
"""

import datetime
import functools
import os
import platform
import statistics
import time

import numpy as np


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo on Linux), else platform's guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    """The 1-, 5- and 15-minute load averages, rounded (None where unknown)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe():
    import tensorflow as tf

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "tensorflow": tf.__version__,
            "python": platform.python_version(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "load_average": load_average()}


def matmul_flops(n):
    """Floating-point operations of an n x n by n x n product: 2 n^3 (a multiply and an add each)."""
    return 2 * n ** 3


@functools.cache
def _products(n, repeats):
    """A traced tf.function that multiplies two fixed n x n matrices `repeats` times."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((n, n), dtype=np.float32))
    b = tf.constant(rng.standard_normal((n, n), dtype=np.float32))

    @tf.function
    def products():
        total = tf.constant(0.0)
        for _ in range(repeats):
            # Each product depends on the last, so none can be skipped or merged,
            # and all of it is summed, so none of it can be left out.
            total += tf.reduce_sum(tf.linalg.matmul(a + total * 0.0, b))
        return total

    float(products())  # traces; not timed
    return products


def matmul_peak(n=4096, repeats=3, rounds=5):
    """GFLOP/s of float32 tf.linalg.matmul(n x n, n x n): the best and median of `rounds`.

    Each round times `repeats` products inside one tf.function call (only a
    scalar comes back to Python); the first call, which traces, is not timed.
    """
    products = _products(n, repeats)
    speeds = []
    for _ in range(rounds):
        start = time.perf_counter()
        float(products())
        speeds.append(repeats * matmul_flops(n) / (time.perf_counter() - start) / 1e9)
    return {"n": n, "repeats": repeats, "rounds": rounds, "best_gflops": max(speeds),
            "median_gflops": statistics.median(speeds),
            "gflops_per_round": speeds, "load_average": load_average()}


def main():
    info = describe()
    peak = matmul_peak()
    print(f"\n{info['cpu']}, {info['cores']} cores, TensorFlow {info['tensorflow']}, "
          f"load {info['load_average']}")
    print(f"float32 matmul {peak['n']}x{peak['n']}: best {peak['best_gflops']:.1f} GFLOP/s, "
          f"median {peak['median_gflops']:.1f}")
    return {"machine": info, "peak": peak}


if __name__ == "__main__":
    main()
