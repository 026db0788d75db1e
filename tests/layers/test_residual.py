"""ResidualBlock against the same block composed of Keras layers, gradients, XLA, Mirrored."""

import keras
import numpy as np
import pytest

from layers import BatchNorm, ResidualBlock
from tests import keras_testing as kt

ATOL = 1e-5

# (block arguments, input channels, expected output channels, projection shortcut?)
CASES = {
    "basic_identity": (dict(filters=4), 4, 4, False),
    "basic_projection_stride2": (dict(filters=6, strides=2), 4, 6, True),
    "bottleneck_projection_stride2": (dict(filters=2, bottleneck=True, strides=2), 4, 8, True),
    "bottleneck_identity": (dict(filters=2, bottleneck=True), 8, 8, False),
    "basic_no_batch_norm": (dict(filters=3, strides=2, use_batch_norm=False), 3, 3, True),
}


def keras_twin(block, input_shape):
    """The block's computation written with Keras layers, weights copied from `block`.

    Main path conv-BN-relu-conv-BN (or 1x1-kxk-1x1 with 4x expansion), a
    projection (1x1 conv with stride + BN) when the shape changes, then
    relu(main + shortcut).
    """
    k, s, f, bn = block.kernel_size, block.strides, block.filters, block.use_batch_norm
    specs = [(f, 1, 1), (f, k, s), (4 * f, 1, 1)] if block.bottleneck else [(f, k, s), (f, k, 1)]
    x = keras.Input(input_shape[1:])
    h = x
    pairs = []
    for i, (filters, kernel, strides) in enumerate(specs):
        conv = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                   use_bias=not bn)
        h = conv(h)
        pairs.append((block.convs[i], conv))
        if bn:
            norm = keras.layers.BatchNormalization(momentum=block.momentum)
            h = norm(h)
            pairs.append((block.bns[i], norm))
        if i < len(specs) - 1:
            h = keras.layers.ReLU()(h)
    shortcut = x
    if s != 1 or input_shape[-1] != specs[-1][0]:
        conv = keras.layers.Conv2D(specs[-1][0], 1, strides=s, use_bias=not bn)
        shortcut = conv(x)
        pairs.append((block.shortcut_conv, conv))
        if bn:
            norm = keras.layers.BatchNormalization(momentum=block.momentum)
            shortcut = norm(shortcut)
            pairs.append((block.shortcut_bn, norm))
    model = keras.Model(x, keras.layers.ReLU()(keras.layers.Add()([h, shortcut])))
    for ours, theirs in pairs:
        kt.copy_weights(ours, theirs)
    assert len(model.weights) == len(block.weights)
    return model, pairs


def _randomize(block, seed=0):
    """Random gammas/betas/moving statistics, so BN is not the identity."""
    rng = np.random.default_rng(seed)
    block.set_weights([rng.uniform(0.5, 1.5, size=w.shape).astype(w.dtype)
                       if "variance" in w.path or "gamma" in w.path
                       else np.asarray(w) + rng.normal(scale=0.1, size=w.shape).astype(w.dtype)
                       for w in block.weights])


