"""Benchmark: our optimizers against their Keras twins.

One small MLP on fixed data; a full training step (forward, backward, apply)
is timed with each of our optimizers and with its Keras twin, both inside
`tf.function`, without and with XLA (`jit_compile`). Target: ours within
1.10x of Keras. Run with `python -m bench optimizers`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import optimizers  # noqa: E402
from bench.common import compare, print_table, write_json  # noqa: E402

TARGET = 1.10
BATCH, FEATURES, HIDDEN, CLASSES = 64, 784, 256, 10

# (row name, ours, Keras twin); the "~" rows are not bit-equal twins (another
# epsilon placement or velocity form) but do the same amount of work.
PAIRS = [
    (
        "Momentum(ewa=False) / SGD",
        lambda: optimizers.Momentum(0.01, ewa=False),
        lambda: keras.optimizers.SGD(0.01, momentum=0.9),
    ),
    (
        "Momentum(ewa=True) ~ SGD",
        lambda: optimizers.Momentum(0.01, ewa=True),
        lambda: keras.optimizers.SGD(0.01, momentum=0.9),
    ),
    (
        "RMSProp(inside) / RMSprop",
        lambda: optimizers.RMSProp(epsilon_inside_sqrt=True),
        lambda: keras.optimizers.RMSprop(),
    ),
    ("RMSProp ~ RMSprop", lambda: optimizers.RMSProp(), lambda: keras.optimizers.RMSprop()),
    (
        "Adam(epsilon_hat) / Adam",
        lambda: optimizers.Adam(epsilon_hat=True),
        lambda: keras.optimizers.Adam(),
    ),
    ("Adam ~ Adam", lambda: optimizers.Adam(), lambda: keras.optimizers.Adam()),
    ("AdaGrad / Adagrad", lambda: optimizers.AdaGrad(), lambda: keras.optimizers.Adagrad()),
    (
        "AdamW(epsilon_hat) / AdamW",
        lambda: optimizers.AdamW(epsilon_hat=True),
        lambda: keras.optimizers.AdamW(),
    ),
]


def _data():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, FEATURES)).astype("float32"))
    y = tf.constant(rng.integers(0, CLASSES, size=(BATCH,)).astype("int32"))
    return x, y


def _model(weights=None):
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES),
        ]
    )
    if weights is not None:
        model.set_weights(weights)
    return model


def make_train_step(optimizer, weights, x, y, jit_compile):
    """A compiled full training step for a fresh model with `weights`."""
    model = _model(weights)
    variables = model.trainable_variables
    optimizer.build(variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return step


def main():
    x, y = _data()
    weights = _model().get_weights()
    rows = []
    for xla in (False, True):
        for name, ours, theirs in PAIRS:
            ours_step = make_train_step(ours(), weights, x, y, xla)
            theirs_step = make_train_step(theirs(), weights, x, y, xla)
            rows.append(
                compare(name, ours_step, theirs_step, rounds=100, repeats=5, warmup=20, xla=xla)
            )
    print_table(
        f"Optimizers: full training step, MLP {FEATURES}-{HIDDEN}-{HIDDEN}-{CLASSES}, "
        f"batch {BATCH} (ours vs Keras)",
        rows,
        target=TARGET,
    )
    payload = {
        "benchmark": "optimizers",
        "model": f"MLP {FEATURES}-{HIDDEN}-{HIDDEN}-{CLASSES}",
        "batch": BATCH,
        "target_ratio": TARGET,
        "rows": rows,
        "all_within_target": all(r["ratio"] <= TARGET for r in rows),
    }
    print(f"wrote {write_json('optimizers.json', payload)}")
    return payload


if __name__ == "__main__":
    main()
