"""Post-norm Transformer encoder and decoder blocks (Vaswani et al., 2017)."""

import keras
from keras import activations, initializers, ops

from layers.attention import MultiHeadAttention, causal_mask
from layers.layer_norm import LayerNorm

__all__ = ["TransformerEncoderBlock", "TransformerDecoderBlock"]


def _keras_mask(x):
    return getattr(x, "_keras_mask", None)


def _merge_masks(*masks):
    """Logical AND of the masks that are not None (None if all are None)."""
    merged = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged


def _key_padding_mask(padding_mask):
    """(B, S) padding mask (True = real token) -> (B, 1, S) attention mask."""
    return None if padding_mask is None else ops.expand_dims(padding_mask, 1)


def _check_args(cls, num_heads, key_dim, ff_dim, dropout, epsilon):
    for name, value in (("num_heads", num_heads), ("key_dim", key_dim), ("ff_dim", ff_dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{cls}: `{name}` must be a positive int; got {name}={value!r}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"{cls}: `dropout` must be in [0, 1); got dropout={dropout}.")
    if not float(epsilon) > 0.0:
        raise ValueError(f"{cls}: `epsilon` must be positive; got epsilon={epsilon}.")


class _TransformerBlock(keras.layers.Layer):
    """What the encoder and decoder blocks share: arguments and sublayer makers."""

    def __init__(self, num_heads, key_dim, ff_dim, dropout=0.1, epsilon=1e-6,
                 activation="relu", kernel_initializer="glorot_uniform", **kwargs):
        _check_args(type(self).__name__, num_heads, key_dim, ff_dim, dropout, epsilon)
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.ff_dim = ff_dim
        self.dropout = float(dropout)
        self.epsilon = float(epsilon)
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.supports_masking = True

    def _init(self):
        return initializers.get(initializers.serialize(self.kernel_initializer))

    def _attention(self, name):
        return MultiHeadAttention(self.num_heads, self.key_dim, dropout=self.dropout,
                                  kernel_initializer=self._init(), dtype=self.dtype_policy,
                                  name=name)

    def _norm(self, name, shape):
        norm = LayerNorm(epsilon=self.epsilon, dtype=self.dtype_policy, name=name)
        norm.build(shape)
        return norm

    def _build_ffn(self, input_shape):
        shape = tuple(input_shape)
        self.ffn_hidden = keras.layers.Dense(self.ff_dim, activation=self.activation,
                                             kernel_initializer=self._init(),
                                             dtype=self.dtype_policy, name="ffn_hidden")
        self.ffn_hidden.build(shape)
        self.ffn_output = keras.layers.Dense(shape[-1], kernel_initializer=self._init(),
                                             dtype=self.dtype_policy, name="ffn_output")
        self.ffn_output.build(shape[:-1] + (self.ff_dim,))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def _ffn(self, x, training):
        return self.dropout_layer(self.ffn_output(self.ffn_hidden(x)), training=training)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "epsilon": self.epsilon,
            "activation": activations.serialize(self.activation),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
        })
        return config


@keras.saving.register_keras_serializable(package="dlsuite")
class TransformerEncoderBlock(_TransformerBlock):
    """A post-norm Transformer encoder block ("Attention is all you need").

    For x of shape (B, T, d):

        a   = MultiHeadAttention(x, x, x, mask)                  self-attention
        x1  = LayerNorm(x + dropout(a))                          add & norm
        f   = W_2 relu(W_1 x1 + b_1) + b_2                       feed-forward, d -> ff_dim -> d
        out = LayerNorm(x1 + dropout(f))                         add & norm

    The attention weights get dropout too (inside our MultiHeadAttention),
    as in KerasHub's TransformerEncoder; all dropout is off at inference.
    Built from our `MultiHeadAttention` (num_heads, key_dim, output d) and
    `LayerNorm(epsilon)`, and Keras `Dense` layers. Sublayers: `attention`,
    `norm1`, `ffn_hidden`, `ffn_output`, `norm2`.

    Args:
      num_heads: attention heads.
      key_dim: size of each head's queries/keys/values.
      ff_dim: hidden size of the feed-forward network.
      dropout: dropout rate (attention weights and sub-layer outputs).
      epsilon: the LayerNorm epsilon.
      activation: the feed-forward activation (ReLU).
      kernel_initializer: initializer of every kernel.
      **kwargs: base layer arguments.

    Call arguments:
      inputs: (B, T, d).
      padding_mask: optional (B, T), True/1 for real tokens; padded tokens are
        not attended to. Defaults to the input's Keras mask (e.g. from
        `Embedding(mask_zero=True)`).
      attention_mask: optional, broadcastable to (B, T, T); ANDed with the
        padding mask.
      training: True to apply dropout.
      return_attention_scores: also return the (B, num_heads, T, T) weights.
    """

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.attention = self._attention("attention")
        self.attention.build(shape, shape)
        self.norm1 = self._norm("norm1", shape)
        self._build_ffn(shape)
        self.norm2 = self._norm("norm2", shape)

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None,
             return_attention_scores=False):
        if padding_mask is None:
            padding_mask = _keras_mask(inputs)
        mask = _merge_masks(_key_padding_mask(padding_mask), attention_mask)
        # A copy without the Keras mask, so the attention layer sees only `mask`.
        x = ops.copy(inputs)
        attended, scores = self.attention(x, x, attention_mask=mask, training=training,
                                          return_attention_scores=True)
        x1 = self.norm1(x + self.dropout_layer(attended, training=training))
        outputs = self.norm2(x1 + self._ffn(x1, training))
        if return_attention_scores:
            return outputs, scores
        return outputs

    def compute_output_spec(self, inputs, padding_mask=None, attention_mask=None,
                            training=None, return_attention_scores=False):
        output = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if return_attention_scores:
            b, t = inputs.shape[0], inputs.shape[1]
            return output, keras.KerasTensor((b, self.num_heads, t, t),
                                             dtype=self.compute_dtype)
        return output


