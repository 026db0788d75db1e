"""Paths inside a workdir, and metrics.json."""

import json
import math
import os


def paths(workdir):
    return {
        "config": os.path.join(workdir, "config.json"),
        "metrics": os.path.join(workdir, "metrics.json"),
        "ckpt": os.path.join(workdir, "ckpt"),
        "tb_train": os.path.join(workdir, "tb", "train"),
        "tb_eval": os.path.join(workdir, "tb", "eval"),
        "export": os.path.join(workdir, "export"),
    }


def write_metrics(workdir, metrics):
    """Writes metrics.json atomically; non-finite numbers become null."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in metrics.items()}
    path = paths(workdir)["metrics"]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(clean, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def read_metrics(workdir):
    path = paths(workdir)["metrics"]
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
