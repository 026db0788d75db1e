"""Maxout against NumPy, gradients, Keras helpers, XLA and Mirrored."""

import keras
import numpy as np
import pytest

from layers import Maxout
from tests import keras_testing as kt


def numpy_maxout(x, num_units, axis=-1):
    """Unit j = max of features j*k .. j*k + k - 1 (contiguous groups of k)."""
    x = np.moveaxis(x, axis, -1)
    k = x.shape[-1] // num_units
    y = np.stack([x[..., j * k:(j + 1) * k].max(-1) for j in range(num_units)], -1)
    return np.moveaxis(y, -1, axis)


@pytest.mark.parametrize("shape,num_units,axis", [((4, 6), 3, -1), ((2, 3, 8), 2, -1),
                                                  ((2, 6, 5), 3, 1), ((2, 4, 3), 4, -2)])
@kt.jax_subset
def test_matches_numpy(shape, num_units, axis):
    x = kt.random_inputs(shape)
    layer = Maxout(num_units, axis=axis)
    y = layer(x)
    np.testing.assert_array_equal(y, numpy_maxout(x, num_units, axis))
    assert tuple(y.shape) == layer.compute_output_shape(shape)


@kt.jax_subset
def test_gradient_check():
    # Distinct values (at least 1e-2 apart) keep every max away from a tie.
    x = np.random.default_rng(0).permutation(24).reshape(2, 12).astype("float64") / 10
    layer = Maxout(4, dtype="float64")
    assert kt.check_gradients(layer, x) < 1e-7


@kt.jax_subset
def test_gradient_flows_to_the_maximum_only():
    x = np.array([[1.0, 3.0, 2.0, -1.0]], "float32")
    layer = Maxout(2)
    _, (grad,) = kt.value_and_gradients(
        lambda t: keras.ops.sum(layer(t) * np.array([[10.0, 20.0]], "float32")), x)
    np.testing.assert_array_equal(grad, [[0.0, 10.0, 20.0, 0.0]])


def test_keras_helper_checks(tmp_path):
    x = kt.random_inputs((4, 3, 6))
    kt.run_layer_checks(lambda: Maxout(2), x, tmp_path, expected_output_shape=(4, 3, 2),
                        trainable=0, non_trainable=0)
    # Trained inside a model: the Dense kernel before it moves.
    model = kt.fit_steps(lambda: keras.Sequential([keras.Input((6,)), keras.layers.Dense(8),
                                                   Maxout(4), keras.layers.Dense(1)]),
                         x[:, 0], np.ones((4, 1), "float32"), steps=1)
    assert np.isfinite(model.get_weights()[0]).all()


def test_xla_matches_plain():
    kt.check_xla(Maxout(3, axis=1), kt.random_inputs((2, 6, 4)))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_units"):
        Maxout(0)
    with pytest.raises(ValueError, match=r"divisible by `num_units`=4"):
        Maxout(4)(np.zeros((2, 6), "float32"))
    with pytest.raises(ValueError, match="axis"):
        Maxout(2, axis=2).build((None, 4))


def test_mirrored_strategy_matches_one_device(two_cpu_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")

    def make():
        init = keras.initializers.GlorotUniform(1)
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, kernel_initializer=init),
                                 Maxout(4), keras.layers.Dense(1, kernel_initializer=init)])

    mirrored = kt.fit_steps(make, x, y, two_cpu_strategy).get_weights()
    single = kt.fit_steps(make, x, y).get_weights()
    initial = make().get_weights()
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(mirrored[0], initial[0])