@pytest.mark.parametrize("case", kt.jax_cases(list(CASES), ["bottleneck_identity"]))
def test_matches_keras_composition(case):
    kwargs, channels, out_channels, projection = CASES[case]
    x = kt.random_inputs((4, 6, 6, channels))
    block = ResidualBlock(momentum=0.8, **kwargs)
    block.build(x.shape)
    _randomize(block)
    assert block.projection == projection and block.output_channels == out_channels
    twin, pairs = keras_twin(block, x.shape)
    for training in (True, False):
        np.testing.assert_allclose(block(x, training=training), twin(x, training=training),
                                   atol=ATOL, err_msg=f"training={training}")
    for ours, theirs in pairs:  # moving statistics updated alike
        for a, b in zip(ours.weights, theirs.weights, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=ATOL, err_msg=a.path)
    strides = kwargs.get("strides", 1)
    assert block.compute_output_shape(x.shape) == (4, 6 // strides, 6 // strides, out_channels)


def test_identity_shortcut_adds_the_input():
    """With zero final-BN gamma and beta the main path is 0, so the block is relu(x)."""
    x = kt.random_inputs((2, 4, 4, 3))
    block = ResidualBlock(3)
    block.build(x.shape)
    block.bns[-1].set_weights([np.zeros(3), np.zeros(3), np.zeros(3), np.ones(3)])
    np.testing.assert_allclose(block(x), np.maximum(x, 0), atol=1e-7)
    assert isinstance(block.bns[0], BatchNorm) and block.shortcut_conv is None


@pytest.mark.parametrize("bottleneck", [False, True])
@kt.exact_float64("the gradient check through BatchNorm's batch statistics (ops.mean)")
def test_gradient_check(bottleneck):
    x = kt.random_inputs((2, 4, 4, 2), dtype="float64")
    block = ResidualBlock(2, strides=2, bottleneck=bottleneck, dtype="float64")
    block.build(x.shape)
    _randomize(block)
    assert kt.check_gradients(block, x, training=True) < 1e-7


def test_keras_helper_checks(tmp_path):
    x = kt.random_inputs((4, 5, 5, 3))
    # 3 convs (no bias) + 3 BNs (2 trainable, 2 moving each).
    kt.run_layer_checks(lambda: ResidualBlock(4, strides=2), x, tmp_path,
                        expected_output_shape=(4, 3, 3, 4), trainable=9, non_trainable=6,
                        expect_non_trainable_change=True)
    layer = ResidualBlock(3, use_batch_norm=False)
    layer.build((None, 5, 5, 3))
    kt.check_weight_counts(layer, trainable=4, non_trainable=0)  # 2 kernels + 2 biases


def test_xla_matches_plain():
    block = ResidualBlock(2, bottleneck=True)
    kt.check_xla(block, kt.random_inputs((2, 4, 4, 3)), training=True)


def test_invalid_arguments():
    for name, kwargs in [("filters", dict(filters=0)), ("strides", dict(filters=2, strides=0)),
                         ("kernel_size", dict(filters=2, kernel_size=1.5))]:
        with pytest.raises(ValueError, match=name):
            ResidualBlock(**kwargs)
    with pytest.raises(ValueError, match="height, width"):
        ResidualBlock(2).build((None, 4, 3))


def test_mirrored_strategy_matches_keras_composition(two_cpu_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4, 4, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    head = [np.full((8, 1), 0.1, "float32"), np.zeros(1, "float32")]

    def ours():
        block = ResidualBlock(8, strides=2, kernel_initializer=keras.initializers.HeNormal(3))
        model = keras.Sequential([keras.Input((4, 4, 3)), block,
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
        model.layers[-1].set_weights(head)
        return model

    ours_model = kt.fit_steps(ours, x, y, two_cpu_strategy)
    block0 = ours().layers[0]  # the same initial weights (seeded initializer)

    twin_pairs = []

    def theirs():
        twin, pairs = keras_twin(block0, x.shape)
        twin_pairs.extend(pairs)
        out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(twin.output))
        model = keras.Model(twin.input, out)
        model.layers[-1].set_weights(head)
        return model

    kt.fit_steps(theirs, x, y, two_cpu_strategy)
    block = ours_model.layers[0]
    sublayers = [block.convs[0], block.bns[0], block.convs[1], block.bns[1],
                 block.shortcut_conv, block.shortcut_bn]
    assert len(sublayers) == len(twin_pairs) == 6
    for ours_layer, (_, twin_layer) in zip(sublayers, twin_pairs, strict=True):
        for a, b in zip(ours_layer.weights, twin_layer.weights, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=ATOL, err_msg=a.path)
    assert not np.allclose(block.convs[0].kernel.numpy(), block0.convs[0].kernel.numpy())
