"""BatchNorm against keras.layers.BatchNormalization, NumPy, gradients, XLA, Mirrored."""

import keras
import numpy as np
import pytest

from layers import BatchNorm
from tests import keras_testing as kt

ATOL = 1e-5


def _random_bn_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=w.shape).astype(w.dtype) for w in layer.get_weights()]
    weights[-1] = np.abs(weights[-1]) + 0.5  # a positive moving variance
    return weights


@pytest.mark.parametrize("axis,shape", [(-1, (8, 5)), (-1, (4, 3, 3, 5)), (1, (4, 5, 3, 2))],
                         ids=["dense", "conv_channels_last", "conv_channels_first"])
def test_matches_keras_in_both_modes(axis, shape):
    x = kt.random_inputs(shape, low=-3.0, high=5.0)
    ours = BatchNorm(axis=axis, momentum=0.9, epsilon=1e-2)
    theirs = keras.layers.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-2)
    ours.build(shape)
    theirs.build(shape)
    assert [w.path.split("/")[-1] for w in ours.weights] == [
        "gamma", "beta", "moving_mean", "moving_variance"]
    theirs.set_weights(_random_bn_weights(theirs))
    kt.copy_weights(theirs, ours)
    for step in range(2):  # two training steps: outputs and moving statistics
        x_step = x * (step + 1)
        np.testing.assert_allclose(ours(x_step, training=True), theirs(x_step, training=True),
                                   atol=ATOL)
        for a, b in zip(ours.weights, theirs.weights, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=ATOL, err_msg=a.path)
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=ATOL)
    # Inference really uses the moving statistics and training the batch's.
    assert not np.allclose(ours(x, training=False), ours(x, training=True), atol=1e-3)


def test_formula_in_numpy():
    x = kt.random_inputs((6, 2, 3), low=0.0, high=4.0).astype("float64")
    layer = BatchNorm(momentum=0.8, epsilon=1e-3, dtype="float64")
    layer.build(x.shape)
    gamma, beta = np.array([0.5, 2.0, -1.0]), np.array([0.1, 0.2, 0.3])
    layer.set_weights([gamma, beta, np.zeros(3), np.ones(3)])
    mu, var = x.mean((0, 1)), x.var((0, 1))
    expected = gamma * (x - mu) / np.sqrt(var + 1e-3) + beta
    np.testing.assert_allclose(layer(x, training=True), expected, atol=1e-10)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.2 * mu, atol=1e-12)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.8 + 0.2 * var, atol=1e-12)
    moving = gamma * (x - 0.2 * mu) / np.sqrt(0.8 + 0.2 * var + 1e-3) + beta
    np.testing.assert_allclose(layer(x, training=False), moving, atol=1e-10)


def test_mask_and_frozen_layer_match_keras():
    x = kt.random_inputs((3, 4, 2), low=-2.0, high=3.0)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], bool)
    ours, theirs = BatchNorm(), keras.layers.BatchNormalization()
    ours.build(x.shape)
    theirs.build(x.shape)
    np.testing.assert_allclose(ours(x, training=True, mask=mask),
                               theirs(x, training=True, mask=mask), atol=ATOL)
    np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(),
                               atol=ATOL)
    # trainable=False: inference mode even with training=True, no updates.
    ours.trainable = False
    before = ours.moving_mean.numpy()
    np.testing.assert_allclose(ours(x, training=True), ours(x, training=False), atol=0)
    np.testing.assert_array_equal(ours.moving_mean.numpy(), before)


def test_mixed_precision_matches_keras():
    x = kt.random_inputs((16, 4), low=100.0, high=300.0)  # float16 stats would lose this
    ours = BatchNorm(dtype="mixed_float16")
    theirs = keras.layers.BatchNormalization(dtype="mixed_float16")
    y_ours, y_theirs = ours(x, training=True), theirs(x, training=True)
    assert y_ours.dtype == "float16" and ours.moving_mean.dtype == "float32"
    np.testing.assert_allclose(np.asarray(y_ours, np.float32), np.asarray(y_theirs, np.float32),
                               atol=2e-3)
    np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(),
                               rtol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_gradient_check(training):
    x = kt.random_inputs((4, 2, 3), low=-2.0, high=2.0, dtype="float64")
    layer = BatchNorm(dtype="float64", gamma_initializer="random_normal",
                      beta_initializer="random_normal", moving_variance_initializer="ones")
    assert kt.check_gradients(layer, x, training=training) < 1e-7


def test_keras_helper_checks(tmp_path):
    x = kt.random_inputs((8, 3, 3, 4))
    kt.run_layer_checks(lambda: BatchNorm(momentum=0.9), x, tmp_path,
                        expected_output_shape=(8, 3, 3, 4), trainable=2, non_trainable=2,
                        expect_non_trainable_change=True)
    # Without center/scale only the moving statistics remain.
    layer = BatchNorm(center=False, scale=False)
    layer.build((None, 4))
    kt.check_weight_counts(layer, trainable=0, non_trainable=2)


def test_xla_matches_plain():
    layer = BatchNorm(axis=1, momentum=0.5)
    kt.check_xla(layer, kt.random_inputs((4, 3, 2, 2)), training=True)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        BatchNorm(epsilon=0.0)
    with pytest.raises(ValueError, match="axis"):
        BatchNorm(axis=3).build((2, 4))


def _fit_model(bn, strategy=None, steps=2):
    """A small Dense-BN-Dense model with fixed weights, fit for `steps` batches of 8."""
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=(8 * steps, 3)).astype("float32")
    y = rng.normal(size=(8 * steps, 1)).astype("float32")
    scope = strategy.scope() if strategy else keras.name_scope("single")
    with scope:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), bn(),
                                  keras.layers.Dense(1)])
        model.set_weights([np.linspace(-1, 1, w.size).reshape(w.shape).astype("float32")
                           + (i == 5) * 1.5 for i, w in enumerate(model.get_weights())])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def test_mirrored_strategy_matches_keras_and_synchronized_matches_one_device(two_cpu_strategy):
    # Per-replica statistics: ours and Keras's behave alike under the same strategy.
    ours = _fit_model(lambda: BatchNorm(momentum=0.5), two_cpu_strategy)
    theirs = _fit_model(lambda: keras.layers.BatchNormalization(momentum=0.5), two_cpu_strategy)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    # Synchronized statistics over two replicas equal one device's full-batch result.
    synced = _fit_model(lambda: BatchNorm(momentum=0.5, synchronized=True), two_cpu_strategy)
    single = _fit_model(lambda: BatchNorm(momentum=0.5))
    for a, b in zip(synced, single, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    # ...and differ from per-replica statistics (so the check above means something).
    assert not np.allclose(synced[5], ours[5], atol=1e-4)
