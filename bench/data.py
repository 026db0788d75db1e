"""Data larger than memory: what a folder of images costs before and during training.

Classification on class folders of 2,000 and 16,000 JPEGs (96x96, 10 classes;
configs/classification.py:folder, ResNet at 64x64): for each, and for each
way of reading (config.data.cache = none: decoded as batches need them;
memory: all decoded at the start, as every loader did before), a fresh
Python process measures

- start-up: seconds from making the task to the end of the first training
  step (listing the files, the model, the first batch; TensorFlow's import
  and the step's tracing are the same for every row),
- examples/s over the next steps (the input pipeline and the model together),
- peak RSS of the process.

The rows run in the order small/none, small/memory, large/memory, large/none
(so drift on a shared machine does not favour one way of reading).
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZES = (2_000, 16_000)
STEPS = 30  # timed steps after the first


def write_folder(root, count, classes=10, size=96, seed=0):
    """`count` JPEGs in `classes` sub-folders (reused when already written)."""
    from PIL import Image

    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = os.path.join(root, f"class_{i % classes}")
        os.makedirs(folder, exist_ok=True)
        base = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((size, size), Image.BILINEAR)
        image.save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)
    open(done, "w").close()
    return root


def probe(path, cache, workdir):
    """One row, in this process: (start-up seconds, examples/s, peak RSS MiB)."""
    import tensorflow as tf

    from apps.classification.task import ClassificationTask
    from apps.core.trainer import Trainer
    from configs.classification import get_config

    config = get_config("folder")
    config.data.path, config.data.cache = path, cache
    started = time.perf_counter()
    trainer = Trainer(ClassificationTask(config), workdir)
    steps = trainer.train_step_function(steps=True)
    iterator = iter(trainer.train_dataset(0))
    losses, _ = steps(iterator, tf.constant(1))
    losses.numpy()
    startup = time.perf_counter() - started
    t0 = time.perf_counter()
    losses, _ = steps(iterator, tf.constant(STEPS))
    losses.numpy()
    speed = STEPS * config.train.batch_size / (time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"startup_seconds": startup, "examples_per_sec": speed, "peak_rss_mib": peak}


def main(root=None):
    root = root or os.path.join(tempfile.gettempdir(), "dlsuite-bench-data")
    rows = []
    order = [(SIZES[0], "none"), (SIZES[0], "memory"), (SIZES[1], "memory"),
             (SIZES[1], "none")]
    for count, cache in order:
        folder = write_folder(os.path.join(root, f"jpegs_{count}"), count)
        with tempfile.TemporaryDirectory() as workdir:
            code = ("import json, sys; from bench import data; "
                    f"print(json.dumps(data.probe({folder!r}, {cache!r}, {workdir!r})))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                                 cwd=os.path.dirname(os.path.dirname(__file__)), check=True)
        row = {"images": count, "cache": cache,
               **json.loads(out.stdout.strip().splitlines()[-1])}
        print(row, flush=True)
        rows.append(row)
    return {"rows": rows}


if __name__ == "__main__":
    main()
