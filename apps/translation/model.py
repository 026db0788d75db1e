"""The two encoder-decoder models: the attention model and the Transformer.

Both are `keras.Model`s over token ids with the same four methods, which the
training step (teacher forcing), the scorer and the decoders (apps.translation
.decode) use:

    encode(source_ids)                  -> memory {"values": (B, S, d), "mask": (B, S), ...}
    decode(memory, decoder_input_ids)   -> logits (B, T, V) [, attention (B, T, S)]
    initial_state(memory)               -> the decoder state before the first step
    step(memory, state, tokens, t)      -> logits (N, V) of position t, new state

`call((source_ids, decoder_input_ids))` is `decode(encode(source_ids), ...)`:
with decoder inputs = [START] y_1 .. y_{T-1} (the target shifted right), the
logits at position t predict y_t (teacher forcing). Id 0 is padding: padded
source tokens are never attended to, and the decoder is causal (position t
sees decoder inputs <= t only), so padding at the end of the decoder inputs
changes nothing before it.

attention (Bahdanau, Cho and Bengio, 2015; the course's date model):
    h_j = [forward h_j ; backward h_j]            bidirectional LSTM/GRU encoder
                                                  (layers.LSTM / layers.GRU, the
                                                  notes' equations, hand-coded)
    e_tj = v^T tanh(W_s s_{t-1} + W_h h_j)       additive attention energy
    alpha_tj = softmax_j(e_tj)  (padded j excluded)
    c_t = sum_j alpha_tj h_j                      context
    s_t = RNN(s_{t-1}, [embed(y_{t-1}) ; c_t])    unidirectional decoder
                                                  (layers.LSTMCell / layers.GRUCell)
    logits_t = W_o [s_t ; c_t] + b_o

transformer (Vaswani et al., 2017): embeddings * sqrt(d) + sinusoidal positions,
`layers.TransformerEncoderBlock` x N with the source padding mask,
`layers.TransformerDecoderBlock` x N with the causal mask and cross-attention
over the encoder outputs (source padding masked), then a Dense to the
target vocabulary. The attention maps shown are the last decoder block's
cross-attention weights averaged over heads.
"""

import math
import warnings

import keras
import tensorflow as tf

import layers

NAMES = ("attention", "transformer")
NEG = -1e9


