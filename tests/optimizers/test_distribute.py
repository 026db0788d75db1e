"""Training under tf.distribute.MirroredStrategy with two logical CPUs.

A custom loop with `strategy.run` and `model.fit` under `strategy.scope()` must
give the single-device result for the same global batch.

Gradient clipping is left out of that comparison: Keras's base optimizer clips
each replica's gradients before they are all-reduced (tensorflow#33929), so a
clipped run differs from the single-device one, for Keras's own optimizers as
much as for ours; `test_clipping_under_strategy_as_keras` checks that ours do
exactly what Keras's do there.
"""

import contextlib

import keras
import numpy as np
import pytest

if keras.backend.backend() != "tensorflow":
    pytest.skip("tf.distribute: TensorFlow only", allow_module_level=True)

import tensorflow as tf  # noqa: E402

import optimizers  # noqa: E402

GLOBAL_BATCH = 16
STEPS = 4
_rng = np.random.default_rng(1)
X = _rng.normal(size=(GLOBAL_BATCH * STEPS, 8)).astype("float32")
Y = _rng.normal(size=(GLOBAL_BATCH * STEPS, 1)).astype("float32")

OPTIMIZERS = [
    ("momentum", lambda: optimizers.Momentum(0.1, momentum=0.8)),
    ("rmsprop", lambda: optimizers.RMSProp(0.01)),
    ("adam", lambda: optimizers.Adam(0.01, beta_2=0.99)),
    ("adagrad", lambda: optimizers.AdaGrad(0.1)),
    ("adamw", lambda: optimizers.AdamW(0.01, weight_decay=0.1)),
]
IDS = [o[0] for o in OPTIMIZERS]


def _mlp():
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)]
    )


INITIAL_WEIGHTS = _mlp().get_weights()


def _build(make_optimizer, strategy=None):
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = _mlp()
        model.set_weights(INITIAL_WEIGHTS)
        optimizer = make_optimizer()
        # Built up front: creating its variables inside strategy.run fails.
        optimizer.build(model.trainable_variables)
    return model, optimizer


def _custom_loop(make_optimizer, strategy=None):
    strategy = strategy or tf.distribute.get_strategy()
    model, optimizer = _build(make_optimizer, strategy)
    variables = model.trainable_variables

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            per_example = tf.reduce_mean(tf.square(model(x) - y), axis=-1)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
        optimizer.apply(tape.gradient(loss, variables), variables)

    @tf.function
    def step(x, y):
        strategy.run(replica_step, args=(x, y))

    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(GLOBAL_BATCH)
    for x, y in strategy.experimental_distribute_dataset(dataset):
        step(x, y)
    assert int(optimizer.iterations.numpy()) == STEPS
    return model.get_weights()


def _fit(make_optimizer, strategy=None):
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = _mlp()
        model.set_weights(INITIAL_WEIGHTS)
        model.compile(optimizer=make_optimizer(), loss="mse")
    model.fit(X, Y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def _assert_same(distributed, single):
    moved = max(np.abs(s - w).max() for s, w in zip(single, INITIAL_WEIGHTS, strict=True))
    assert moved > 1e-3
    for d, s in zip(distributed, single, strict=True):
        np.testing.assert_allclose(d, s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", OPTIMIZERS, ids=IDS)
def test_custom_loop_strategy_run(case, two_cpu_strategy):
    _, make = case
    _assert_same(_custom_loop(make, two_cpu_strategy), _custom_loop(make))


@pytest.mark.parametrize("case", OPTIMIZERS, ids=IDS)
def test_fit_under_strategy_scope(case, two_cpu_strategy):
    _, make = case
    single = _fit(make)
    _assert_same(_fit(make, two_cpu_strategy), single)
    # And fit agrees with the custom loop (same loss, same batches).
    _assert_same(_custom_loop(make), single)


@pytest.mark.parametrize(
    "clip", [dict(global_clipnorm=1.0), dict(clipnorm=0.1)], ids=["global_clipnorm", "clipnorm"]
)
def test_clipping_under_strategy_as_keras(clip, two_cpu_strategy):
    ours = _custom_loop(
        lambda: optimizers.Adam(0.01, epsilon=1e-7, epsilon_hat=True, **clip), two_cpu_strategy
    )
    theirs = _custom_loop(lambda: keras.optimizers.Adam(0.01, **clip), two_cpu_strategy)
    _assert_same(ours, theirs)
