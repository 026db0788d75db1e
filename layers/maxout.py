"""Maxout (Goodfellow et al., 2013): the max over groups of features."""

import keras
from keras import ops

__all__ = ["Maxout"]


@keras.saving.register_keras_serializable(package="dlsuite")
class Maxout(keras.layers.Layer):
    """Maxout: splits the features into `num_units` groups and keeps each max.

    With d features along `axis` and k = d / num_units features per group,
    unit j takes the max over the j-th contiguous block of k features:

        y[..., j] = max_{i = 0..k-1} x[..., j * k + i],   j = 0..num_units-1

    Placed after a linear layer with d = num_units * k outputs this is the
    maxout unit h_j(x) = max_i (x^T W_{:, j, i} + b_{j, i}), a learned convex
    piecewise-linear activation. The gradient flows only to the maximal
    feature of each group. The layer has no weights. A Keras mask passes
    through when the groups are on the last axis.

    Args:
      num_units: the number of groups (output features along `axis`); it
        must divide the input's number of features.
      axis: the feature axis (int; -1 for the last).
      **kwargs: base layer arguments.

    Call arguments:
      inputs: a tensor whose `axis` dimension is a multiple of `num_units`.
    """

    def __init__(self, num_units, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_units, int) or isinstance(num_units, bool) or num_units <= 0:
            raise ValueError(f"Maxout: `num_units` must be a positive int; "
                             f"got num_units={num_units!r}.")
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"Maxout: `axis` must be an int; got axis={axis!r}.")
        self.num_units = num_units
        self.axis = axis
        self.supports_masking = True

    def _check(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"Maxout: `axis`={self.axis} is out of range for inputs of "
                             f"shape {tuple(input_shape)}.")
        axis = self.axis % rank
        features = input_shape[axis]
        if features is None:
            raise ValueError(f"Maxout: the feature axis {self.axis} of the input shape "
                             f"{tuple(input_shape)} must be known.")
        if features % self.num_units:
            raise ValueError(f"Maxout: the number of features ({features}, axis {self.axis}) "
                             f"must be divisible by `num_units`={self.num_units}.")
        return axis, features

    def build(self, input_shape):
        self._axis, features = self._check(input_shape)
        self._group = features // self.num_units

    def call(self, inputs):
        axis = self._axis
        shape = ops.shape(inputs)
        # (..., d, ...) -> (..., num_units, k, ...), then max over the k axis.
        grouped = list(shape[:axis]) + [self.num_units, self._group] + list(shape[axis + 1:])
        return ops.max(ops.reshape(inputs, grouped), axis=axis + 1)

    def compute_mask(self, inputs, mask=None):
        # A (batch, time) mask survives a max over the features, not over time.
        if mask is None or self._axis == len(inputs.shape) - 1:
            return mask
        return None

    def compute_output_shape(self, input_shape):
        axis, _ = self._check(input_shape)
        shape = list(input_shape)
        shape[axis] = self.num_units
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"num_units": self.num_units, "axis": self.axis})
        return config
