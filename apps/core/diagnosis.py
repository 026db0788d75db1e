"""The notes' diagnosis of a training run: bias, variance, data mismatch.

Every run of the shared trainer ends by measuring one error, the app's
`config.diagnosis.metric` (1 - metric, or the metric itself when it is
already an error, `metric_is_error`; "loss" is the training objective), on
four sets, and compares them with `config.diagnosis.human_level_error`, the
proxy for the Bayes error:

    train      a fixed sample of the training split, in inference mode
    train-dev  examples of the training distribution never trained on: a slice
               of the training split held out by `carve` (a function of the
               seed only; `train_dev_fraction`, 0 = none)
    dev        the validation split (what models are chosen by)
    test       the test split

    avoidable bias   = train     - human level   -> a bigger model, train longer,
                                                    a better optimizer
    variance         = train-dev - train         -> more data, regularization,
                                                    augmentation
    data mismatch    = dev       - train-dev     -> data closer to dev (synthesis,
                                                    collection)
    dev overfitting  = test      - dev           -> a bigger dev set

The largest gap names what to try next, if it stands out of the sampling
noise: an error that is 1 - metric is taken as a share of the examples it
was measured on, and a gap counts only beyond two standard errors of its
difference (`margins`; 1% on 54 train-dev examples is less than one of them).
The figures go to metrics.json (`diagnosis_*`: the five errors, the four
gaps and their noise, the largest and its actions, the number of examples
of each set), TensorBoard (scalars diagnosis/* and a text table) and a few
lines at the end of the console (`lines`). The train sample, train-dev (and
for the loss dev and test) are evaluated at the end of the run; dev and test
are the run's own final validation and test figures, not evaluated again.
"""

import math
import numbers

import numpy as np
from absl import logging

#: keys of the random generators of the carve and the training sample: other
#: streams than the apps' own splits of the same seed
_CARVE_KEY, _SAMPLE_KEY = 18_001, 18_002

#: the sets, in order: (metrics.json name, console name)
SETS = (("human_level", "human"), ("train", "train"), ("train_dev", "train-dev"),
        ("dev", "dev"), ("test", "test"))

#: the gaps: (name, minuend set, subtrahend set, the notes' suggested actions)
GAPS = (
    ("avoidable_bias", "train", "human_level",
     "a bigger model, train longer, a better optimizer (momentum, RMSProp, Adam)"),
    ("variance", "train_dev", "train",
     "more data, regularization (L2, dropout), data augmentation"),
    ("data_mismatch", "dev", "train_dev",
     "training data closer to dev: synthesize or collect it (error analysis shows how)"),
    ("dev_overfitting", "test", "dev",
     "a bigger dev set (what was chosen on dev has overfitted it)"),
)

PREFIX = "diagnosis_"


# ---------------------------------------------------------------- the sets

def carve(data, fraction, seed):
    """Holds out the train-dev slice of `data.train` (a task's `Data`); returns it.

    round(fraction * n) examples (at least one) chosen by a permutation that
    depends on `seed` only (apps.core.data.random_split); `data.train` is
    replaced, in place, by the rest in its original order, so a task that
    keeps its `Data` (face recognition's P x K epoch order) trains on what
    is left. Returns None, leaving `data` as it is, when `fraction` is 0.
    """
    if not fraction:
        return None
    from apps.core import data as data_lib

    rest, held_out = data_lib.random_split(
        len(data.train), (1 - fraction, fraction), [seed, _CARVE_KEY],
        "config.diagnosis.train_dev_fraction")
    train_dev = data.train.take(np.sort(held_out))
    data.train = data.train.take(np.sort(rest))
    logging.info("train-dev: %d of the %d training examples held out, never trained on "
                 "(config.diagnosis.train_dev_fraction = %g)", len(train_dev),
                 len(rest) + len(held_out), fraction)
    return train_dev


def train_sample(count, size, seed):
    """The sorted indices of a fixed sample of `size` of `count` training examples."""
    size = min(size, count)
    rng = np.random.default_rng([seed, _SAMPLE_KEY])
    return np.sort(rng.choice(count, size, replace=False)).astype(np.int64)


def error(metrics, name, is_error):
    """The error of `metrics[name]`: the value itself or 1 - value; None if
    there is no finite number under that name."""
    value = metrics.get(name) if metrics else None
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return value if is_error else 1.0 - value


def gaps(errors):
    """{gap: value or None} from {set: error or None} (SETS' names)."""
    out = {}
    for name, high, low, _ in GAPS:
        a, b = errors.get(high), errors.get(low)
        out[name] = None if a is None or b is None else a - b
    return out


