"""The ResNet v1 residual block (He et al., 2016): basic and bottleneck forms."""

import keras
from keras import activations, initializers, ops, regularizers

from layers.batch_norm import BatchNorm

__all__ = ["ResidualBlock"]


def _conv_output_length(length, strides):
    """Output length of a "same"-padded convolution."""
    return None if length is None else -(-length // strides)


@keras.saving.register_keras_serializable(package="dlsuite")
class ResidualBlock(keras.layers.Layer):
    """A ResNet v1 residual block on channels-last images.

    The block adds its input (the shortcut) to the output of a small stack of
    convolutions (the main path) and applies the activation g after the sum:

        a[l+2] = g(z[l+2] + shortcut(a[l]))

    Main path, basic form (`bottleneck=False`, ResNet-18/34); output channels
    = `filters`:

        z[l+1] = BN(conv_kxk(a[l], stride=strides));  a[l+1] = g(z[l+1])
        z[l+2] = BN(conv_kxk(a[l+1]))

    Main path, bottleneck form (`bottleneck=True`, ResNet-50/101/152); output
    channels = 4 * `filters` (1x1 reduce, kxk, 1x1 expand):

        g(BN(conv_1x1(a, filters))) -> g(BN(conv_kxk(., filters, stride=strides)))
            -> BN(conv_1x1(., 4 * filters))

    The stride sits on the kxk convolution of the bottleneck (the "v1.5"
    placement of torchvision and KerasHub, a little more accurate than putting
    it on the first 1x1).

    Shortcut: the identity a[l] when `strides == 1` and the input already has
    the output's number of channels; otherwise a projection
    BN(conv_1x1(a[l], output channels, stride=strides)) so the shapes match.

    All convolutions use "same" padding, so the output spatial size is
    ceil(input size / strides). With `use_batch_norm=True` the BN layers are
    our `BatchNorm` and the convolutions have no bias (BN's beta replaces it);
    with `use_batch_norm=False` the BNs are dropped and the convolutions get
    biases.

    Args:
      filters: number of filters of the main-path convolutions (the block
        outputs `filters` channels, or `4 * filters` if `bottleneck`).
      kernel_size: size of the kxk convolutions (an int).
      strides: stride of the block (an int); 2 halves height and width.
      use_batch_norm: whether to batch-normalize after each convolution.
      activation: the activation g (name or callable), ReLU by default.
      bottleneck: use the 1x1-kxk-1x1 bottleneck with 4x expansion.
      kernel_initializer: initializer of the convolution kernels.
      kernel_regularizer: optional regularizer of the convolution kernels.
      momentum, epsilon: passed to the BatchNorm layers.
      **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
      inputs: a `(batch, height, width, channels)` tensor.
      training: True to use batch statistics in the BatchNorm layers.
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        use_batch_norm=True,
        activation="relu",
        bottleneck=False,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        momentum=0.99,
        epsilon=1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("filters", filters), ("kernel_size", kernel_size),
                            ("strides", strides)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ResidualBlock: `{name}` must be a positive int; "
                                 f"got {name}={value!r}.")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.use_batch_norm = bool(use_batch_norm)
        self.activation = activations.get(activation)
        self.bottleneck = bool(bottleneck)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.output_channels = 4 * filters if bottleneck else filters

    def _conv(self, filters, kernel_size, strides, name):
        return keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding="same",
            use_bias=not self.use_batch_norm,
            kernel_initializer=initializers.get(
                initializers.serialize(self.kernel_initializer)),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy, name=name)

    def _bn(self, name):
        if not self.use_batch_norm:
            return None
        return BatchNorm(momentum=self.momentum, epsilon=self.epsilon,
                         dtype=self.dtype_policy, name=name)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError("ResidualBlock: expected inputs of shape (batch, height, width, "
                             f"channels); got shape {tuple(input_shape)}.")
        k, s, f = self.kernel_size, self.strides, self.filters
        if self.bottleneck:
            specs = [(f, 1, 1), (f, k, s), (4 * f, 1, 1)]
        else:
            specs = [(f, k, s), (f, k, 1)]
        # The main path: (conv, bn) pairs, built in order.
        self.convs, self.bns = [], []
        shape = tuple(input_shape)
        for i, (filters, kernel, strides) in enumerate(specs, start=1):
            conv = self._conv(filters, kernel, strides, f"conv{i}")
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            bn = self._bn(f"bn{i}")
            if bn is not None:
                bn.build(shape)
            self.convs.append(conv)
            if bn is not None:
                self.bns.append(bn)
        self.projection = s != 1 or input_shape[-1] != self.output_channels
        self.shortcut_conv = self.shortcut_bn = None
        if self.projection:
            self.shortcut_conv = self._conv(self.output_channels, 1, s, "shortcut_conv")
            self.shortcut_conv.build(tuple(input_shape))
            self.shortcut_bn = self._bn("shortcut_bn")
            if self.shortcut_bn is not None:
                self.shortcut_bn.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.use_batch_norm:
                x = self.bns[i](x, training=training)
            if i != last:
                x = self.activation(x)
        shortcut = inputs
        if self.projection:
            shortcut = self.shortcut_conv(inputs)
            if self.shortcut_bn is not None:
                shortcut = self.shortcut_bn(shortcut, training=training)
        return self.activation(ops.add(x, shortcut))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, _conv_output_length(height, self.strides),
                _conv_output_length(width, self.strides), self.output_channels)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "use_batch_norm": self.use_batch_norm,
            "activation": activations.serialize(self.activation),
            "bottleneck": self.bottleneck,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        })
        return config
