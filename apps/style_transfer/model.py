"""The fast stylizer: the image transformation network of Johnson et al. (2016).

    9x9 conv (32w) -> 3x3 conv /2 (64w) -> 3x3 conv /2 (128w)
      -> `residual_blocks` x layers.ResidualBlock(128w)
      -> x2 upsampling + 3x3 conv (64w) -> x2 upsampling + 3x3 conv (32w)
      -> 9x9 conv (3) = r
    stylized = sigmoid(logit(x) + r)

(w = config.model.width). Convolutions are conv-BatchNorm-ReLU with our
`layers.BatchNorm` (momentum 0.9, so the moving statistics used at inference
settle within the few hundred steps a CPU run takes); upsampling is
nearest-neighbour followed by a convolution (Odena et al., 2016: no
checkerboard artefacts, unlike transposed convolutions).

Unlike Johnson et al., whose last layer outputs the image (scaled tanh), the
network outputs a residual r in logit space, and its last convolution starts
at zero: the untrained network is the identity (x is clipped to
[1/255, 254/255] for the logit), so training starts from the content image, as
the optimisation method does, instead of from grey, and a few minutes of CPU
training suffice to add the style.

The network is fully convolutional: it takes images of any size whose sides
are multiples of 4 (the export pads and crops other sizes).
"""

import keras
from keras import ops

import layers

MOMENTUM = 0.9
_EPS = 1.0 / 255.0


def _w(base, width):
    return max(4, int(round(base * width)))


def _conv_bn_relu(x, filters, kernel_size, strides=1, name=None):
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                            use_bias=False, kernel_initializer="he_normal",
                            name=f"{name}_conv")(x)
    x = layers.BatchNorm(momentum=MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@keras.saving.register_keras_serializable(package="dlsuite_style_transfer")
class ResidualInLogits(keras.layers.Layer):
    """stylized = sigmoid(logit(clip(x, eps, 1 - eps)) + r), eps = 1/255."""

    def call(self, image, residual):
        x = ops.clip(image, _EPS, 1.0 - _EPS)
        return ops.sigmoid(ops.log(x) - ops.log1p(-x) + residual)


def build(width=1.0, residual_blocks=5, name="stylizer"):
    """Float images in [0, 1] (batch, H, W, 3) -> stylized images in [0, 1]."""
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(inputs)
    x = _conv_bn_relu(x, _w(32, width), 9, name="down0")
    x = _conv_bn_relu(x, _w(64, width), 3, strides=2, name="down1")
    x = _conv_bn_relu(x, _w(128, width), 3, strides=2, name="down2")
    for i in range(residual_blocks):
        x = layers.ResidualBlock(_w(128, width), momentum=MOMENTUM, name=f"residual{i}")(x)
    for i, filters in enumerate((64, 32), start=1):
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_resize")(x)
        x = _conv_bn_relu(x, _w(filters, width), 3, name=f"up{i}")
    residual = keras.layers.Conv2D(3, 9, padding="same", kernel_initializer="zeros",
                                   name="to_rgb", dtype="float32")(x)
    outputs = ResidualInLogits(name="stylized", dtype="float32")(inputs, residual)
    return keras.Model(inputs, outputs, name=name)