def margins(errors, sizes):
    """{gap: its sampling noise or None}: two standard errors of the difference
    of its two errors, each taken as a share of wrong examples among `sizes[set]`
    (binomial; smoothed as (wrong + 1) / (n + 2), so that no error on a few
    examples is not taken for certain). Human-level error counts as exact."""
    def variance(name):
        if name == "human_level":
            return 0.0
        e, n = errors.get(name), (sizes or {}).get(name)
        if e is None or not n:
            return None
        p = (min(max(e, 0.0), 1.0) * n + 1) / (n + 2)
        return p * (1 - p) / n

    out = {}
    for name, high, low, _ in GAPS:
        a, b = variance(high), variance(low)
        out[name] = None if a is None or b is None else 2 * math.sqrt(a + b)
    return out


def largest(gap_values, noise=None):
    """(name, actions) of the largest gap above zero and above its noise (when
    known, `margins`), or (None, None)."""
    noise = noise or {}
    known = [(value, name) for name, value in gap_values.items()
             if value is not None and value > 0 and value > (noise.get(name) or 0.0)]
    if not known:
        return None, None
    name = max(known)[1]
    return name, next(actions for gap, _, _, actions in GAPS if gap == name)


def figures(errors, metric, is_error, sizes=None):
    """metrics.json's diagnosis_* keys from {set: error or None} and the number
    of examples each error was measured on ({set: n}). A gap counts as the
    largest only beyond its sampling noise (`margins`, for an error that is
    1 - metric, a share of examples; a loss or cost has none)."""
    gap_values = gaps(errors)
    noise = {} if is_error else margins(errors, sizes)
    name, actions = largest(gap_values, noise)
    out = {PREFIX + "metric": metric if is_error else f"1 - {metric}"}
    out.update({f"{PREFIX}{s}_error": errors.get(s) for s, _ in SETS})
    out.update({PREFIX + k: v for k, v in gap_values.items()})
    out.update({f"{PREFIX}{k}_noise": v for k, v in noise.items()})
    out[PREFIX + "largest_gap"] = name
    out[PREFIX + "actions"] = actions
    for s, n in (sizes or {}).items():
        out[f"{PREFIX}{s}_examples"] = n
    return out


# ------------------------------------------------------------ the measure

def check_metric(config, metrics):
    """A UserError when config.diagnosis.metric is not a number of `metrics`
    (an evaluation's, the first validation's)."""
    from apps.core.errors import UserError

    name = config.diagnosis.metric
    if name == "loss":
        return
    value = metrics.get(name)
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        names = sorted(k for k, v in metrics.items()
                       if isinstance(v, numbers.Real) and not isinstance(v, bool))
        raise UserError(f"config.diagnosis.metric = {name!r}: not a figure of this app's "
                        f"evaluation; expected 'loss' or one of {', '.join(names)}")


def diagnose(trainer, test, val):
    """metrics.json's diagnosis_* figures of `trainer`'s model: `test` and `val`
    are the test and (final) validation metrics already measured; the training
    sample and train-dev are evaluated here (the loss, for metric "loss", on
    every set). Runs on every worker, as evaluation does."""
    config, task = trainer.config, trainer.task
    d = config.diagnosis
    check_metric(config, val)
    metric, is_error = d.metric, d.metric_is_error or d.metric == "loss"
    train, train_dev = trainer.data.train, trainer.train_dev
    held_out = task.splits_hold_examples
    size = d.train_sample or max(len(trainer.data.val) if held_out else 0,
                                 len(train_dev) if train_dev is not None else 0) or len(train)
    sample = train.take(train_sample(len(train), size, config.seed))

    def measure(split, name):
        if metric == "loss":
            return mean_loss(task, trainer.model, split, config.train.batch_size, config.seed)
        metrics, _ = trainer.evaluate_split(split, name)
        return error(metrics, metric, is_error)

    errors = {"human_level": d.human_level_error,
              "train": measure(sample, "training sample")}
    sizes = {"train": len(sample)}
    if train_dev is not None:
        errors["train_dev"] = measure(train_dev, "train-dev")
        sizes["train_dev"] = len(train_dev)
    if metric == "loss" and held_out:
        errors["dev"] = measure(trainer.data.val, "validation")
        errors["test"] = measure(trainer.data.test, "test")
    elif metric != "loss":
        errors["dev"] = error(val, metric, is_error)
        errors["test"] = error(test, metric, is_error)
    if held_out:
        sizes.update(dev=len(trainer.data.val), test=len(trainer.data.test))
    return figures(errors, metric, is_error, sizes)


