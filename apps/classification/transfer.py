"""Transfer learning: start from the weights of another run of the same model.

`config.transfer.init_from` names another run's workdir, its ckpt/ folder, a
checkpoint prefix, or its exported SavedModel. Both hold the model's variables
as one ordered list (the checkpoint's `model_variables`, the SavedModel's
`model_variables` collection), so a run of the same `config.model` lines up
variable by variable; the head is skipped unless `keep_head`, so a run with
other classes gets a fresh head. Freezing is `config.transfer.freeze_layers`.
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core.errors import UserError

_KEY = "model_variables/{}/.ATTRIBUTES/VARIABLE_VALUE"


def read_variables(source):
    """The ordered list of model variable values saved at `source`."""
    if os.path.exists(os.path.join(source, "saved_model.pb")):
        loaded = tf.saved_model.load(source)
        if not hasattr(loaded, "model_variables"):
            raise UserError(f"config.transfer.init_from = {source!r}: SavedModel not "
                            "exported by this project (no model_variables)")
        return [np.asarray(v.numpy()) for v in loaded.model_variables]
    prefix = source
    for folder in (os.path.join(source, "ckpt"), source):
        if os.path.isdir(folder) and tf.train.latest_checkpoint(folder):
            prefix = tf.train.latest_checkpoint(folder)
            break
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError):
        raise UserError(f"config.transfer.init_from = {source!r}: no checkpoint or "
                        "SavedModel there") from None
    values = []
    while reader.has_tensor(_KEY.format(len(values))):
        values.append(reader.get_tensor(_KEY.format(len(values))))
    if not values:
        raise UserError(f"config.transfer.init_from = {source!r}: checkpoint not written "
                        "by this project (no model_variables)")
    return values


def load_pretrained(model, source, keep_head=False):
    values = read_variables(source)
    variables = model.variables
    if len(values) != len(variables):
        raise UserError(f"config.transfer.init_from = {source!r}: {len(values)} variables, "
                        f"this model has {len(variables)}; use a run of the same config.model")
    head = {id(v) for v in model.get_layer("head").variables}
    copied = 0
    for variable, value in zip(variables, values, strict=True):
        if (id(variable) in head and not keep_head) or "seed_generator" in variable.path:
            continue
        if tuple(variable.shape) != value.shape:
            raise UserError(f"config.transfer.init_from = {source!r}: {variable.path} has "
                            f"shape {value.shape} there, {tuple(variable.shape)} here")
        variable.assign(value)
        copied += 1
    logging.info("Initialised %d variables from %s%s", copied, source,
                 "" if keep_head else " (new head)")
    return copied
