"""Data larger than memory: what a data set on disk costs before and during training.

Three data sets, each at a small and an 8x size, written once under the
bench's temporary folder:

- classification: class folders of 2,000 and 16,000 JPEGs (96x96, 10 classes;
  configs/classification.py:folder, ResNet at 64x64);
- detection: a COCO-format JSON of 1,000 and 8,000 JPEGs (96x96, 1-3 boxes
  each; configs/detection.py:coco_json, resized to its 256x256);
- embeddings: text files of 1 M and 8 M words (a Zipf draw over 50,000 word
  types, 20-word sentences; configs/embeddings.py, source=text).

For each, and for each way of reading (config.data.cache = none: decoded as
batches need them; memory: all decoded at the start; a folder: decoded once
at the start into .npy files, read memory-mapped), a fresh Python process
measures

- start-up: seconds from making the task to the end of the first training
  step (listing the files, the model, the first batch; TensorFlow's import
  and the step's tracing are the same for every row),
- examples/s over the next steps (the input pipeline and the model together),
- peak RSS of the process.

Within a data set the rows run small/none, small/memory, large/memory,
large/none (then the folder cache, small then large), so drift on a shared
machine does not favour one way of reading.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

STEPS = 30  # timed steps after the first


class Case:
    """A data set at two sizes: `write(root, size)` makes it (once) and returns the
    config changes that point the app at it."""

    def __init__(self, name, app, task, variant, sizes, unit, write, caches):
        self.name, self.app, self.task, self.variant = name, app, task, variant
        self.sizes, self.unit, self.write, self.caches = sizes, unit, write, caches


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


def write_coco(root, count, size=96, seed=0):
    """A COCO-format JSON of `count` JPEGs with 1-3 boxes each (reused when written)."""
    from PIL import Image

    annotations = os.path.join(root, "annotations.json")
    if os.path.exists(annotations):
        return {"data.annotations": annotations}
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    rng = np.random.default_rng(seed)
    doc = {"images": [], "annotations": [],
           "categories": [{"id": c + 1, "name": f"class_{c}"} for c in range(5)]}
    for i in range(count):
        base = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
        name = f"images/{i:06d}.jpg"
        Image.fromarray(base).resize((size, size), Image.BILINEAR).save(
            os.path.join(root, name), quality=90)
        doc["images"].append({"id": i, "file_name": name, "width": size, "height": size})
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0, size / 2, 2)
            w, h = rng.uniform(8, size / 2, 2)
            doc["annotations"].append({"id": len(doc["annotations"]), "image_id": i,
                                       "category_id": int(rng.integers(1, 6)),
                                       "bbox": [float(x), float(y), float(w), float(h)]})
    with open(annotations + ".tmp", "w") as f:
        json.dump(doc, f)
    os.replace(annotations + ".tmp", annotations)
    return {"data.annotations": annotations}


def write_text(root, words, vocabulary=50_000, sentence=20, seed=0):
    """A text file of `words` words drawn from a Zipf law (reused when written)."""
    path = os.path.join(root, "corpus.txt")
    if not os.path.exists(path):
        os.makedirs(root, exist_ok=True)
        rng = np.random.default_rng(seed)
        ranks = np.arange(1, vocabulary + 1)
        p = 1.0 / ranks
        p /= p.sum()
        with open(path + ".tmp", "w") as f:
            for start in range(0, words, 1_000_000):
                ids = rng.choice(vocabulary, size=min(1_000_000, words - start), p=p)
                lines = ids.reshape(-1, sentence)
                f.writelines(" ".join(f"w{i}" for i in line) + "\n" for line in lines)
        os.replace(path + ".tmp", path)
    return {"data.source": "text", "data.path": path}


CASES = (
    Case("classification: class folders of JPEGs", "classification", "ClassificationTask",
         "folder", (2_000, 16_000), "JPEGs",
         lambda root, n: {"data.path": write_folder(root, n)}, ("none", "memory", "folder")),
    Case("detection: a COCO-format JSON and its JPEGs", "detection", "DetectionTask",
         "coco_json", (1_000, 8_000), "images", write_coco, ("none", "memory")),
    Case("embeddings (word2vec): a text file", "embeddings", "EmbeddingsTask", "",
         (1_000_000, 8_000_000), "words", write_text, ("none",)),
)


def probe(app, task, variant, changes, workdir):
    """One row, in this process: (start-up seconds, examples/s, peak RSS MiB)."""
    import importlib

    import tensorflow as tf

    from apps.core.config import lookup

    config = importlib.import_module(f"configs.{app}").get_config(variant)
    for dotted, value in changes.items():
        *sections, field = dotted.split(".")
        lookup(config, ".".join(sections))[field] = value
    started = time.perf_counter()
    trainer = getattr(importlib.import_module(f"apps.{app}.task"), task)(config).make_trainer(
        workdir)
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


def main(root=None, names=None):
    root = root or os.path.join(tempfile.gettempdir(), "dlsuite-bench-data")
    rows = []
    for case in CASES:
        if names and case.app not in names:
            continue
        small, large = case.sizes
        order = [(small, "none"), (small, "memory"), (large, "memory"), (large, "none"),
                 (small, "folder"), (large, "folder")]
        for size, cache in order:
            if cache not in case.caches:
                continue
            changes = case.write(os.path.join(root, f"{case.app}_{size}"), size)
            with tempfile.TemporaryDirectory() as workdir:
                where = os.path.join(workdir, "cache") if cache == "folder" else cache
                if case.caches != ("none",):
                    changes = {**changes, "data.cache": where}
                code = ("import json; from bench import data; print(json.dumps(data.probe("
                        f"{case.app!r}, {case.task!r}, {case.variant!r}, {changes!r}, "
                        f"{os.path.join(workdir, 'run')!r})))")
                out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                     text=True, check=False,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                                     cwd=os.path.dirname(os.path.dirname(__file__)))
            if out.returncode:
                raise RuntimeError(f"{case.app} {size} {cache}: {out.stderr[-2000:]}")
            row = {"case": case.name, "app": case.app, "unit": case.unit, "size": size,
                   "cache": cache, **json.loads(out.stdout.strip().splitlines()[-1])}
            print(row, flush=True)
            rows.append(row)
    return {"rows": rows}


if __name__ == "__main__":
    main(names=sys.argv[1:])
