"""LayerNorm against keras.layers.LayerNormalization, NumPy, gradients, XLA, Mirrored."""

import keras
import numpy as np
import pytest

from layers import LayerNorm
from tests import keras_testing as kt

ATOL = 1e-5


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]], ids=["last", "middle", "two_axes"])
@kt.jax_subset
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


@kt.jax_subset
def test_formula_in_numpy():
    x = kt.random_inputs((2, 3, 4), dtype="float64")
    layer = LayerNorm(epsilon=1e-3, dtype="float64")
    layer.build(x.shape)
    gamma, beta = np.array([1.0, 2.0, 0.5, -1.0]), np.array([0.0, 0.1, 0.2, 0.3])
    layer.set_weights([gamma, beta])
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(layer(x), gamma * (x - mu) / np.sqrt(var + 1e-3) + beta,
                               atol=kt.float64_atol(1e-12))


def test_mixed_precision_matches_keras():
    x = kt.random_inputs((4, 8), low=200.0, high=260.0)
    ours, theirs = LayerNorm(dtype="mixed_float16"), keras.layers.LayerNormalization(
        dtype="mixed_float16")
    y = ours(x)
    assert y.dtype == "float16"
    np.testing.assert_allclose(np.asarray(y, "float32"), np.asarray(theirs(x), "float32"),
                               atol=1e-3)


@kt.exact_float64("the gradient check through the layer statistics (ops.mean)")
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
    # A wrong type of axis is a TypeError, with Keras's wording.
    for axis in ("last", {"axis": -1}, 1.0, [0, "1"], True):
        with pytest.raises(TypeError, match="Expected an int or a list/tuple of ints"):
            LayerNorm(axis=axis)
    with pytest.raises(ValueError, match="axis"):
        LayerNorm(axis=[])
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


# --- rms_scaling=True (Keras's deprecated uncentred form) ------------------------------------

# Keras's twin also warns each time its op runs; that is expected here.
_KERAS_OP_WARNING = "ignore:You passed `rms_scaling=True`:UserWarning"


def _rms_layer(cls, **kwargs):
    with pytest.warns(UserWarning, match="rms_scaling"):
        return cls(rms_scaling=True, **kwargs)


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]], ids=["last", "middle", "two_axes"])
@pytest.mark.parametrize("scale", [True, False], ids=["scale", "no_scale"])
@pytest.mark.filterwarnings(_KERAS_OP_WARNING)
@kt.jax_subset
def test_rms_scaling_matches_keras(axis, scale):
    x = kt.random_inputs((3, 4, 5), low=-2.0, high=6.0)
    ours = _rms_layer(LayerNorm, axis=axis, epsilon=1e-2, scale=scale)
    theirs = _rms_layer(keras.layers.LayerNormalization, axis=axis, epsilon=1e-2, scale=scale)
    ours.build(x.shape)
    theirs.build(x.shape)
    # gamma only, even with scale=False; never beta.
    assert [w.path.split("/")[-1] for w in ours.weights] == ["gamma"]
    theirs.set_weights([np.random.default_rng(0).normal(size=w.shape)
                        for w in theirs.get_weights()])
    kt.copy_weights(theirs, ours)
    np.testing.assert_allclose(ours(x), theirs(x), atol=ATOL)


def test_rms_scaling_formula_in_numpy():
    x = kt.random_inputs((2, 3, 4), low=-1.0, high=3.0, dtype="float64")
    layer = _rms_layer(LayerNorm, epsilon=1e-3, dtype="float64")
    layer.build(x.shape)
    gamma = np.array([1.0, 2.0, 0.5, -1.0])
    layer.set_weights([gamma])
    expected = gamma * x / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(layer(x), expected, atol=kt.float64_atol(1e-12))
    # Not centred (unlike plain LayerNorm), and not the root mean square of RMSNorm:
    # the inputs have a non-zero mean, so both would differ.
    centred = gamma * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
    true_rms = gamma * x / np.sqrt(np.mean(x ** 2, -1, keepdims=True) + 1e-3)
    assert not np.allclose(expected, centred, atol=1e-3)
    assert not np.allclose(expected, true_rms, atol=1e-3)
    # Keras's own expected numbers for arange(5) (variance 2, epsilon 1e-3).
    keras_case = _rms_layer(LayerNorm, gamma_initializer="ones")
    np.testing.assert_allclose(keras_case(np.arange(5.0, dtype="float32")[None]),
                               [[0.0, 0.70693, 1.41386, 2.12079, 2.82772]], atol=1e-5)


@kt.exact_float64("the gradient check through the layer statistics (ops.mean)")
def test_rms_scaling_gradient_check():
    x = kt.random_inputs((2, 3, 4), low=-1.0, high=2.0, dtype="float64")
    for axis in (-1, [1, 2]):
        layer = _rms_layer(LayerNorm, axis=axis, dtype="float64",
                           gamma_initializer="random_normal")
        assert kt.check_gradients(layer, x) < 1e-7


def test_rms_scaling_keras_helper_checks_and_config(tmp_path):
    x = kt.random_inputs((4, 3, 6))
    with pytest.warns(UserWarning, match="rms_scaling"):
        kt.run_layer_checks(lambda: LayerNorm(rms_scaling=True, center=True), x, tmp_path,
                            expected_output_shape=(4, 3, 6), trainable=1, non_trainable=0)
    config = _rms_layer(LayerNorm, axis=(1, 2)).get_config()
    assert config["rms_scaling"] is True and config["axis"] == [1, 2]
    with pytest.warns(UserWarning):
        assert LayerNorm.from_config(config).get_config() == config
    # A Keras config loads into ours, and the default is unchanged.
    with pytest.warns(UserWarning):
        theirs = keras.layers.LayerNormalization(rms_scaling=True, epsilon=1e-4)
        ours = LayerNorm.from_config(theirs.get_config())
    assert ours.rms_scaling and ours.epsilon == 1e-4
    assert LayerNorm().rms_scaling is False


def test_rms_scaling_xla_matches_plain():
    kt.check_xla(_rms_layer(LayerNorm, axis=[1, 2]), kt.random_inputs((2, 3, 4)))


@pytest.mark.filterwarnings(_KERAS_OP_WARNING)
def test_rms_scaling_mixed_precision_matches_keras():
    x = keras.ops.convert_to_tensor(kt.random_inputs((4, 8), low=200.0, high=260.0))
    ours = _rms_layer(LayerNorm, dtype="mixed_float16")
    theirs = _rms_layer(keras.layers.LayerNormalization, dtype="mixed_float16")
    y = ours(x)
    assert y.dtype == "float16"
    np.testing.assert_allclose(np.asarray(y, "float32"), np.asarray(theirs(x), "float32"),
                               rtol=1e-3)
