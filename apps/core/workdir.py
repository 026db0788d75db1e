"""Paths inside a workdir, metrics.json, the kept vocabulary and the names of
predict outputs."""

import collections
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


def keep_vocabulary(workdir, vocabulary, save=False):
    """Refuses a workdir trained with another vocabulary; `save` writes DIR/vocab.json.

    The trainer calls this for a task whose token ids are learned from
    config.data (Task.vocabulary: word embeddings, translation): other data
    (another file, other sizes) can give
    other ids, and a checkpoint read with them would load without complaint
    when the sizes agree and give every token another's weights.
    `vocabulary` is JSON: a list of tokens, or {name: list of tokens}.
    """
    from apps.core.errors import UserError

    path = os.path.join(workdir, "vocab.json")
    current = json.loads(json.dumps(vocabulary))
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                previous = json.load(f)
            if type(previous) is not type(current):
                raise ValueError(f"expected a JSON {type(current).__name__}")
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: unreadable vocabulary of an earlier run ({e})") from None
        if previous != current:
            raise UserError(
                f"--workdir={workdir} was trained with another vocabulary ({_sizes(previous)} "
                f"tokens in {path}; config.data now gives {_sizes(current)} or other tokens); "
                "choose another --workdir or the same config.data")
    elif save:
        os.makedirs(workdir, exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(current, f, ensure_ascii=False)
        os.replace(path + ".tmp", path)


def _sizes(vocabulary):
    if isinstance(vocabulary, dict):
        return "/".join(f"{len(tokens)} {name}" for name, tokens in vocabulary.items())
    return str(len(vocabulary))


def output_names(files, input_path, keep_folders=False):
    """{file: a distinct name for its outputs} for the input files of a predict run.

    The name is the file's path under `input_path` (a folder, or the file
    itself) without its extension, folders joined by "_" (a/x.png -> a_x)
    unless `keep_folders` (a/x.png -> a/x). Inputs that would share a name
    keep their extension in it (x.jpg, x.png -> x_jpg, x_png), and a name
    still taken gets a number (_2, _3, ...), so no output overwrites another.
    """
    root = input_path if os.path.isdir(input_path) else os.path.dirname(input_path)
    stems = {}
    for file in files:
        stem = os.path.splitext(os.path.relpath(file, root or "."))[0]
        stems[file] = stem if keep_folders else stem.replace(os.sep, "_")
    counts = collections.Counter(stems.values())
    names, taken = {}, set()
    for file in files:
        name = stems[file]
        if counts[name] > 1:
            name += "_" + os.path.splitext(file)[1].lstrip(".")
        base, number = name, 1
        while name in taken:
            number += 1
            name = f"{base}_{number}"
        taken.add(name)
        names[file] = name
    return names
