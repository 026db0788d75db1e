"""Multi-head scaled dot-product attention (Vaswani et al., 2017)."""

import math

import keras
from keras import constraints, initializers, ops, regularizers

__all__ = ["MultiHeadAttention", "causal_mask"]


def causal_mask(query_length, key_length):
    """Boolean (1, T, S) mask, True where query position i may see key j <= i."""
    rows = ops.expand_dims(ops.arange(query_length, dtype="int32"), -1)
    cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
    return ops.expand_dims(ops.greater_equal(rows, cols), 0)


def _check_positive_int(name, value, allow_none=False):
    if allow_none and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"MultiHeadAttention: `{name}` must be a positive int; "
                         f"got {name}={value!r}.")


@keras.saving.register_keras_serializable(package="dlsuite")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention: h scaled dot-product attentions side by side.

    For a query sequence Q_in (B, T, d_q) and key/value sequences K_in
    (B, S, d_k), V_in (B, S, d_v), each head i = 1..h projects

        Q_i = Q_in W_i^Q + b_i^Q    (B, T, key_dim)
        K_i = K_in W_i^K + b_i^K    (B, S, key_dim)
        V_i = V_in W_i^V + b_i^V    (B, S, value_dim)

    and attends:

        A_i    = softmax(Q_i K_i^T / sqrt(key_dim) + M)     (B, T, S)
        head_i = dropout(A_i) V_i                          (B, T, value_dim)

    where M is 0 where attention is allowed and -inf (a large negative
    number) where the mask forbids it; the softmax is over the keys S. The
    heads are concatenated and projected:

        output = concat(head_1, ..., head_h) W^O + b^O     (B, T, d_out)

    with d_out = `output_shape` or, by default, d_q. A query row whose keys
    are all masked gets all-zero attention weights.

    Weights, in this order and with the shapes of
    `keras.layers.MultiHeadAttention` (so `set_weights(other.get_weights())`
    works both ways): query kernel (d_q, h, key_dim), query bias
    (h, key_dim), key kernel (d_k, h, key_dim), key bias, value kernel
    (d_v, h, value_dim), value bias (h, value_dim), output kernel
    (h, value_dim, *output_shape), output bias (output_shape); no biases
    when `use_bias=False`. Only sequences (rank-3 inputs) are supported.

    Masks (all combined with a logical AND; True = may attend):
      * `attention_mask`, boolean/0-1 of shape broadcastable to (B, T, S),
        e.g. (B, T, S) or (B, 1, S) for a key padding mask;
      * `use_causal_mask=True`: query i sees keys j <= i (decoder
        self-attention);
      * Keras implicit masks (`_keras_mask`, e.g. from
        `Embedding(mask_zero=True)`): the query's (B, T) mask masks query
        rows and the value's/key's (B, S) mask masks keys. Keras passes them
        in as `query_mask`, `value_mask`, `key_mask`.

    Args:
      num_heads: number of heads h.
      key_dim: size of each head's queries and keys.
      value_dim: size of each head's values (default: key_dim).
      dropout: dropout rate on the attention weights A_i (training only).
      use_bias: whether the projections have biases.
      output_shape: int or tuple, the trailing shape of the output
        (default: the query's last dimension).
      kernel_initializer, bias_initializer: initializers of the projections.
      kernel_regularizer, bias_regularizer: optional regularizers.
      kernel_constraint, bias_constraint: optional constraints.
      seed: optional int seed of the dropout.
      **kwargs: base layer arguments.

    Call arguments:
      query: (B, T, d_q). value: (B, S, d_v). key: (B, S, d_k), default value.
      attention_mask: optional, broadcastable to (B, T, S).
      return_attention_scores: also return the attention weights
        (B, h, T, S) (before dropout).
      training: True to apply dropout.
      use_causal_mask: apply the causal mask.

    Returns:
      The output (B, T, *output_shape), and the scores if requested.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        _check_positive_int("num_heads", num_heads)
        _check_positive_int("key_dim", key_dim)
        _check_positive_int("value_dim", value_dim, allow_none=True)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MultiHeadAttention: `dropout` must be in [0, 1); "
                             f"got dropout={dropout}.")
        if output_shape is not None:
            if isinstance(output_shape, int):
                output_shape = (output_shape,)
            output_shape = tuple(output_shape)
            if not 1 <= len(output_shape) <= 4 or not all(
                    isinstance(d, int) and d > 0 for d in output_shape):
                raise ValueError("MultiHeadAttention: `output_shape` must be a positive int "
                                 "or a tuple of 1 to 4 of them; got "
                                 f"output_shape={output_shape!r}.")
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self._output_shape = output_shape
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.seed = seed
        self.supports_masking = True
        self._scale = 1.0 / math.sqrt(float(key_dim))
        if self.dropout > 0.0:
            self.seed_generator = keras.random.SeedGenerator(seed)

    # -- weights --------------------------------------------------------------

    def _initializer(self, initializer):
        # A fresh copy per weight, so that seeded initializers differ.
        return initializer.__class__.from_config(initializer.get_config())

    def _projection(self, name, kernel_shape, bias_shape):
        kernel = self.add_weight(
            name=f"{name}_kernel", shape=kernel_shape,
            initializer=self._initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        bias = None
        if self.use_bias:
            bias = self.add_weight(
                name=f"{name}_bias", shape=bias_shape,
                initializer=self._initializer(self.bias_initializer),
                regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        return kernel, bias

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for name, shape in (("query", query_shape), ("value", value_shape),
                            ("key", key_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(f"MultiHeadAttention: `{name}` must have shape (batch, "
                                 f"length, features) with known features; got "
                                 f"{tuple(shape)}.")
        h, dk, dv = self.num_heads, self.key_dim, self.value_dim
        self.query_kernel, self.query_bias = self._projection(
            "query", (query_shape[-1], h, dk), (h, dk))
        self.key_kernel, self.key_bias = self._projection(
            "key", (key_shape[-1], h, dk), (h, dk))
        self.value_kernel, self.value_bias = self._projection(
            "value", (value_shape[-1], h, dv), (h, dv))
        out = self._output_shape or (query_shape[-1],)
        self._out = out
        self.output_kernel, self.output_bias = self._projection(
            "output", (h, dv) + out, out)

    # -- computation ----------------------------------------------------------

    def _combine_masks(self, query, value, query_mask, value_mask, key_mask,
                       attention_mask, use_causal_mask):
        """The (B or 1, T or 1, S) boolean mask (None if nothing is masked)."""
        mask = None

        def both(a, b):
            return b if a is None else ops.logical_and(a, b)

        if attention_mask is not None:
            mask = ops.cast(attention_mask, "bool")
        if query_mask is not None:
            mask = both(mask, ops.expand_dims(ops.cast(query_mask, "bool"), -1))
        if value_mask is not None:
            mask = both(mask, ops.expand_dims(ops.cast(value_mask, "bool"), -2))
        if key_mask is not None:
            mask = both(mask, ops.expand_dims(ops.cast(key_mask, "bool"), -2))
        if use_causal_mask:
            mask = both(mask, causal_mask(ops.shape(query)[1], ops.shape(value)[1]))
        return mask

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        if key is None:
            key = value
            key_mask = None  # the value's mask already covers the keys
        causal_only = use_causal_mask and all(
            m is None for m in (query_mask, value_mask, key_mask, attention_mask))
        mask = self._combine_masks(query, value, query_mask, value_mask, key_mask,
                                   attention_mask, use_causal_mask)
        # Projections, heads kept on axis 2: (B, L, d) x (d, h, k) -> (B, L, h, k).
        q = ops.einsum("btd,dnk->btnk", query, self.query_kernel)
        k = ops.einsum("bsd,dnk->bsnk", key, self.key_kernel)
        v = ops.einsum("bsd,dnk->bsnk", value, self.value_kernel)
        if self.use_bias:
            q, k, v = q + self.query_bias, k + self.key_bias, v + self.value_bias

        # Scaled dot products of every query with every key, per head; the
        # softmax runs in at least float32 (mixed precision).
        logits = ops.einsum("btnk,bsnk->bnts", q, k)
        logits = ops.cast(logits, keras.backend.result_type(logits.dtype, "float32"))
        logits = logits * ops.cast(self._scale, logits.dtype)
        if mask is not None:
            # (B, T, S) -> (B, h, T, S). A full-size mask (rather than a
            # broadcast one) keeps the backward pass of `where` cheap under XLA.
            if len(mask.shape) == 3:
                mask = ops.expand_dims(mask, 1)
            mask = ops.broadcast_to(mask, ops.shape(logits))
            logits = ops.where(mask, logits, ops.cast(-1e9, logits.dtype))
        scores = ops.softmax(logits, axis=-1)
        if mask is not None and not causal_only:
            # A query row whose keys are all masked gets zero weights (not a
            # uniform average); a causal mask alone always leaves key 0.
            scores = ops.where(mask, scores, ops.cast(0.0, scores.dtype))
        scores = ops.cast(scores, self.compute_dtype)
        weights = scores
        if training and self.dropout > 0.0:
            weights = keras.random.dropout(scores, self.dropout, seed=self.seed_generator)

        heads = ops.einsum("bnts,bsnk->btnk", weights, v)                 # (B, T, h, dv)
        # concat(heads) W^O + b^O, the concatenation implicit in the einsum.
        n_out = len(self._out)
        output = ops.einsum(f"btnk,nk{'opqr'[:n_out]}->bt{'opqr'[:n_out]}", heads,
                            self.output_kernel)
        if self.use_bias:
            output = output + self.output_bias
        if return_attention_scores:
            return output, scores
        return output

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        out = self._output_shape or (query_shape[-1],)
        return tuple(query_shape[:-1]) + tuple(out)

    def compute_output_spec(self, query, value, key=None, query_mask=None, value_mask=None,
                            key_mask=None, attention_mask=None,
                            return_attention_scores=False, training=None,
                            use_causal_mask=False):
        output = keras.KerasTensor(
            self.compute_output_shape(query.shape, value.shape,
                                      None if key is None else key.shape),
            dtype=self.compute_dtype)
        if return_attention_scores:
            scores = keras.KerasTensor(
                (query.shape[0], self.num_heads, query.shape[1], value.shape[1]),
                dtype=self.compute_dtype)
            return output, scores
        return output

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self._output_shape,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "seed": self.seed,
        })
        return config
