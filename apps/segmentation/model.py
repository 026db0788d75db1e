"""U-Net (Ronneberger et al., 2015) with transposed-convolution upsampling.

The layout of the Deep Learning Specialization's `unet_model` (course 4,
week 3), with the depth, width, batch norm and dropout from the config:

    contracting path, block b = 0 .. depth (n_filters * 2**b filters):
        Conv2D 3x3 'same' ReLU he_normal -> [BatchNorm] ->
        Conv2D 3x3 'same' ReLU he_normal -> [BatchNorm] ->
        [Dropout in the `dropout_blocks` deepest blocks]   -> skip_b
        max pooling 2x2 (MaxPool2x2; not after the deepest block)
    expanding path, b = depth-1 .. 0:
        Conv2DTranspose 3x3 stride 2 'same' (n_filters * 2**b filters)
        crop to skip_b's size, concatenate [up, skip_b]
        two Conv2D 3x3 'same' ReLU he_normal [BatchNorm]
    head: Conv2D 3x3 'same' ReLU he_normal (n_filters), Conv2D 1x1 -> class logits

At the course's settings (input 96x128x3, n_filters 32, depth 4, 23 classes,
no batch norm, dropout 0.3 in the two deepest blocks) this is exactly the
course's model: 8,640,471 parameters, all trainable (Conv2D k x k from c_in to
c_out has k*k*c_in*c_out + c_out; the transposed convolution the same):

    contracting path, 10 convolutions (3 -> 32 -> ... -> 512)      4,712,224
    expanding path, 4 x (transposed conv + 2 convs on the concat)  3,918,240
    head, 3x3 conv 32 -> 32 (9,248) and 1x1 conv 32 -> 23 (759)       10,007

(tests/apps/segmentation/test_model.py checks the total and every layer's
count against that formula).

Odd sizes: pooling pads like 'same' padding (ceil(n / 2)), so the upsampled map is
never smaller than its skip connection; `CropToMatch` cuts it to the skip's
size (a no-op when the size is divisible by 2**depth, as in the course), so
any input size works, including None x None.
"""

import keras
import tensorflow as tf
from keras import ops

import layers


@keras.saving.register_keras_serializable(package="dlsuite_segmentation")
class CropToMatch(keras.layers.Layer):
    """Crops `inputs[0]` (B, H', W', C) to the height and width of `inputs[1]`.

    H' >= H and W' >= W; the top-left part is kept (the transposed
    convolution's output row i corresponds to the skip's row i).
    """

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, :shape[1], :shape[2], :]

    def compute_output_shape(self, input_shapes):
        x, reference = input_shapes
        return (x[0], reference[1], reference[2], x[3])


@keras.saving.register_keras_serializable(package="dlsuite_segmentation")
class MaxPool2x2(keras.layers.Layer):
    """2x2 max pooling with stride 2 and 'same' padding, as a reshape and a max.

        y[b, i, j, c] = max(x[b, 2i, 2j, c], x[b, 2i, 2j+1, c],
                            x[b, 2i+1, 2j, c], x[b, 2i+1, 2j+1, c])

    with an odd height or width padded by -inf (so ceil(n / 2) outputs). The
    values equal `keras.layers.MaxPooling2D(2, padding="same")`; written as a
    reduction, its gradient has a deterministic XLA implementation, which
    TensorFlow's MaxPoolGrad lacks (with op determinism on, as this project
    runs, `jit_compile=True` refuses it). Tied maxima share the gradient.
    """

    def call(self, x):
        shape = tf.shape(x)
        x = tf.pad(x, [[0, 0], [0, shape[1] % 2], [0, shape[2] % 2], [0, 0]],
                   constant_values=x.dtype.min)
        height, width = (shape[1] + 1) // 2, (shape[2] + 1) // 2
        x = tf.reshape(x, [shape[0], height, 2, width, 2, x.shape[-1]])
        return tf.reduce_max(x, axis=[2, 4])

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else (h + 1) // 2, None if w is None else (w + 1) // 2, c)


def _conv(x, filters, kernel, batch_norm, name):
    x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu",
                            kernel_initializer="he_normal", name=name)(x)
    if batch_norm:
        x = layers.BatchNorm(name=f"{name}_bn")(x)
    return x


def conv_block(x, filters, dropout=0.0, max_pooling=True, batch_norm=False, name="down"):
    """Two 3x3 convolutions (+ dropout); returns (next_layer, skip_connection)."""
    x = _conv(x, filters, 3, batch_norm, f"{name}_conv1")
    x = _conv(x, filters, 3, batch_norm, f"{name}_conv2")
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    skip = x
    if max_pooling:
        x = MaxPool2x2(name=f"{name}_pool")(x)
    return x, skip


def upsampling_block(x, skip, filters, batch_norm=False, name="up"):
    """Transposed 3x3 stride-2 convolution, crop, concatenate the skip, two convs."""
    x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                                     name=f"{name}_transpose")(x)
    x = CropToMatch(name=f"{name}_crop")([x, skip])
    x = keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([x, skip])
    x = _conv(x, filters, 3, batch_norm, f"{name}_conv1")
    return _conv(x, filters, 3, batch_norm, f"{name}_conv2")


def unet(input_shape=(96, 128, 3), num_classes=23, n_filters=32, depth=4, batch_norm=False,
         dropout=0.3, dropout_blocks=2, name="unet"):
    """Returns the U-Net mapping float images (H, W, C) to logits (H, W, num_classes).

    Args:
      input_shape: (height, width, channels); height and width may be None.
      num_classes: the number of classes (logits per pixel).
      n_filters: filters of the first block; block b has n_filters * 2**b.
      depth: the number of 2x downsamplings (the course: 4, i.e. 5 conv blocks).
      batch_norm: BatchNorm (this project's `layers.BatchNorm`) after each conv.
      dropout: the dropout rate of the `dropout_blocks` deepest conv blocks.
    """
    inputs = keras.Input(input_shape, name="image")
    x, skips = inputs, []
    for b in range(depth + 1):
        deep = b > depth - dropout_blocks
        x, skip = conv_block(x, n_filters * 2**b, dropout=dropout if deep else 0.0,
                             max_pooling=b < depth, batch_norm=batch_norm, name=f"down{b}")
        skips.append(skip)
    x = skips.pop()
    for b in reversed(range(depth)):
        x = upsampling_block(x, skips[b], n_filters * 2**b, batch_norm=batch_norm, name=f"up{b}")
    x = _conv(x, n_filters, 3, batch_norm, "head_conv")
    logits = keras.layers.Conv2D(num_classes, 1, padding="same", name="logits",
                                 dtype="float32")(x)
    return keras.Model(inputs, logits, name=name)
