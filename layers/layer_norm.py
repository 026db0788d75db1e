"""Layer normalization (Ba, Kiros and Hinton, 2016), written from the formula."""

import warnings

import keras
from keras import constraints, initializers, ops, regularizers

from layers._backend import at_least_float32

__all__ = ["LayerNorm"]


@keras.saving.register_keras_serializable(package="dlsuite")
class LayerNorm(keras.layers.Layer):
    """Layer normalization: normalizes each example over its feature axes.

    For every example (and every position of a sequence), over the axes
    A = `axis` (the features):

        mu      = mean_A(x)
        sigma2  = mean_A((x - mu) ** 2)
        y       = gamma * (x - mu) / sqrt(sigma2 + epsilon) + beta

    Unlike batch normalization the statistics never mix examples, so training
    and inference compute the same thing and there are no moving averages.
    gamma and beta have the shape of the normalized axes.

    With `rms_scaling=True` the input is only rescaled, not centred, and
    there is no offset:

        y       = gamma * x / sqrt(sigma2 + epsilon)

    gamma is then always created (even with `scale=False`) and beta never
    (`center` is ignored). This is what `keras.layers.LayerNormalization`
    computes for the same argument, which Keras has deprecated: despite its
    name it divides by the standard deviation sqrt(sigma2), not by the root
    mean square sqrt(mean_A(x ** 2)) of RMSNorm (Zhang and Sennrich, 2019);
    the two agree only for inputs of zero mean over A. It is kept (and warns)
    so that models using it port unchanged; for RMSNorm use
    `keras.layers.RMSNormalization`.

    Arguments, weights (gamma, then beta) and numerics follow
    `keras.layers.LayerNormalization`, so weights copy between the two.
    Float16/bfloat16 inputs are normalized in float32 and cast back.

    Args:
      axis: int or list/tuple of ints, the axes to normalize over (-1: the
        last); any other type raises a TypeError.
      epsilon: small positive float added to the variance.
      center: if True, add the learned offset beta.
      scale: if True, multiply by the learned scale gamma.
      beta_initializer, gamma_initializer: initializers.
      beta_regularizer, gamma_regularizer: optional regularizers.
      beta_constraint, gamma_constraint: optional constraints.
      rms_scaling: if True, the uncentred form above (Keras's deprecated
        `rms_scaling`).
      **kwargs: base layer arguments.

    Call arguments:
      inputs: a tensor of any rank.
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        rms_scaling=False,
        **kwargs,
    ):
        super().__init__(**kwargs)

        def is_int(a):
            return isinstance(a, int) and not isinstance(a, bool)

        if isinstance(axis, (list, tuple)):
            axis = list(axis)
        if not (is_int(axis) or (isinstance(axis, list) and all(is_int(a) for a in axis))):
            raise TypeError("LayerNorm: Expected an int or a list/tuple of ints for the "
                            f"argument 'axis'; got axis={axis!r}.")
        if axis == []:
            raise ValueError("LayerNorm: `axis` must name at least one axis; got axis=[].")
        if rms_scaling:
            warnings.warn(
                "LayerNorm(rms_scaling=True) follows Keras's deprecated argument: it divides "
                "by the standard deviation over `axis`, not by the root mean square. For "
                "RMS normalization use keras.layers.RMSNormalization.", stacklevel=2)
        if not float(epsilon) > 0.0:
            raise ValueError(f"LayerNorm: `epsilon` must be positive; got epsilon={epsilon}.")
        self.axis = axis
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = bool(rms_scaling)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.autocast = False
        self.gamma = None
        self.beta = None

    def build(self, input_shape):
        rank = len(input_shape)
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -rank <= a < rank:
                raise ValueError(f"LayerNorm: `axis`={self.axis} is out of range for inputs "
                                 f"of shape {tuple(input_shape)}.")
        self._axes = sorted(a % rank for a in axes)
        shape = tuple(input_shape[a] for a in self._axes)
        # gamma/beta broadcast against x with this shape (1 on the other axes).
        self._broadcast_shape = [input_shape[a] if a in self._axes else 1
                                 for a in range(rank)]
        self._last_axis_only = self._axes == [rank - 1]
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(
                shape=shape, name="gamma", initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
                trainable=True, autocast=False)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(
                shape=shape, name="beta", initializer=self.beta_initializer,
                regularizer=self.beta_regularizer, constraint=self.beta_constraint,
                trainable=True, autocast=False)

    def call(self, inputs):
        dtype = at_least_float32(inputs.dtype)
        x = ops.cast(inputs, dtype)
        mean = ops.mean(x, self._axes, keepdims=True)
        variance = ops.mean(ops.square(x - ops.stop_gradient(mean)), self._axes, keepdims=True)
        # y = x * inv + (beta - mean * inv), inv = gamma / sqrt(sigma2 + eps).
        inv = ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            inv = inv * self._broadcast(self.gamma, dtype)
        if self.rms_scaling:  # y = x * inv: no centring, no beta
            return ops.cast(x * inv, self.compute_dtype)
        offset = -mean * inv
        if self.beta is not None:
            offset = offset + self._broadcast(self.beta, dtype)
        return ops.cast(x * inv + offset, self.compute_dtype)

    def _broadcast(self, weight, dtype):
        weight = ops.cast(weight, dtype)
        if self._last_axis_only:
            return weight
        return ops.reshape(weight, self._broadcast_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "rms_scaling": self.rms_scaling,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        })
        return config
