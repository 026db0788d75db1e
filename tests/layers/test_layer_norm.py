"""LayerNorm against keras.layers.LayerNormalization, NumPy, gradients, XLA, Mirrored."""

import keras
import numpy as np
import pytest

from layers import LayerNorm
from tests import keras_testing as kt

ATOL = 1e-5


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]], ids=["last", "middle", "two_axes"])
def test_matches_keras(axis):
    x = kt.random_inputs((3, 4, 5), low=-2.0, high=6.0)
    ours, theirs = LayerNorm(axis=axis, epsilon=1e-2), keras.layers.LayerNormalization(
        axis=axis, epsilon=1e-2)
    ours.build(x.shape)
    theirs.build(x.shape)
    rng = np.random.default_rng(0)
    theirs.set_weights([rng.normal(size=w.shape) for w in theirs.get_weights()])
    kt.copy_weights(theirs, ours)
    np.testing.assert_allclose(ours(x), theirs(x), atol=ATOL)


def test_formula_in_numpy():
    x = kt.random_inputs((2, 3, 4), dtype="float64")
    layer = LayerNorm(epsilon=1e-3, dtype="float64")
    layer.build(x.shape)
    gamma, beta = np.array([1.0, 2.0, 0.5, -1.0]), np.array([0.0, 0.1, 0.2, 0.3])
    layer.set_weights([gamma, beta])
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(layer(x), gamma * (x - mu) / np.sqrt(var + 1e-3) + beta,
                               atol=1e-12)


def test_mixed_precision_matches_keras():
    x = kt.random_inputs((4, 8), low=200.0, high=260.0)
    ours, theirs = LayerNorm(dtype="mixed_float16"), keras.layers.LayerNormalization(
        dtype="mixed_float16")
    y = ours(x)
    assert y.dtype == "float16"
    np.testing.assert_allclose(np.asarray(y, "float32"), np.asarray(theirs(x), "float32"),
                               atol=1e-3)


def test_gradient_check():
    x = kt.random_inputs((2, 3, 4), dtype="float64")
    layer = LayerNorm(axis=[1, 2], dtype="float64", gamma_initializer="random_normal",
                      beta_initializer="random_normal")
    assert kt.check_gradients(layer, x) < 1e-7


def test_keras_helper_checks(tmp_path):
    x = kt.random_inputs((4, 3, 6))
    kt.run_layer_checks(lambda: LayerNorm(), x, tmp_path, expected_output_shape=(4, 3, 6),
                        trainable=2, non_trainable=0)
    layer = LayerNorm(center=False)
    layer.build((None, 6))
    kt.check_weight_counts(layer, trainable=1, non_trainable=0)


def test_xla_matches_plain():
    kt.check_xla(LayerNorm(axis=[1, 2]), kt.random_inputs((2, 3, 4)))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="epsilon"):
        LayerNorm(epsilon=-1.0)
    with pytest.raises(ValueError, match="axis"):
        LayerNorm(axis="last")
    with pytest.raises(ValueError, match="axis"):
        LayerNorm(axis=4).build((2, 3))


def test_mirrored_strategy_matches_one_device(two_cpu_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")

    def make():
        init = keras.initializers.GlorotUniform(2)
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, kernel_initializer=init),
                                 LayerNorm(), keras.layers.Dense(1, kernel_initializer=init)])

    mirrored = kt.fit_steps(make, x, y, two_cpu_strategy).get_weights()
    single = kt.fit_steps(make, x, y).get_weights()
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    assert not np.allclose(mirrored[2], 1.0)  # gamma trained
