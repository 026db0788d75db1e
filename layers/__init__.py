"""Hand-coded Keras layers and losses.

Layers (each registered for `.keras` serialization under the "dlsuite" package):

- `BatchNorm`: batch normalization (batch statistics in training, moving
  averages in inference), the twin of `keras.layers.BatchNormalization`.
- `LayerNorm`: layer normalization, the twin of `keras.layers.LayerNormalization`.
- `MultiHeadAttention`: multi-head scaled dot-product attention, weight-compatible
  with `keras.layers.MultiHeadAttention`.
- `PositionalEncoding`: adds the sinusoidal positional encoding.
- `TransformerEncoderBlock`, `TransformerDecoderBlock`: post-norm Transformer blocks.
- `ResidualBlock`: the ResNet v1 block (basic or bottleneck).
- `InceptionModule`: the GoogLeNet Inception module.
- `Maxout`: the max over groups of features.
- `SimpleRNN`, `GRU`, `LSTM` (and their cells `SimpleRNNCell`, `GRUCell`,
  `LSTMCell`): recurrent layers from the notes' equations, weight-compatible
  with their Keras twins (`GRU` is the notes' full GRU, Keras's
  `reset_after=False`; `reset_after=True` gives Keras's default variant).

Also `losses` (a module of loss functions) and `gradient_check` (numeric against
automatic gradients).

Backend-agnostic Keras 3 code (`keras.ops`): it runs on TensorFlow and on JAX
(`KERAS_BACKEND=jax`); the TensorFlow-only pieces (the recurrent layers' TensorList
loop, BatchNorm's cross-replica statistics) run, and import TensorFlow, only on
TensorFlow.
"""

from layers import losses
from layers.attention import MultiHeadAttention
from layers.batch_norm import BatchNorm
from layers.gradient_check import gradient_check
from layers.inception import InceptionModule
from layers.layer_norm import LayerNorm
from layers.maxout import Maxout
from layers.positional_encoding import PositionalEncoding
from layers.recurrent import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from layers.residual import ResidualBlock
from layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock

__all__ = [
    "GRU",
    "LSTM",
    "BatchNorm",
    "GRUCell",
    "InceptionModule",
    "LSTMCell",
    "LayerNorm",
    "Maxout",
    "MultiHeadAttention",
    "PositionalEncoding",
    "ResidualBlock",
    "SimpleRNN",
    "SimpleRNNCell",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
    "gradient_check",
    "losses",
]
