"""Multi-head scaled dot-product attention (Vaswani et al., 2017)."""

import math
import numbers

import keras
from keras import constraints, initializers, ops, regularizers

from layers._backend import at_least_float32

__all__ = ["MultiHeadAttention", "causal_mask", "sliding_window_mask"]

# Einsum letters. Reserved: b (batch), d (input features), n (heads), k (per-head size),
# o..r (output features). The query's attention axes take t, u, ...; the key's and
# value's s, e, ...; the other (batch-like) axes a, c, ...
_QUERY_LETTERS = "tuvwx"
_KEY_LETTERS = "sefgh"
_OTHER_LETTERS = "acijlmyz"
_OUTPUT_LETTERS = "opqr"


def causal_mask(query_length, key_length):
    """Boolean (1, T, S) mask, True where query position i may see key j <= i."""
    rows = ops.expand_dims(ops.arange(query_length, dtype="int32"), -1)
    cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
    return ops.expand_dims(ops.greater_equal(rows, cols), 0)


def sliding_window_mask(query_length, key_length, window):
    """Boolean (1, T, S) mask, True where |i - j| < window (a band of width 2 window - 1)."""
    rows = ops.expand_dims(ops.arange(query_length, dtype="int32"), -1)
    cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
    return ops.expand_dims(ops.less(ops.abs(rows - cols), window), 0)


def _positive_int(name, value, allow_none=False):
    """`value` as an int; a ValueError naming the argument unless it is a positive int."""
    if allow_none and value is None:
        return None
    if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
            or value <= 0):
        expected = "None or a positive int" if allow_none else "a positive int"
        raise ValueError(f"MultiHeadAttention: the argument `{name}` must be {expected}; "
                         f"got {name}={value!r}.")
    return int(value)


def _output_shape_tuple(output_shape):
    """None, or `output_shape` as a tuple of 1 to 4 positive ints (else a ValueError)."""
    if output_shape is None:
        return None
    if isinstance(output_shape, numbers.Integral) and not isinstance(output_shape, bool):
        output_shape = (output_shape,)
    if (not isinstance(output_shape, (tuple, list)) or not 1 <= len(output_shape) <= 4
            or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
                       for d in output_shape)):
        raise ValueError(f"Invalid `output_shape` for MultiHeadAttention: expected a "
                         f"positive int or a tuple/list of 1 to 4 positive ints; got "
                         f"output_shape={output_shape!r}.")
    return tuple(int(d) for d in output_shape)


def _attention_axes_tuple(attention_axes):
    """None, or `attention_axes` as a non-empty tuple of ints (else a ValueError)."""
    if attention_axes is None:
        return None
    if isinstance(attention_axes, numbers.Integral) and not isinstance(attention_axes, bool):
        attention_axes = (attention_axes,)
    if (not isinstance(attention_axes, (tuple, list)) or not attention_axes
            or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                       for a in attention_axes)):
        raise ValueError(f"MultiHeadAttention: `attention_axes` must be None, an int or a "
                         f"non-empty tuple/list of ints; got attention_axes={attention_axes!r}.")
    return tuple(int(a) for a in attention_axes)


