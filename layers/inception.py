"""The Inception module of GoogLeNet (Szegedy et al., 2015)."""

import keras
from keras import activations, initializers, ops, regularizers

from layers.batch_norm import BatchNorm

__all__ = ["InceptionModule"]


@keras.saving.register_keras_serializable(package="dlsuite")
class InceptionModule(keras.layers.Layer):
    """An Inception module: four parallel branches concatenated on channels.

    On a channels-last input x, with g the activation (ReLU) and every
    convolution stride 1 with "same" padding:

        b1 = g(conv_1x1(x, filters_1x1))
        b2 = g(conv_3x3(g(conv_1x1(x, filters_3x3_reduce)), filters_3x3))
        b3 = g(conv_5x5(g(conv_1x1(x, filters_5x5_reduce)), filters_5x5))
        b4 = g(conv_1x1(max_pool_3x3_stride1(x), filters_pool_proj))
        y  = concat([b1, b2, b3, b4], axis=-1)

    The output has the input's height and width and
    `filters_1x1 + filters_3x3 + filters_5x5 + filters_pool_proj` channels.
    The 1x1 "reduce" convolutions cut the channels before the expensive 3x3
    and 5x5 convolutions. With `use_batch_norm=True` every convolution is
    followed by our `BatchNorm` before g (and has no bias), as in
    Inception v2 ("BN-Inception").

    Sublayers (and weights), in order: the six convolutions `convs` (b1 1x1,
    b2 reduce, b2 3x3, b3 reduce, b3 5x5, b4 projection), then their
    BatchNorms `bns` in the same order if `use_batch_norm`.

    Args:
      filters_1x1: filters of the 1x1 branch.
      filters_3x3_reduce: filters of the 1x1 convolution before the 3x3.
      filters_3x3: filters of the 3x3 convolution.
      filters_5x5_reduce: filters of the 1x1 convolution before the 5x5.
      filters_5x5: filters of the 5x5 convolution.
      filters_pool_proj: filters of the 1x1 projection after the max-pool.
      use_batch_norm: batch-normalize after every convolution.
      activation: the activation g (ReLU by default).
      kernel_initializer, kernel_regularizer: for every convolution kernel.
      **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
      inputs: a `(batch, height, width, channels)` tensor.
      training: True to use batch statistics in the BatchNorm layers.
    """

    _FILTER_ARGS = ("filters_1x1", "filters_3x3_reduce", "filters_3x3",
                    "filters_5x5_reduce", "filters_5x5", "filters_pool_proj")

    def __init__(
        self,
        filters_1x1,
        filters_3x3_reduce,
        filters_3x3,
        filters_5x5_reduce,
        filters_5x5,
        filters_pool_proj,
        use_batch_norm=False,
        activation="relu",
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        values = (filters_1x1, filters_3x3_reduce, filters_3x3, filters_5x5_reduce,
                  filters_5x5, filters_pool_proj)
        for name, value in zip(self._FILTER_ARGS, values, strict=True):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"InceptionModule: `{name}` must be a positive int; "
                                 f"got {name}={value!r}.")
            setattr(self, name, value)
        self.use_batch_norm = bool(use_batch_norm)
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError("InceptionModule: expected inputs of shape (batch, height, "
                             f"width, channels); got shape {tuple(input_shape)}.")
        input_shape = tuple(input_shape)

        # The six convolutions, in order: b1 1x1, b2 reduce, b2 3x3, b3 reduce,
        # b3 5x5, b4 projection; (filters, kernel size, input index) where the
        # input index is -1 for x itself, else the unit whose output feeds it.
        specs = [(self.filters_1x1, 1, -1), (self.filters_3x3_reduce, 1, -1),
                 (self.filters_3x3, 3, 1), (self.filters_5x5_reduce, 1, -1),
                 (self.filters_5x5, 5, 3), (self.filters_pool_proj, 1, -1)]
        names = ["branch1_1x1", "branch2_reduce", "branch2_3x3", "branch3_reduce",
                 "branch3_5x5", "branch4_proj"]
        convs, bns, shapes = [], [], []
        for (filters, kernel_size, source), name in zip(specs, names, strict=True):
            conv = keras.layers.Conv2D(
                filters, kernel_size, padding="same", use_bias=not self.use_batch_norm,
                kernel_initializer=initializers.get(
                    initializers.serialize(self.kernel_initializer)),
                kernel_regularizer=self.kernel_regularizer,
                dtype=self.dtype_policy, name=name)
            shape = input_shape if source < 0 else shapes[source]
            conv.build(shape)
            shapes.append(conv.compute_output_shape(shape))
            convs.append(conv)
            if self.use_batch_norm:
                bn = BatchNorm(dtype=self.dtype_policy, name=f"{name}_bn")
                bn.build(shapes[-1])
                bns.append(bn)
        self.convs = convs
        self.bns = bns

    def _unit(self, i, x, training):
        """g(BN(conv_i(x))) (no BN without batch norm)."""
        x = self.convs[i](x)
        if self.use_batch_norm:
            x = self.bns[i](x, training=training)
        return self.activation(x)

    def call(self, inputs, training=None):
        out1 = self._unit(0, inputs, training)
        out2 = self._unit(2, self._unit(1, inputs, training), training)
        out3 = self._unit(4, self._unit(3, inputs, training), training)
        pooled = ops.max_pool(inputs, pool_size=3, strides=1, padding="same")
        out4 = self._unit(5, pooled, training)
        return ops.concatenate([out1, out2, out3, out4], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = (self.filters_1x1 + self.filters_3x3 + self.filters_5x5
                    + self.filters_pool_proj)
        return tuple(input_shape[:-1]) + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update({name: getattr(self, name) for name in self._FILTER_ARGS})
        config.update({
            "use_batch_norm": self.use_batch_norm,
            "activation": activations.serialize(self.activation),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
        })
        return config
