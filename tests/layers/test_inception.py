"""InceptionModule against the same module composed of Keras layers, gradients, XLA, Mirrored."""

import keras
import numpy as np
import pytest

from layers import InceptionModule
from tests import keras_testing as kt

ATOL = 1e-5
FILTERS = dict(filters_1x1=2, filters_3x3_reduce=3, filters_3x3=4, filters_5x5_reduce=2,
               filters_5x5=3, filters_pool_proj=2)


def keras_twin(module, input_shape):
    """GoogLeNet's four branches written with Keras layers, weights copied from `module`."""
    bn = module.use_batch_norm
    x = keras.Input(input_shape[1:])
    units = []

    def unit(h, filters, kernel_size):
        conv = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=not bn)
        h = conv(h)
        norm = None
        if bn:
            norm = keras.layers.BatchNormalization()
            h = norm(h)
        units.append((conv, norm))
        return keras.layers.ReLU()(h)

    b1 = unit(x, module.filters_1x1, 1)
    b2 = unit(unit(x, module.filters_3x3_reduce, 1), module.filters_3x3, 3)
    b3 = unit(unit(x, module.filters_5x5_reduce, 1), module.filters_5x5, 5)
    pooled = keras.layers.MaxPooling2D(3, strides=1, padding="same")(x)
    b4 = unit(pooled, module.filters_pool_proj, 1)
    model = keras.Model(x, keras.layers.Concatenate(axis=-1)([b1, b2, b3, b4]))
    for i, (conv, norm) in enumerate(units):
        kt.copy_weights(module.convs[i], conv)
        if norm is not None:
            kt.copy_weights(module.bns[i], norm)
    return model, units


@pytest.mark.parametrize("use_batch_norm", [False, True])
def test_matches_keras_composition(use_batch_norm):
    x = kt.random_inputs((3, 5, 5, 4))
    module = InceptionModule(**FILTERS, use_batch_norm=use_batch_norm,
                             kernel_initializer="glorot_uniform")
    module.build(x.shape)
    if not use_batch_norm:  # non-zero biases
        for conv in module.convs:
            conv.bias.assign(np.linspace(-0.2, 0.3, conv.bias.shape[0]))
    twin, units = keras_twin(module, x.shape)
    for training in (True, False):
        y = module(x, training=training)
        assert tuple(y.shape) == (3, 5, 5, 2 + 4 + 3 + 2) == module.compute_output_shape(x.shape)
        np.testing.assert_allclose(y, twin(x, training=training), atol=ATOL)
    if use_batch_norm:
        for bn, (_, norm) in zip(module.bns, units, strict=True):
            np.testing.assert_allclose(bn.moving_mean.numpy(), norm.moving_mean.numpy(),
                                       atol=ATOL)


def test_pool_branch_uses_max_pooling():
    """With only the pool branch non-zero and an identity projection, y = max_pool(x)."""
    x = kt.random_inputs((1, 4, 4, 2), low=0.1, high=1.0)
    module = InceptionModule(1, 1, 1, 1, 1, 2)
    module.build(x.shape)
    for conv in module.convs:
        conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    module.convs[5].kernel.assign(np.eye(2).reshape(1, 1, 2, 2))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    expected = np.max([padded[:, i:i + 4, j:j + 4] for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_allclose(module(x)[..., 3:], expected, atol=1e-7)
    np.testing.assert_array_equal(module(x)[..., :3], 0.0)


def test_gradient_check():
    x = kt.random_inputs((1, 3, 3, 2), dtype="float64")
    module = InceptionModule(1, 1, 2, 1, 1, 1, dtype="float64",
                             kernel_initializer="glorot_uniform")
    module.build(x.shape)
    for conv in module.convs:  # biases away from zero keep ReLU off its kink
        conv.bias.assign(np.full(conv.bias.shape, 0.05))
    assert kt.check_gradients(module, x) < 1e-7


def test_keras_helper_checks(tmp_path):
    x = kt.random_inputs((4, 4, 4, 3))
    kt.run_layer_checks(lambda: InceptionModule(**FILTERS), x, tmp_path,
                        expected_output_shape=(4, 4, 4, 11), trainable=12, non_trainable=0)
    layer = InceptionModule(**FILTERS, use_batch_norm=True)
    layer.build((None, 4, 4, 3))
    kt.check_weight_counts(layer, trainable=6 + 12, non_trainable=12)


def test_xla_matches_plain():
    module = InceptionModule(**FILTERS, use_batch_norm=True)
    kt.check_xla(module, kt.random_inputs((2, 4, 4, 3)), training=True)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="filters_5x5_reduce"):
        InceptionModule(1, 1, 1, 0, 1, 1)
    with pytest.raises(ValueError, match="height, width"):
        InceptionModule(1, 1, 1, 1, 1, 1).build((None, 4, 3))


def test_mirrored_strategy_matches_one_device(two_cpu_strategy):
    """Without batch norm the replicas' summed gradients equal one device's."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4, 4, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")

    def make():
        init = keras.initializers.GlorotUniform(5)
        return keras.Sequential([
            keras.Input((4, 4, 3)), InceptionModule(**FILTERS, kernel_initializer=init),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(6))])

    initial = make().get_weights()
    mirrored = kt.fit_steps(make, x, y, two_cpu_strategy).get_weights()
    single = kt.fit_steps(make, x, y).get_weights()
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    assert not np.allclose(mirrored[0], initial[0])