@keras.saving.register_keras_serializable(package="dlsuite")
class TransformerDecoderBlock(_TransformerBlock):
    """A post-norm Transformer decoder block ("Attention is all you need").

    For decoder inputs y (B, T, d) and encoder outputs z (B, S, d_enc):

        a1  = MultiHeadAttention_1(y, y, y, causal & decoder padding)  masked self-attention
        y1  = LayerNorm_1(y + dropout(a1))
        a2  = MultiHeadAttention_2(y1, z, z, encoder padding)          cross-attention
        y2  = LayerNorm_2(y1 + dropout(a2))
        f   = W_2 relu(W_1 y2 + b_1) + b_2                              feed-forward
        out = LayerNorm_3(y2 + dropout(f))

    The causal mask lets position i attend only to positions <= i, so the
    block can be trained with teacher forcing on whole sequences and used
    one step at a time at inference. Attention weights get dropout too; all
    dropout is off at inference. Sublayers: `self_attention`, `norm1`,
    `cross_attention`, `norm2`, `ffn_hidden`, `ffn_output`, `norm3`.

    Args: as `TransformerEncoderBlock`.

    Call arguments:
      inputs: decoder sequence (B, T, d).
      encoder_outputs: encoder sequence (B, S, d_enc).
      decoder_padding_mask: optional (B, T), True for real target tokens
        (default: the decoder input's Keras mask).
      encoder_padding_mask: optional (B, S), True for real source tokens
        (default: the encoder output's Keras mask).
      self_attention_mask: optional extra mask, broadcastable to (B, T, T).
      cross_attention_mask: optional extra mask, broadcastable to (B, T, S).
      use_causal_mask: apply the causal mask in self-attention (True).
      training: True to apply dropout.
      return_attention_scores: also return the self-attention weights
        (B, heads, T, T) and the cross-attention weights (B, heads, T, S),
        as `(outputs, self_scores, cross_scores)`.
    """

    def build(self, inputs_shape, encoder_outputs_shape):
        # (Keras matches these names to the call arguments `inputs` and
        # `encoder_outputs`.)
        shape = tuple(inputs_shape)
        enc_shape = tuple(encoder_outputs_shape)
        self.self_attention = self._attention("self_attention")
        self.self_attention.build(shape, shape)
        self.norm1 = self._norm("norm1", shape)
        self.cross_attention = self._attention("cross_attention")
        self.cross_attention.build(shape, enc_shape)
        self.norm2 = self._norm("norm2", shape)
        self._build_ffn(shape)
        self.norm3 = self._norm("norm3", shape)

    def call(self, inputs, encoder_outputs, decoder_padding_mask=None,
             encoder_padding_mask=None, self_attention_mask=None, cross_attention_mask=None,
             use_causal_mask=True, training=None, return_attention_scores=False):
        if decoder_padding_mask is None:
            decoder_padding_mask = _keras_mask(inputs)
        if encoder_padding_mask is None:
            encoder_padding_mask = _keras_mask(encoder_outputs)
        length = ops.shape(inputs)[1]
        self_mask = _merge_masks(
            _key_padding_mask(decoder_padding_mask), self_attention_mask,
            causal_mask(length, length) if use_causal_mask else None)
        cross_mask = _merge_masks(_key_padding_mask(encoder_padding_mask),
                                  cross_attention_mask)
        # Copies without Keras masks, so the attention layers see only ours.
        y = ops.copy(inputs)
        z = ops.copy(encoder_outputs)
        a1, self_scores = self.self_attention(y, y, attention_mask=self_mask,
                                              training=training, return_attention_scores=True)
        y1 = self.norm1(y + self.dropout_layer(a1, training=training))
        a2, cross_scores = self.cross_attention(y1, z, attention_mask=cross_mask,
                                                training=training,
                                                return_attention_scores=True)
        y2 = self.norm2(y1 + self.dropout_layer(a2, training=training))
        outputs = self.norm3(y2 + self._ffn(y2, training))
        if return_attention_scores:
            return outputs, self_scores, cross_scores
        return outputs

    def compute_output_spec(self, inputs, encoder_outputs, decoder_padding_mask=None,
                            encoder_padding_mask=None, self_attention_mask=None,
                            cross_attention_mask=None, use_causal_mask=True, training=None,
                            return_attention_scores=False):
        output = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if return_attention_scores:
            b, t, s = inputs.shape[0], inputs.shape[1], encoder_outputs.shape[1]
            h = self.num_heads
            return (output, keras.KerasTensor((b, h, t, t), dtype=self.compute_dtype),
                    keras.KerasTensor((b, h, t, s), dtype=self.compute_dtype))
        return output
