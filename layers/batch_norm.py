"""Batch normalization (Ioffe and Szegedy, 2015), written from the formula."""

import keras
import tensorflow as tf
from keras import constraints, initializers, ops, regularizers

__all__ = ["BatchNorm"]


def _replicas_in_sync():
    """Number of replicas of the current tf.distribute replica context (1 if none)."""
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


@keras.saving.register_keras_serializable(package="dlsuite")
class BatchNorm(keras.layers.Layer):
    """Batch normalization: normalizes each feature over the batch.

    For every feature (channel) c along `axis`, with the other axes of the
    input (batch, and height/width for images) reduced over:

        mu_c      = mean(x[..., c])
        sigma2_c  = mean((x[..., c] - mu_c) ** 2)          (biased variance)
        y[..., c] = gamma_c * (x[..., c] - mu_c) / sqrt(sigma2_c + epsilon) + beta_c

    **Training and inference differ.** With `training=True` (in `fit`, or
    when called with `training=True`) mu and sigma2 are the statistics *of
    the current batch*, gradients flow through them, and the moving averages
    are updated:

        moving_mean     <- momentum * moving_mean     + (1 - momentum) * mu
        moving_variance <- momentum * moving_variance + (1 - momentum) * sigma2

    With `training=False` (the default; `evaluate`, `predict`, serving) the
    layer uses `moving_mean` and `moving_variance` in place of mu and sigma2,
    so each example is normalized independently of the rest of its batch and
    the output is a fixed affine function of the input. A layer set to
    `trainable = False` always runs in inference mode (as Keras does), so a
    frozen backbone keeps its statistics.

    The arguments, weight names, weight order (gamma, beta, moving_mean,
    moving_variance) and numerics follow `keras.layers.BatchNormalization`
    (without batch renormalization), so weights copy between the two.
    Float16/bfloat16 inputs (mixed precision) are normalized in float32 and
    the result cast back to the layer's compute dtype; the weights stay in
    the variable dtype (float32). Under `tf.distribute`, the moving
    statistics are updated with `Variable.assign` in replica context, exactly
    as Keras does; each replica uses its own batch statistics unless
    `synchronized=True`, which all-reduces the sums over the replicas so that
    mu and sigma2 are those of the global batch.

    Args:
      axis: the feature axis (an int, negative counts from the end); -1 for
        dense `(batch, features)` and channels-last images, 1 for
        channels-first.
      momentum: momentum of the moving averages, in [0, 1].
      epsilon: small positive float added to the variance.
      center: if True, add the learned offset `beta`.
      scale: if True, multiply by the learned scale `gamma`.
      beta_initializer, gamma_initializer: initializers of beta and gamma.
      moving_mean_initializer, moving_variance_initializer: initializers of
        the moving statistics.
      beta_regularizer, gamma_regularizer: optional regularizers.
      beta_constraint, gamma_constraint: optional constraints.
      synchronized: if True, batch statistics are computed over all replicas
        of the current `tf.distribute` strategy.
      **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
      inputs: a tensor of any rank >= 2.
      training: True for batch statistics (and moving-average updates),
        False/None for the moving statistics.
      mask: optional boolean tensor of shape `inputs.shape[:-1]`; masked
        positions are left out of the batch statistics (as in Keras).
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"BatchNorm: `axis` must be an int; got axis={axis!r}.")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"BatchNorm: `momentum` must be in [0, 1]; got momentum={momentum}.")
        if not float(epsilon) > 0.0:
            raise ValueError(f"BatchNorm: `epsilon` must be positive; got epsilon={epsilon}.")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.synchronized = bool(synchronized)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.gamma = None
        self.beta = None

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"BatchNorm: `axis`={self.axis} is out of range for inputs of "
                             f"shape {tuple(input_shape)}.")
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(f"BatchNorm: the feature axis {self.axis} of the input shape "
                             f"{tuple(input_shape)} must be known.")
        self._axis = self.axis % rank
        self._reduction_axes = [i for i in range(rank) if i != self._axis]
        # Shape to which per-channel vectors are reshaped to broadcast against x.
        self._broadcast_shape = [1] * rank
        self._broadcast_shape[self._axis] = channels
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape, name="gamma", initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
                trainable=True, autocast=False)
        if self.center:
            self.beta = self.add_weight(
                shape=shape, name="beta", initializer=self.beta_initializer,
                regularizer=self.beta_regularizer, constraint=self.beta_constraint,
                trainable=True, autocast=False)
        self.moving_mean = self.add_weight(
            shape=shape, name="moving_mean", initializer=self.moving_mean_initializer,
            trainable=False, autocast=False)
        self.moving_variance = self.add_weight(
            shape=shape, name="moving_variance", initializer=self.moving_variance_initializer,
            trainable=False, autocast=False)
        self.input_spec = keras.InputSpec(ndim=rank, axes={self._axis: channels})

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _moments(self, x, mask):
        """Per-channel batch mean and (biased) variance, shaped (C,)."""
        axes = self._reduction_axes
        if mask is not None:
            if len(mask.shape) != len(x.shape) - 1:
                raise ValueError("BatchNorm: `mask` must have one dimension less than the "
                                 f"inputs; got mask.shape={mask.shape}, "
                                 f"inputs.shape={x.shape}.")
            weights = ops.cast(ops.expand_dims(mask, -1), x.dtype)
            weights = ops.broadcast_to(weights, ops.shape(x))
            count = ops.sum(weights, axes, keepdims=True) + keras.config.epsilon()
            mean = ops.sum(x * weights, axes, keepdims=True) / count
            variance = ops.sum(ops.square(x - mean) * weights, axes, keepdims=True) / count
        elif self.synchronized and _replicas_in_sync() > 1:
            # Global-batch statistics: all-reduce sum(x), sum(x^2) and the count,
            # then sigma2 = E[x^2] - mu^2.
            ctx = tf.distribute.get_replica_context()
            channels = self._broadcast_shape[self._axis]
            local = ops.stack([ops.sum(x, axes), ops.sum(ops.square(x), axes),
                               ops.ones((channels,), x.dtype) * ops.cast(
                                   ops.size(x) // channels, x.dtype)])
            total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local)
            mean = total[0] / total[2]
            variance = ops.maximum(total[1] / total[2] - ops.square(mean), 0.0)
            return mean, variance
        else:
            mean = ops.mean(x, axes, keepdims=True)
            # d(variance)/d(mean) is exactly zero, so the mean can be held
            # constant here; this saves work in the backward pass.
            variance = ops.mean(ops.square(x - ops.stop_gradient(mean)), axes, keepdims=True)
        channels = (self._broadcast_shape[self._axis],)
        return ops.reshape(mean, channels), ops.reshape(variance, channels)

    def call(self, inputs, training=None, mask=None):
        # Statistics overflow in float16; compute in float32 (or float64).
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, dtype)
        if training and self.trainable:
            mean, variance = self._moments(x, mask)
            moving_mean = ops.cast(self.moving_mean, dtype)
            moving_variance = ops.cast(self.moving_variance, dtype)
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            mean = ops.cast(self.moving_mean, dtype)
            variance = ops.cast(self.moving_variance, dtype)

        # y = x * inv + (beta - mean * inv) with inv = gamma / sqrt(var + eps):
        # only two elementwise passes over x.
        inv = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            inv = inv * ops.cast(self.gamma, dtype)
        offset = -mean * inv
        if self.center:
            offset = offset + ops.cast(self.beta, dtype)
        if self._axis != len(x.shape) - 1:
            inv = ops.reshape(inv, self._broadcast_shape)
            offset = ops.reshape(offset, self._broadcast_shape)
        outputs = x * inv + offset
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
        })
        return config
