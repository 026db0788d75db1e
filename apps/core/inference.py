"""Running a model over a split in inference mode, with its compiled functions cached."""

import weakref

import numpy as np
import tensorflow as tf

from apps.core import data as data_lib

_COMPILED = weakref.WeakKeyDictionary()


def compiled(model, key, make):
    """The function `make()` builds for `model` under `key`, built once per model.

    A task's evaluation calls the same tf.function after every epoch; keeping
    it (per model, so a new model gets its own) avoids tracing it again.
    """
    functions = _COMPILED.setdefault(model, {})
    if key not in functions:
        functions[key] = make()
    return functions[key]


def predict_outputs(model, split, batch_size, example_fn):
    """Runs `model` over `split` in order; returns its outputs as NumPy arrays.

    `example_fn(inputs, targets)` prepares each example as in evaluation.
    """
    infer = compiled(model, "infer",
                     lambda: tf.function(lambda x: model(x, training=False), autograph=False))
    outputs = [tf.nest.map_structure(np.asarray, infer(x))
               for x, _ in data_lib.eval_batches(split, batch_size, example_fn)]
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *outputs)
