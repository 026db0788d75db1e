"""Sinusoidal positional encoding (Vaswani et al., 2017)."""

import keras
import numpy as np
from keras import ops

__all__ = ["PositionalEncoding", "sinusoidal_table"]


def sinusoidal_table(length, depth, base=10000.0):
    """The (length, depth) float32 NumPy table PE of the docstring below."""
    positions = np.arange(length, dtype=np.float64)[:, None]           # pos
    two_i = np.arange(0, depth, 2, dtype=np.float64)[None, :]          # 2i
    angles = positions / np.power(base, two_i / depth)                 # pos / base^(2i/d)
    table = np.zeros((length, depth), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : depth // 2])
    return table.astype(np.float32)


@keras.saving.register_keras_serializable(package="dlsuite")
class PositionalEncoding(keras.layers.Layer):
    """Adds the sinusoidal positional encoding to a sequence of embeddings.

    For position pos = 0..T-1 and feature index 2i, 2i+1 < d:

        PE(pos, 2i)   = sin(pos / base^(2i / d))
        PE(pos, 2i+1) = cos(pos / base^(2i / d))

    with base = 10000, and the layer **returns x + PE[:T]** for an input x
    of shape (B, T, d) (it adds; it does not return PE alone; use
    `sinusoidal_table` for the bare table). The encoding has no weights: each
    dimension is a sinusoid whose wavelength grows geometrically from 2 pi
    to base * 2 pi, so relative offsets are linear functions of the encoding.
    Scale the embeddings (e.g. by sqrt(d)) before this layer if wanted. The
    input's Keras mask passes through.

    Args:
      max_length: the longest sequence the layer accepts (the table size).
      base: the base of the wavelengths (10000 in the paper).
      **kwargs: base layer arguments.

    Call arguments:
      inputs: (B, T, d) with T <= max_length.
    """

    def __init__(self, max_length, base=10000.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length <= 0:
            raise ValueError("PositionalEncoding: `max_length` must be a positive int; "
                             f"got max_length={max_length!r}.")
        if not float(base) > 0.0:
            raise ValueError(f"PositionalEncoding: `base` must be positive; got base={base}.")
        self.max_length = max_length
        self.base = float(base)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError("PositionalEncoding: expected inputs of shape (batch, length, "
                             f"features) with known features; got {tuple(input_shape)}.")
        if input_shape[1] is not None and input_shape[1] > self.max_length:
            raise ValueError(f"PositionalEncoding: the sequence length {input_shape[1]} "
                             f"exceeds `max_length`={self.max_length}.")
        self._table = sinusoidal_table(self.max_length, input_shape[-1], self.base)

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        table = ops.convert_to_tensor(self._table, dtype=inputs.dtype)
        return inputs + ops.expand_dims(table[:length], 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"max_length": self.max_length, "base": self.base})
        return config
