"""TensorBoard's HParams dashboard: a run's config as its hyperparameters, and
its final figures as the metrics that runs are compared by."""

import tensorflow as tf

#: the prefix of the final figures' scalar tags
FINAL = "final/"


def write_hparams(writer, config, metric_names):
    """Writes every config field (flattened, 'train.batch_size') as a
    hyperparameter of the run, and declares `metric_names` (metrics.json keys,
    written at the end by write_final) as the dashboard's metrics."""
    from tensorboard.plugins.hparams import api as hp

    flat = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
            for key, value in _flatten(config.to_dict()).items()}
    with writer.as_default():
        hp.hparams_config(hparams=[hp.HParam(key) for key in flat],
                          metrics=[hp.Metric(FINAL + name, display_name=name)
                                   for name in metric_names])
        hp.hparams(flat)
    writer.flush()


def write_final(writer, metrics, step):
    """The run's final figures (metrics.json) as scalars final/<name>."""
    with writer.as_default(step=step):
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tf.summary.scalar(FINAL + name, value)
    writer.flush()


def _flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out