class _Geometry:
    """Where the attention runs for inputs of rank R, and the einsum equations.

    Axis 0 is the batch, axis R-1 the features; of the axes in between, the
    attention axes (in the user's order) index the positions that attend to
    each other and the others act as extra batch axes.
    """

    def __init__(self, rank, attention_axes, n_out):
        if rank < 3:
            raise ValueError(f"MultiHeadAttention: inputs need a rank of at least 3 (batch, "
                             f"positions..., features); got rank {rank}.")
        middle = range(1, rank - 1)
        if attention_axes is None:
            attn = tuple(middle)
        else:
            attn = tuple(a + rank if a < 0 else a for a in attention_axes)
            if any(a not in middle for a in attn) or len(set(attn)) != len(attn):
                raise ValueError(
                    f"MultiHeadAttention: `attention_axes` must be distinct axes between the "
                    f"batch axis and the features axis, 1 to {rank - 2} (or {2 - rank} to -2) "
                    f"for inputs of rank {rank}; got attention_axes={attention_axes!r}.")
        others = tuple(a for a in middle if a not in attn)
        if len(attn) > len(_QUERY_LETTERS) or len(others) > len(_OTHER_LETTERS):
            raise ValueError(f"MultiHeadAttention: at most {len(_QUERY_LETTERS)} attention "
                             f"axes and {len(_OTHER_LETTERS)} other axes; got inputs of rank "
                             f"{rank} with attention_axes={attn}.")
        self.rank, self.attn, self.others = rank, attn, others
        # (batch, others..., heads, query attention..., key attention...)
        self.scores_rank = 2 + len(others) + 2 * len(attn)
        letter = {a: _OTHER_LETTERS[i] for i, a in enumerate(others)}
        q = "b" + "".join(letter.get(a) or _QUERY_LETTERS[attn.index(a)] for a in middle)
        k = "b" + "".join(letter.get(a) or _KEY_LETTERS[attn.index(a)] for a in middle)
        scores = ("b" + "".join(letter[a] for a in others) + "n" + _QUERY_LETTERS[:len(attn)]
                  + _KEY_LETTERS[:len(attn)])
        out = _OUTPUT_LETTERS[:n_out]
        self.query = f"{q}d,dnk->{q}nk"           # also the gate
        self.key = f"{k}d,dnk->{k}nk"             # also the value
        self.logits = f"{q}nk,{k}nk->{scores}"
        self.combine = f"{scores},{k}nk->{q}nk"
        self.output = f"{q}nk,nk{out}->{q}{out}"
        # An implicit (batch, positions...) mask, reordered like the scores.
        self.mask_order = (0,) + others + attn

    def scores_shape(self, query_shape, value_shape, num_heads):
        return ((query_shape[0],) + tuple(query_shape[a] for a in self.others) + (num_heads,)
                + tuple(query_shape[a] for a in self.attn)
                + tuple(value_shape[a] for a in self.attn))


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

    Gated attention (`use_gate=True`, Qiu et al., 2025, "Gated Attention for
    Large Language Models"): a sigmoid gate computed from the query scales
    each head's output, elementwise, before the output projection:

        G_i    = sigmoid(Q_in W_i^G + b_i^G)                 (B, T, value_dim)
        output = concat(head_1 * G_1, ..., head_h * G_h) W^O + b^O

    Attention over other axes (`attention_axes`): inputs may have any rank
    R >= 3, (B, x_1, ..., x_{R-2}, features). The projections act on the
    last axis only. The positions are the tuples of indices along the
    attention axes (by default all of x_1..x_{R-2}); the other axes of x
    act as extra batch axes, on which query and key/value must agree. For
    query position t = (t_1, ..., t_m) and key position s = (s_1, ..., s_m)
    (m attention axes), with everything else fixed,

        A_i[t, s] = softmax over all s of (Q_i[t] . K_i[s] / sqrt(key_dim) + M[t, s])
        head_i[t] = sum over s of A_i[t, s] V_i[s]

    e.g. (B, H, W, C) images with attention_axes=(1, 2): 2-D attention of
    every pixel to every pixel; with attention_axes=2: attention along each
    row separately (axial attention). The attention weights then have the
    shape (B, <other axes>, h, <query attention axes>, <key attention
    axes>), the attention axes in the order given.

    Sliding window (`sliding_window=w`, local attention): query position i
    sees only the keys j with |i - j| < w (a symmetric band); with
    `use_causal_mask=True` the window becomes i - w < j <= i (each position
    sees itself and the w - 1 before it).

    Weights, in this order and with the shapes of
    `keras.layers.MultiHeadAttention` (so `set_weights(other.get_weights())`
    works both ways): query kernel (d_q, h, key_dim), query bias
    (h, key_dim), key kernel (d_k, h, key_dim), key bias, [gate kernel
    (d_q, h, value_dim), gate bias (h, value_dim), with `use_gate`], value
    kernel (d_v, h, value_dim), value bias (h, value_dim), output kernel
    (h, value_dim, *output_shape), output bias (output_shape); no biases
    when `use_bias=False`. The shapes do not depend on the input rank.

    Masks (all combined with a logical AND; True = may attend):
      * `attention_mask`, boolean/0-1 of shape broadcastable to (B, T, S),
        e.g. (B, T, S) or (B, 1, S) for a key padding mask; for inputs of
        higher rank, broadcastable to the shape of the attention weights
        without the heads axis, (B, <other axes>, <query attention axes>,
        <key attention axes>) (a head axis of size h or 1 may be included);
      * `use_causal_mask=True`: query i sees keys j <= i (decoder
        self-attention), along the one attention axis;
      * `sliding_window`: |i - j| < w, along the one attention axis;
      * Keras implicit masks (`_keras_mask`, e.g. from
        `Embedding(mask_zero=True)`): the query's (B, T) mask masks query
        rows and the value's/key's (B, S) mask masks keys (for higher
        ranks, masks of the inputs' shape without the features). Keras
        passes them in as `query_mask`, `value_mask`, `key_mask`.

    Quantization: `layer.quantize("int8")` (or `model.quantize("int8")`)
    replaces each kernel W by int8 values q = round(W c) with a per-output
    scale c = 127 / max|W| (over the input axes), and each projection
    becomes (x_q . q) / (c_x c) with the input x quantized the same way per
    position (or, with a config without an activation quantizer, x . q / c);
    the biases stay in floating point and trainable. Other modes are refused.

    Args:
      num_heads: number of heads h.
      key_dim: size of each head's queries and keys.
      value_dim: size of each head's values (default: key_dim).
      dropout: dropout rate on the attention weights A_i (training only).
      use_bias: whether the projections have biases.
      output_shape: int or tuple, the trailing shape of the output
        (default: the query's last dimension).
      attention_axes: int or tuple of ints, the axes the attention runs
        over (negative ones count from the end; default: every axis but the
        batch and the features).
      sliding_window: optional positive int w, local attention (above).
      flash_attention: accepted for compatibility; only None or False (this
        layer computes the attention weights explicitly).
      kernel_initializer, bias_initializer: initializers of the projections.
      kernel_regularizer, bias_regularizer: optional regularizers.
      activity_regularizer: optional regularizer of the outputs of each
        projection (query, key, value, gate, output), as Keras applies it.
      kernel_constraint, bias_constraint: optional constraints.
      use_gate: gated attention (above).
      seed: optional int seed of the dropout.
      quantization_config: set by `quantize()` and kept in the config.
      **kwargs: base layer arguments.

    Call arguments:
      query: (B, T, d_q). value: (B, S, d_v). key: (B, S, d_k), default value.
        Higher ranks: (B, ..., d) with the same rank for all three.
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
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        quantization_config=None,
        **kwargs,
    ):
        num_heads = _positive_int("num_heads", num_heads)
        key_dim = _positive_int("key_dim", key_dim)
        value_dim = _positive_int("value_dim", value_dim, allow_none=True)
        sliding_window = _positive_int("sliding_window", sliding_window, allow_none=True)
        if not isinstance(dropout, numbers.Real) or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MultiHeadAttention: the argument `dropout` must be in [0, 1); "
                             f"got dropout={dropout!r}.")
        output_shape = _output_shape_tuple(output_shape)
        attention_axes = _attention_axes_tuple(attention_axes)
        if flash_attention:
            raise ValueError("MultiHeadAttention: `flash_attention=True` is not supported; "
                             "this layer computes the attention weights explicitly. Pass "
                             "flash_attention=None or False.")
        if isinstance(quantization_config, dict):
            quantization_config = keras.saving.deserialize_keras_object(quantization_config)
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self._output_shape = output_shape
        self.attention_axes = attention_axes
        self.sliding_window = sliding_window
        self.use_gate = bool(use_gate)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        # Not the base layer's activity regularizer (which would regularize the
        # returned tensors, scores included): Keras applies it to each projection.
        self.projection_activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.seed = seed
        self.quantization_config = quantization_config
        self.supports_masking = True
        self._scale = 1.0 / math.sqrt(float(key_dim))
        if self.dropout > 0.0:
            self.seed_generator = keras.random.SeedGenerator(seed)

    # -- shapes ---------------------------------------------------------------

    def _out_shape(self, query_shape):
        return self._output_shape or (query_shape[-1],)

    def _check_shapes(self, query_shape, value_shape, key_shape):
        """The geometry of these input shapes; a clear ValueError if they disagree."""
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)

        def differ(a, b):
            return len(a) != len(b) or any(x is not None and y is not None and x != y
                                           for x, y in zip(a, b, strict=False))

        if differ(key_shape[:-1], value_shape[:-1]):
            raise ValueError(f"MultiHeadAttention: `key` and `value` must be equal in every "
                             f"dimension but the last (features); got key shape {key_shape} "
                             f"and value shape {value_shape}.")
        if len(query_shape) != len(value_shape):
            raise ValueError(f"MultiHeadAttention: `query` and `value` must have the same "
                             f"rank; got query shape {query_shape} and value shape "
                             f"{value_shape}.")
        geometry = _Geometry(len(query_shape), self.attention_axes,
                             len(self._out_shape(query_shape)))
        batch_axes = (0,) + geometry.others
        if differ([query_shape[a] for a in batch_axes], [value_shape[a] for a in batch_axes]):
            raise ValueError(f"MultiHeadAttention: `query` and `value` must be equal in the "
                             f"batch axis and the axes outside `attention_axes` (axes "
                             f"{batch_axes}); got query shape {query_shape} and value shape "
                             f"{value_shape}.")
        for name, shape in (("query", query_shape), ("value", value_shape),
                            ("key", key_shape)):
            if shape[-1] is None:
                raise ValueError(f"MultiHeadAttention: the features (last dimension) of "
                                 f"`{name}` must be known; got shape {shape}.")
        if self.sliding_window is not None and len(geometry.attn) != 1:
            raise ValueError(f"MultiHeadAttention: `sliding_window` needs exactly one "
                             f"attention axis; got attention axes {geometry.attn}.")
        return geometry

    # -- weights --------------------------------------------------------------

    def _initializer(self, initializer):
        # A fresh copy per weight, so that seeded initializers differ.
        return initializer.__class__.from_config(initializer.get_config())

    def _projection(self, name, kernel_shape, bias_shape):
        """Creates `{name}_kernel` (float, or int8 with `{name}_kernel_scale`) and `{name}_bias`."""
        if self.quantization_mode == "int8":
            self._int8_kernel(name, kernel_shape, bias_shape)
        else:
            setattr(self, f"{name}_kernel", self.add_weight(
                name=f"{name}_kernel", shape=kernel_shape,
                initializer=self._initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer, constraint=self.kernel_constraint))
        bias = None
        if self.use_bias:
            bias = self.add_weight(
                name=f"{name}_bias", shape=bias_shape,
                initializer=self._initializer(self.bias_initializer),
                regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        setattr(self, f"{name}_bias", bias)

    def _projection_names(self):
        """The projections, in the order of their weights (Keras's)."""
        return ("query", "key") + (("gate",) if self.use_gate else ()) + ("value", "output")

    def build(self, query_shape, value_shape, key_shape=None):
        if self.quantization_mode not in (None, "int8"):
            raise ValueError(self._quantization_refusal(self.quantization_mode))
        self._geometry = self._check_shapes(query_shape, value_shape, key_shape)
        key_shape = value_shape if key_shape is None else key_shape
        h, dk, dv = self.num_heads, self.key_dim, self.value_dim
        out = tuple(self._out_shape(query_shape))
        self._out = out
        shapes = {"query": ((query_shape[-1], h, dk), (h, dk)),
                  "key": ((key_shape[-1], h, dk), (h, dk)),
                  "gate": ((query_shape[-1], h, dv), (h, dv)),
                  "value": ((value_shape[-1], h, dv), (h, dv)),
                  "output": ((h, dv) + out, out)}
        for name in self._projection_names():
            self._projection(name, *shapes[name])
        if self.quantization_mode == "int8":
            self._is_quantized = True  # read by keras.layers.Layer's quantize checks

    # -- computation ----------------------------------------------------------

    def _project(self, name, x, equation):
        """x W + b for the projection `name` (einsum `equation`), activity-regularized."""
        kernel = getattr(self, f"{name}_kernel")
        if self.quantization_mode == "int8":
            y = self._int8_einsum(equation, x, kernel, getattr(self, f"{name}_kernel_scale"))
        else:
            y = ops.einsum(equation, x, kernel)
        bias = getattr(self, f"{name}_bias")
        if bias is not None:
            y = y + bias
        if name == "gate":
            y = ops.sigmoid(y)
        if self.projection_activity_regularizer is not None:
            loss = self.projection_activity_regularizer(y)
            self.add_loss(ops.divide_no_nan(loss, ops.cast(ops.shape(y)[0], loss.dtype)))
        return y

    def _to_scores_rank(self, mask):
        """A (B, <others>, T..., S...) mask with the heads axis (size 1) added."""
        g = self._geometry
        if len(mask.shape) > g.scores_rank:
            raise ValueError(f"MultiHeadAttention: `attention_mask` has rank "
                             f"{len(mask.shape)}, more than the attention weights' "
                             f"{g.scores_rank}.")
        while len(mask.shape) < g.scores_rank:
            mask = ops.expand_dims(mask, -2 * len(g.attn) - 1)
        return mask

    def _positions_mask(self, mask, query_side):
        """An implicit (B, positions...) mask of the query (rows) or key (columns)."""
        g = self._geometry
        mask = ops.cast(mask, "bool")
        if g.mask_order != tuple(range(len(g.mask_order))):
            mask = ops.transpose(mask, g.mask_order)
        mask = ops.expand_dims(mask, 1 + len(g.others))           # the heads axis
        m = len(g.attn)
        where = len(mask.shape) if query_side else 2 + len(g.others)
        for _ in range(m):
            mask = ops.expand_dims(mask, where)
        return mask

    def _combine_masks(self, query, value, query_mask, value_mask, key_mask,
                       attention_mask, use_causal_mask):
        """The boolean mask in the layout of the attention weights (None if nothing is masked)."""
        g = self._geometry
        mask = None

        def both(a, b):
            return b if a is None else ops.logical_and(a, b)

        if attention_mask is not None:
            mask = self._to_scores_rank(ops.cast(attention_mask, "bool"))
        if query_mask is not None:
            mask = both(mask, self._positions_mask(query_mask, query_side=True))
        if value_mask is not None:
            mask = both(mask, self._positions_mask(value_mask, query_side=False))
        if key_mask is not None:
            mask = both(mask, self._positions_mask(key_mask, query_side=False))
        if use_causal_mask or self.sliding_window is not None:
            if len(g.attn) != 1:
                raise ValueError(f"MultiHeadAttention: `use_causal_mask` needs exactly one "
                                 f"attention axis; got attention axes {g.attn}.")
            t, s = ops.shape(query)[g.attn[0]], ops.shape(value)[g.attn[0]]
            for band in ([causal_mask(t, s)] if use_causal_mask else []) + (
                    [] if self.sliding_window is None
                    else [sliding_window_mask(t, s, self.sliding_window)]):
                while len(band.shape) < g.scores_rank:
                    band = ops.expand_dims(band, 0)
                mask = both(mask, band)
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
        g = self._geometry
        causal_only = use_causal_mask and self.sliding_window is None and all(
            m is None for m in (query_mask, value_mask, key_mask, attention_mask))
        mask = self._combine_masks(query, value, query_mask, value_mask, key_mask,
                                   attention_mask, use_causal_mask)
        # Projections, heads kept next to the features: (B, ..., d) -> (B, ..., h, k).
        gate = self._project("gate", query, g.query) if self.use_gate else None
        q = self._project("query", query, g.query)
        k = self._project("key", key, g.key)
        v = self._project("value", value, g.key)

        # Scaled dot products of every query with every key, per head; the
        # softmax runs in at least float32 (mixed precision).
        logits = ops.einsum(g.logits, q, k)
        logits = ops.cast(logits, at_least_float32(logits.dtype))
        logits = logits * ops.convert_to_tensor(self._scale, dtype=logits.dtype)
        if mask is not None:
            # A full-size mask (rather than a broadcast one) keeps the backward
            # pass of `where` cheap under XLA.
            mask = ops.broadcast_to(mask, ops.shape(logits))
            logits = ops.where(mask, logits, ops.cast(-1e9, logits.dtype))
        if len(g.attn) == 1:
            scores = ops.softmax(logits, axis=-1)
        else:  # a softmax over all the key attention axes together
            axes = tuple(range(g.scores_rank - len(g.attn), g.scores_rank))
            scores = ops.exp(logits - ops.logsumexp(logits, axis=axes, keepdims=True))
        if mask is not None and not causal_only:
            # A query row whose keys are all masked gets zero weights (not a
            # uniform average); a causal mask alone always leaves key 0.
            scores = ops.where(mask, scores, ops.cast(0.0, scores.dtype))
        scores = ops.cast(scores, self.compute_dtype)
        weights = scores
        if training and self.dropout > 0.0:
            weights = keras.random.dropout(scores, self.dropout, seed=self.seed_generator)

        heads = ops.einsum(g.combine, weights, v)                         # (B, ..., h, dv)
        if gate is not None:
            heads = heads * gate
        # concat(heads) W^O + b^O, the concatenation implicit in the einsum.
        output = self._project("output", heads, g.output)
        if return_attention_scores:
            return output, scores
        return output

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        self._check_shapes(query_shape, value_shape, key_shape)
        return tuple(query_shape[:-1]) + tuple(self._out_shape(query_shape))

    def compute_output_spec(self, query, value, key=None, query_mask=None, value_mask=None,
                            key_mask=None, attention_mask=None,
                            return_attention_scores=False, training=None,
                            use_causal_mask=False):
        key_shape = None if key is None else key.shape
        output = keras.KerasTensor(
            self.compute_output_shape(query.shape, value.shape, key_shape),
            dtype=self.compute_dtype)
        if return_attention_scores:
            geometry = self._check_shapes(query.shape, value.shape, key_shape)
            scores = keras.KerasTensor(
                geometry.scores_shape(query.shape, value.shape, self.num_heads),
                dtype=self.compute_dtype)
            return output, scores
        return output

    # -- int8 quantization ----------------------------------------------------

    @staticmethod
    def _quantization_refusal(mode):
        return (f"MultiHeadAttention supports only int8 quantization; got mode={mode!r}. "
                f"Leave it out with model.quantize(..., filters=...).")

    def _int8_kernel(self, name, kernel_shape, scale_shape):
        setattr(self, f"{name}_kernel", self.add_weight(
            name=f"{name}_kernel", shape=kernel_shape, initializer="zeros", dtype="int8",
            trainable=False))
        setattr(self, f"{name}_kernel_scale", self.add_weight(
            name=f"{name}_kernel_scale", shape=scale_shape, initializer="ones",
            trainable=False))

    def quantize(self, mode=None, type_check=True, config=None):
        """Quantizes the kernels to int8 (see the class docstring); other modes raise.

        Called through `keras.layers.Layer`'s wrapper, which checks that the
        layer is built and not yet quantized and resolves `config`.
        """
        if type_check and type(self) is not MultiHeadAttention:
            raise NotImplementedError(
                f"{type(self).__name__} subclasses MultiHeadAttention; quantize it with "
                f"type_check=False if its call still reads the kernels through _project.")
        if mode != "int8":
            raise ValueError(self._quantization_refusal(mode))
        self.quantization_config = config
        default = keras.quantizers.AbsMaxQuantizer()
        quantizer = (config.weight_quantizer if config is not None
                     and config.weight_quantizer is not None else default)
        for name in self._projection_names():
            kernel = getattr(self, f"{name}_kernel").numpy()
            reduced = (0, 1) if name == "output" else (0,)        # the input axes
            values, scale = quantizer(kernel, axis=reduced, to_numpy=True)
            scale = ops.reshape(scale, kernel.shape[len(reduced):])
            delattr(self, f"{name}_kernel")
            self._int8_kernel(name, kernel.shape, tuple(scale.shape))
            getattr(self, f"{name}_kernel").assign(values)
            getattr(self, f"{name}_kernel_scale").assign(scale)
        self._is_quantized = True  # read by keras.layers.Layer's quantize checks
        if self.dtype_policy.quantization_mode is None:
            self.dtype_policy = keras.dtype_policies.get(f"int8_from_{self.dtype_policy.name}")

    def _int8_call(self, *args, **kwargs):
        # keras.layers.Layer routes quantized layers here; `_project` reads the int8 kernels.
        return self.call(*args, **kwargs)

    def _int8_einsum(self, equation, x, kernel, kernel_scale):
        """einsum(x, kernel / kernel_scale), x quantized per position unless the config says not.

        The gradient with respect to x is that of the dequantized kernel
        (straight through the rounding); the int8 kernel gets none.
        """
        inputs, rest = equation.split(",")
        kernel_letters, output = rest.split("->")
        n_reduced = len(kernel_letters) - sum(c in output for c in kernel_letters)
        n_new = len(kernel_letters) - n_reduced
        backward = f"{output},{kernel_letters}->{inputs}"
        config = self.quantization_config
        x_quantizer = (config.activation_quantizer if config is not None
                       else keras.quantizers.AbsMaxQuantizer())
        dtype = self.compute_dtype

        @ops.custom_gradient
        def forward(x, kernel, kernel_scale):
            float_kernel = ops.cast(kernel, dtype) / kernel_scale

            def grad(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                return ops.einsum(backward, upstream, float_kernel), None, None

            if x_quantizer is None:
                return ops.einsum(equation, x, float_kernel), grad
            x_values, x_scale = x_quantizer(x, axis=tuple(range(-n_reduced, 0)))
            for _ in range(n_reduced):
                x_scale = ops.squeeze(x_scale, -1)
            for _ in range(n_new):
                x_scale = ops.expand_dims(x_scale, -1)
            y = ops.cast(ops.einsum(equation, x_values, kernel), dtype)
            return y / (x_scale * kernel_scale), grad

        return forward(x, ops.convert_to_tensor(kernel), ops.convert_to_tensor(kernel_scale))

    # -- serialization --------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_gate": self.use_gate,
            "output_shape": self._output_shape,
            "attention_axes": self.attention_axes,
            "sliding_window": self.sliding_window,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(
                self.projection_activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "seed": self.seed,
        })
        if self.quantization_config is not None:
            config["quantization_config"] = keras.saving.serialize_keras_object(
                self.quantization_config)
        return config
