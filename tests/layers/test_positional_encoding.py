"""PositionalEncoding against a NumPy loop of the formula, gradients, XLA, Mirrored."""

import math

import keras
import numpy as np
import pytest

from layers import PositionalEncoding
from layers.positional_encoding import sinusoidal_table
from tests import keras_testing as kt


def numpy_encoding(length, depth, base=10000.0):
    """PE(pos, 2i) = sin(pos / base^(2i/d)), PE(pos, 2i+1) = cos(pos / base^(2i/d))."""
    pe = np.zeros((length, depth))
    for pos in range(length):
        for j in range(depth):
            two_i = j - j % 2
            angle = pos / base ** (two_i / depth)
            pe[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return pe


@pytest.mark.parametrize("depth", [6, 7])
@kt.jax_subset
def test_adds_the_sinusoidal_table(depth):
    x = kt.random_inputs((2, 5, depth))
    layer = PositionalEncoding(max_length=9)
    np.testing.assert_allclose(layer(x), x + numpy_encoding(5, depth)[None], atol=1e-6)
    np.testing.assert_allclose(sinusoidal_table(9, depth), numpy_encoding(9, depth), atol=1e-6)
    # Shorter sequences use the first rows; the table is built once for max_length.
    np.testing.assert_allclose(layer(x[:, :2]), x[:, :2] + numpy_encoding(2, depth)[None],
                               atol=1e-6)


def test_matches_keras_hub_sine_position_encoding():
    """KerasHub's SinePositionEncoding returns the same table (it does not add it)."""
    keras_hub = pytest.importorskip("keras_hub")
    x = kt.random_inputs((2, 12, 10))
    expected = x + keras_hub.layers.SinePositionEncoding()(x)
    np.testing.assert_allclose(PositionalEncoding(16)(x), expected, atol=1e-5)


def test_mask_passes_through():
    x = kt.random_inputs((2, 4, 6))
    x[1, 2:] = 0.0
    y = PositionalEncoding(4)(keras.layers.Masking()(x))
    np.testing.assert_array_equal(y._keras_mask, [[1, 1, 1, 1], [1, 1, 0, 0]])


@kt.jax_subset
def test_gradient_check():
    x = kt.random_inputs((2, 3, 4), dtype="float64")
    assert kt.check_gradients(PositionalEncoding(5, dtype="float64"), x) < 1e-7


def test_keras_helper_checks(tmp_path):
    x = kt.random_inputs((4, 5, 6))
    kt.run_layer_checks(lambda: PositionalEncoding(8), x, tmp_path,
                        expected_output_shape=(4, 5, 6), trainable=0, non_trainable=0)


def test_xla_matches_plain():
    kt.check_xla(PositionalEncoding(6), kt.random_inputs((2, 4, 5)))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="max_length"):
        PositionalEncoding(0)
    with pytest.raises(ValueError, match="max_length"):
        PositionalEncoding(3)(np.zeros((1, 4, 2), "float32"))
    with pytest.raises(ValueError, match="base"):
        PositionalEncoding(3, base=-1.0)


def test_mirrored_strategy_matches_one_device(two_cpu_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4, 3)).astype("float32")
    y = rng.normal(size=(8, 4, 1)).astype("float32")

    def make():
        init = keras.initializers.GlorotUniform(1)
        return keras.Sequential([keras.Input((4, 3)), keras.layers.Dense(6, kernel_initializer=init),
                                 PositionalEncoding(10),
                                 keras.layers.Dense(1, kernel_initializer=init)])

    mirrored = kt.fit_steps(make, x, y, two_cpu_strategy).get_weights()
    single = kt.fit_steps(make, x, y).get_weights()
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(mirrored[0], make().get_weights()[0])