class AdditiveAttentionDecoder(keras.layers.Layer):
    """The attention model's decoder: additive attention + an RNN cell, stepped.

    See the module docstring for the formulas. `call` runs the whole
    teacher-forced sequence (a tf.scan over time); `step` runs one step.
    """

    def __init__(self, units, attention_units, rnn="lstm", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.attention_units = attention_units
        self.rnn = rnn
        cell = layers.LSTMCell if rnn == "lstm" else layers.GRUCell
        self.cell = cell(units, name="cell")
        self.query_proj = keras.layers.Dense(attention_units, use_bias=False, name="W_s")
        self.key_proj = keras.layers.Dense(attention_units, name="W_h")
        self.energy = keras.layers.Dense(1, use_bias=False, name="v")

    def build(self, inputs_shape, values_shape):
        embedding, values = inputs_shape[-1], values_shape[-1]
        self.key_proj.build((None, None, values))
        self.query_proj.build((None, self.units))
        self.energy.build((None, None, self.attention_units))
        self.cell.build((None, embedding + values))

    def keys(self, values):
        """W_h h_j, computed once per source."""
        return self.key_proj(values)

    def initial_state(self, batch):
        zeros = tf.zeros([batch, self.units], self.compute_dtype)
        return (zeros, zeros) if self.rnn == "lstm" else (zeros,)

    def attend(self, query, keys, values, mask):
        """Context c_t (N, d) and weights alpha_t (N, S) for decoder state `query`."""
        # v^T as an einsum rather than the Dense layer's call: with a batch size
        # unknown when traced (two workers), Dense's tensordot computes its
        # transpose permutation at run time, and the gradient of this scan body
        # then holds it in a loop accumulator, which XLA refuses (not a constant).
        hidden = tf.tanh(keys + self.query_proj(query)[:, None, :])
        energy = tf.einsum("nsa,a->ns", hidden, self.energy.kernel[:, 0])
        energy = tf.where(mask, tf.cast(energy, tf.float32), NEG)
        alpha = tf.nn.softmax(energy, axis=-1)
        context = tf.einsum("ns,nsd->nd", tf.cast(alpha, values.dtype), values)
        return context, alpha

    def step(self, inputs, state, keys, values, mask, training=None):
        """One step: embedded y_{t-1} (N, e), state -> (features (N, units+d), state, alpha)."""
        context, alpha = self.attend(state[0], keys, values, mask)
        output, new_state = self.cell(tf.concat([inputs, context], -1), list(state),
                                      training=training)
        return tf.concat([output, context], -1), tuple(new_state), alpha

    def call(self, inputs, values, keys, mask, training=None):
        """inputs (B, T, e) -> features (B, T, units + d), attention (B, T, S)."""
        batch = tf.shape(inputs)[0]
        state = self.initial_state(batch)
        source = tf.shape(values)[1]

        def body(carry, x):
            state = carry[0]
            features, state, alpha = self.step(x, state, keys, values, mask, training)
            return state, features, alpha

        init = (state, tf.zeros([batch, self.units + values.shape[-1]], self.compute_dtype),
                tf.zeros([batch, source], tf.float32))
        _, features, alphas = tf.scan(body, tf.transpose(inputs, [1, 0, 2]), initializer=init)
        return tf.transpose(features, [1, 0, 2]), tf.transpose(alphas, [1, 0, 2])


class AttentionSeq2Seq(keras.Model):
    """Bidirectional RNN encoder, additive-attention RNN decoder."""

    def __init__(self, source_vocab, target_vocab, embedding_dim=32, encoder_units=32,
                 decoder_units=64, attention_units=32, rnn="lstm", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        rnn_layer = layers.LSTM if rnn == "lstm" else layers.GRU
        self.source_embedding = keras.layers.Embedding(source_vocab, embedding_dim,
                                                       name="source_embedding")
        self.encoder = keras.layers.Bidirectional(
            rnn_layer(encoder_units, return_sequences=True), name="encoder")
        self.target_embedding = keras.layers.Embedding(target_vocab, embedding_dim,
                                                       name="target_embedding")
        self.decoder = AdditiveAttentionDecoder(decoder_units, attention_units, rnn,
                                                name="decoder")
        self.dropout = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(target_vocab, name="head", dtype="float32")
        self.sizes = (embedding_dim, encoder_units, decoder_units)

    def build(self, input_shape=None):
        embedding, encoder, decoder = self.sizes
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        self.encoder.build((None, None, embedding))
        self.decoder.build((None, None, embedding), (None, None, 2 * encoder))
        self.head.build((None, decoder + 2 * encoder))
        self.built = True

    def encode(self, source_ids, training=None):
        mask = tf.not_equal(source_ids, 0)
        x = self.dropout(self.source_embedding(source_ids), training=training)
        values = self.encoder(x, mask=mask, training=training)
        values = tf.where(mask[..., None], values, tf.zeros_like(values))
        return {"values": values, "keys": self.decoder.keys(values), "mask": mask}

    def decode(self, memory, decoder_input_ids, training=None, return_attention=False):
        y = self.dropout(self.target_embedding(decoder_input_ids), training=training)
        features, alphas = self.decoder(y, memory["values"], memory["keys"], memory["mask"],
                                        training=training)
        logits = self.head(self.dropout(features, training=training))
        return (logits, alphas) if return_attention else logits

    def initial_state(self, memory):
        return self.decoder.initial_state(tf.shape(memory["values"])[0])

    def step(self, memory, state, tokens, t):
        y = self.target_embedding(tokens[:, t])
        features, state, _ = self.decoder.step(y, state, memory["keys"], memory["values"],
                                               memory["mask"])
        return self.head(features), state

    def call(self, inputs, training=None):
        source_ids, decoder_input_ids = inputs
        return self.decode(self.encode(source_ids, training), decoder_input_ids, training)


class TransformerSeq2Seq(keras.Model):
    """Transformer encoder-decoder from the project's layers."""

    def __init__(self, source_vocab, target_vocab, d_model=64, num_heads=4, ff_dim=128,
                 num_layers=2, dropout=0.1, max_length=256, **kwargs):
        super().__init__(**kwargs)
        self.d_model = d_model
        self.source_embedding = keras.layers.Embedding(source_vocab, d_model,
                                                       name="source_embedding")
        self.target_embedding = keras.layers.Embedding(target_vocab, d_model,
                                                       name="target_embedding")
        self.positions = layers.PositionalEncoding(max_length, name="positions")
        key_dim = max(1, d_model // num_heads)
        self.encoder_blocks = [
            layers.TransformerEncoderBlock(num_heads, key_dim, ff_dim, dropout=dropout,
                                           name=f"encoder_{i}") for i in range(num_layers)]
        self.decoder_blocks = [
            layers.TransformerDecoderBlock(num_heads, key_dim, ff_dim, dropout=dropout,
                                           name=f"decoder_{i}") for i in range(num_layers)]
        self.dropout = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(target_vocab, name="head", dtype="float32")

    def build(self, input_shape=None):
        shape = (None, None, self.d_model)
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        self.positions.build(shape)
        for block in self.encoder_blocks:
            block.build(shape)
        for block in self.decoder_blocks:
            block.build(shape, shape)
        self.head.build(shape)
        self.built = True

    def _embed(self, embedding, ids, training):
        x = embedding(ids) * math.sqrt(self.d_model)
        return self.dropout(self.positions(x), training=training)

    def encode(self, source_ids, training=None):
        mask = tf.not_equal(source_ids, 0)
        x = self._embed(self.source_embedding, source_ids, training)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=mask, training=training)
        return {"values": x, "mask": mask}

    def decode(self, memory, decoder_input_ids, training=None, return_attention=False):
        y = self._embed(self.target_embedding, decoder_input_ids, training)
        cross = None
        for block in self.decoder_blocks:
            # Only the causal mask on the decoder side: padding follows the
            # real tokens, so no real position ever sees it.
            y, _, cross = block(y, memory["values"], encoder_padding_mask=memory["mask"],
                                training=training, return_attention_scores=True)
        logits = self.head(y)
        if return_attention:
            return logits, tf.reduce_mean(tf.cast(cross, tf.float32), axis=1)
        return logits

    def initial_state(self, memory):
        return (tf.zeros([tf.shape(memory["values"])[0]], tf.float32),)  # stateless

    def step(self, memory, state, tokens, t):
        # Re-runs the causal decoder on the prefix 0..t (no cache; short outputs).
        with warnings.catch_warnings():  # Keras warns of the softmax over 1 key at t = 0
            warnings.simplefilter("ignore", UserWarning)
            return self.decode(memory, tokens[:, :t + 1])[:, -1], state

    def call(self, inputs, training=None):
        source_ids, decoder_input_ids = inputs
        return self.decode(self.encode(source_ids, training), decoder_input_ids, training)


def build(config, source_vocab, target_vocab):
    """The configured model, built (weights created) on a dummy batch."""
    m, d = config.model, config.data
    if m.name == "attention":
        model = AttentionSeq2Seq(source_vocab, target_vocab, m.embedding_dim, m.encoder_units,
                                 m.decoder_units, m.attention_units, m.rnn, m.dropout,
                                 name="attention")
    else:
        model = TransformerSeq2Seq(source_vocab, target_vocab, m.d_model, m.num_heads,
                                   m.ff_dim, m.num_layers, m.dropout,
                                   max_length=max(d.max_source_length, d.max_target_length) + 1,
                                   name="transformer")
    model.build()
    return model


def sequence_loss(targets, logits, label_smoothing=0.0):
    """Per-example mean cross-entropy over the real (non-padding) target tokens,
    with the targets optionally label-smoothed (see apps/translation/task.py)."""
    logits = tf.cast(logits, tf.float32)
    targets = tf.cast(targets, tf.int32)
    real = tf.cast(tf.not_equal(targets, 0), tf.float32)
    if label_smoothing:
        vocab = tf.shape(logits)[-1]
        q = tf.one_hot(targets, vocab) * (1 - label_smoothing) + label_smoothing / tf.cast(
            vocab, tf.float32)
        ce = tf.nn.softmax_cross_entropy_with_logits(q, logits)
    else:
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
    return tf.reduce_sum(ce * real, -1) / tf.maximum(tf.reduce_sum(real, -1), 1.0)
