"""The U-Net: the course's parameter count, and shapes through the skips at odd sizes."""

import keras
import numpy as np
import pytest

from apps.segmentation import model as model_lib


def _conv_params(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def _course_counts(n=32, classes=23, channels=3):
    """Each layer's parameters in the course's unet_model, from the conv formula."""
    counts, c_in = {}, channels
    for b in range(5):
        f = n * 2**b
        counts[f"down{b}_conv1"] = _conv_params(3, c_in, f)
        counts[f"down{b}_conv2"] = _conv_params(3, f, f)
        c_in = f
    for b in reversed(range(4)):
        f = n * 2**b
        counts[f"up{b}_transpose"] = _conv_params(3, c_in, f)
        counts[f"up{b}_conv1"] = _conv_params(3, 2 * f, f)  # on [up, skip]
        counts[f"up{b}_conv2"] = _conv_params(3, f, f)
        c_in = f
    counts["head_conv"] = _conv_params(3, n, n)
    counts["logits"] = _conv_params(1, n, classes)
    return counts


def test_the_course_settings_give_8640471_parameters():
    model = model_lib.unet((96, 128, 3), num_classes=23, n_filters=32, depth=4,
                           batch_norm=False, dropout=0.3, dropout_blocks=2)
    assert model.count_params() == 8_640_471
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 8_640_471
    expected = _course_counts()
    assert sum(expected.values()) == 8_640_471
    got = {layer.name: layer.count_params() for layer in model.layers if layer.count_params()}
    assert got == expected
    # Dropout in the two deepest conv blocks only, max pooling after all but the last.
    dropouts = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == ["down3_dropout", "down4_dropout"]
    pools = [layer for layer in model.layers if isinstance(layer, model_lib.MaxPool2x2)]
    assert len(pools) == 4
    transposed = [layer for layer in model.layers
                  if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [(t.kernel_size, t.strides) for t in transposed] == [((3, 3), (2, 2))] * 4
    assert model.output_shape == (None, 96, 128, 23)


def test_batch_norm_adds_the_projects_batch_norm_after_every_conv():
    import layers

    model = model_lib.unet((32, 32, 3), num_classes=4, n_filters=4, depth=2, batch_norm=True)
    convs = [la for la in model.layers if type(la) is keras.layers.Conv2D]
    norms = [la for la in model.layers if isinstance(la, layers.BatchNorm)]
    assert len(norms) == len(convs) - 1  # all but the 1x1 logits


@pytest.mark.parametrize("height, width, depth", [(37, 53, 3), (33, 17, 4), (9, 11, 2)])
def test_odd_sizes_flow_through_every_skip_connection(height, width, depth):
    model = model_lib.unet((height, width, 3), num_classes=5, n_filters=4, depth=depth,
                           batch_norm=True)
    x = np.random.default_rng(0).uniform(size=(2, height, width, 3)).astype("float32")
    assert model(x).shape == (2, height, width, 5)
    # Each concatenation joins the cropped upsampling and the skip of the same size,
    # which is ceil(size / 2**b) at level b.
    for b in range(depth):
        concat = model.get_layer(f"up{b}_concat")
        up_shape, skip_shape = (tuple(t.shape) for t in concat.input)
        expected = (-(-height // 2**b), -(-width // 2**b))
        assert up_shape[1:3] == skip_shape[1:3] == expected
        assert model.get_layer(f"up{b}_transpose").output.shape[1:3] == (
            2 * -(-height // 2**(b + 1)), 2 * -(-width // 2**(b + 1)))


def test_any_size_model_crops_at_run_time():
    model = model_lib.unet((None, None, 3), num_classes=3, n_filters=4, depth=3)
    for shape in ((1, 45, 23, 3), (2, 16, 16, 3), (1, 7, 30, 3)):
        assert model(np.zeros(shape, "float32")).shape == shape[:3] + (3,)


def test_crop_to_match_keeps_the_top_left():
    x = np.arange(2 * 6 * 5 * 1, dtype="float32").reshape(2, 6, 5, 1)
    reference = np.zeros((2, 5, 3, 7), "float32")
    out = model_lib.CropToMatch()([x, reference])
    np.testing.assert_array_equal(out, x[:, :5, :3])


def test_model_saves_and_reloads(tmp_path):
    model = model_lib.unet((20, 28, 3), num_classes=3, n_filters=4, depth=2, batch_norm=True)
    x = np.random.default_rng(1).uniform(size=(1, 20, 28, 3)).astype("float32")
    path = str(tmp_path / "unet.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded(x), model(x), atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (1, 7, 9, 2), (1, 1, 5, 1)])
def test_max_pool_equals_keras_max_pooling(shape):
    x = np.random.default_rng(2).normal(size=shape).astype("float32")
    expected = keras.layers.MaxPooling2D(2, padding="same")(x)
    np.testing.assert_array_equal(model_lib.MaxPool2x2()(x), expected)
    assert model_lib.MaxPool2x2().compute_output_shape(shape) == tuple(expected.shape)


def test_the_train_step_compiles_with_xla_under_op_determinism():
    import tensorflow as tf

    model = model_lib.unet((6, 5, 3), num_classes=3, n_filters=2, depth=1, dropout=0.0)
    x = np.random.default_rng(3).uniform(size=(2, 6, 5, 3)).astype("float32")
    y = np.random.default_rng(4).integers(0, 3, (2, 6, 5))

    @tf.function(jit_compile=True)
    def gradients(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tape.gradient(loss, model.trainable_variables)

    from tensorflow.python.framework import config as tf_config  # to restore the state

    was_on = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()  # as apps.core.main does
    try:
        grads = gradients(x, y)
    finally:
        if not was_on:
            tf_config.disable_op_determinism()
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert float(np.abs(grads[0]).sum()) > 0