def mean_loss(task, model, split, batch_size, seed):
    """The mean per-example loss (without regularization) of `model` in
    inference mode over `split`, its examples made as training makes them
    (Task.train_example: word2vec's sampled pairs and negatives) with fixed
    seeds (seed, -1 - index), which no training position uses."""
    import tensorflow as tf

    from apps.core import data as data_lib
    from apps.core.inference import compiled

    tensors = split.tensors()

    def example(index):
        (x, y), ok = data_lib.gather(tensors, index)
        tf.debugging.assert_equal(ok, True, message=data_lib.UNREADABLE_IN_EVALUATION)
        return task.train_example(x, y, tf.stack([tf.constant(seed, tf.int64), -1 - index]))

    def make():
        def total(x, y):
            outputs = tf.nest.map_structure(
                lambda t: tf.cast(t, tf.float32) if t.dtype.is_floating else t,
                model(x, training=False))
            loss = task.per_example_loss(y, outputs)
            if isinstance(loss, dict):
                loss = tf.add_n([tf.cast(t, tf.float32) for t in loss.values()])
            return tf.reduce_sum(tf.cast(loss, tf.float64))

        return tf.function(total, autograph=False)

    total = compiled(model, "diagnosis_loss", make)
    ds = tf.data.Dataset.range(len(split)).map(data_lib.graph_code(example),
                                               num_parallel_calls=tf.data.AUTOTUNE,
                                               deterministic=True).batch(batch_size)
    value = sum(float(total(x, y)) for x, y in ds) / max(1, len(split))
    return value if math.isfinite(value) else None


# ------------------------------------------------------------- the report

def _value(metrics, key):
    value = metrics.get(PREFIX + key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def lines(metrics):
    """The console's few lines of a run's diagnosis ([] when it has none)."""
    if PREFIX + "metric" not in metrics:
        return []
    errors = [f"{label} {_value(metrics, s + '_error'):.4f}" if _value(metrics, s + "_error")
              is not None else f"{label} n/a" for s, label in SETS
              if _value(metrics, s + "_error") is not None or PREFIX + s + "_examples" in metrics]
    out = [f"diagnosis (error = {metrics[PREFIX + 'metric']}): " + ", ".join(errors)]
    known = [f"{name.replace('_', ' ')} {_value(metrics, name):+.4f}" for name, *_ in GAPS
             if _value(metrics, name) is not None]
    if known:
        out.append("  " + ", ".join(known))
    name = metrics.get(PREFIX + "largest_gap")
    if name:
        out.append(f"  largest: {name.replace('_', ' ')} -> {metrics[PREFIX + 'actions']}")
    elif any(_value(metrics, g) is not None and _value(metrics, g) > 0 for g, *_ in GAPS):
        out.append("  no gap beyond its sampling noise (two standard errors; "
                   "diagnosis_*_noise in metrics.json): more examples would tell")
    elif known:
        out.append("  no gap above zero")
    if _value(metrics, "human_level_error") is None and _value(metrics, "train_error") is not None:
        out.append("  (set --config.diagnosis.human_level_error for the avoidable bias)")
    return out


def markdown(metrics):
    """The diagnosis as a Markdown table, for TensorBoard's text dashboard."""
    def cell(value):
        return "n/a" if value is None else f"{value:.4f}"

    def size(name):
        n = metrics.get(f"{PREFIX}{name}_examples")
        return "" if n is None else f"{n} examples"

    def noise(name):
        value = _value(metrics, name + "_noise")
        return "" if value is None else f"noise ± {value:.4f}"

    rows = ["| | error | |", "|---|---|---|"]
    rows += [f"| {label} | {cell(_value(metrics, s + '_error'))} | {size(s)} |"
             for s, label in SETS]
    rows += [f"| **{name.replace('_', ' ')}** | {cell(_value(metrics, name))} | {noise(name)} |"
             for name, *_ in GAPS]
    name = metrics.get(PREFIX + "largest_gap")
    text = f"error = {metrics[PREFIX + 'metric']}\n\n" + "\n".join(rows)
    if name:
        text += f"\n\nLargest gap: **{name.replace('_', ' ')}**: {metrics[PREFIX + 'actions']}"
    else:
        text += "\n\nNo gap beyond its sampling noise (two standard errors)."
    return text


def write_summaries(writer, metrics, step):
    """TensorBoard: scalars diagnosis/<set>_error and diagnosis/<gap>, and the table."""
    if PREFIX + "metric" not in metrics:
        return
    import tensorflow as tf

    with writer.as_default(step=step):
        for key in [s + "_error" for s, _ in SETS] + [name for name, *_ in GAPS]:
            value = _value(metrics, key)
            if value is not None:
                tf.summary.scalar(f"diagnosis/{key}", value)
        tf.summary.text("diagnosis", markdown(metrics))
    writer.flush()
