"""Benchmark: our hand-coded layers against their Keras twins, forward + backward.

Each row times one training-like step, a `tf.function` computing the loss
mean(y ** 2) of the layer's output and its gradients with respect to the
inputs and every trainable weight, for our layer and for its Keras twin (or
the same computation composed of Keras layers) on the same shapes, with and
without XLA (`jit_compile=True`). The recurrent rows (LSTM, GRU, SimpleRNN)
run a batch of 64 sequences of 50 steps and return every step's output. Run
with `python -m bench layers`; the table goes to stdout and the rows to
bench/results/layers.json. Target: each of ours within 1.15x of Keras.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import layers as L  # noqa: E402
from bench.common import compare, print_table, write_json  # noqa: E402

TARGET = 1.15


def _step(call, variables, inputs, jit):
    """A compiled step: loss = mean(first output ** 2) and gradients wrt inputs and weights."""

    @tf.function(jit_compile=jit)
    def step(*args):
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = tf.nest.flatten(call(*args))[0]
            loss = tf.reduce_mean(tf.square(tf.cast(out, tf.float32)))
        grads = tape.gradient(loss, list(args) + list(variables))
        return [loss] + grads

    return lambda: step(*inputs)[0]


def _inputs(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.normal(size=s).astype("float32")) for s in shapes]


# -- twins composed of Keras layers -------------------------------------------------------


def _copy(ours, theirs):
    theirs.set_weights(ours.get_weights())


def keras_residual(block, shape):
    """ResNet v1 basic block with projection, from Keras Conv2D/BatchNormalization/ReLU/Add."""
    f, s, k = block.filters, block.strides, block.kernel_size
    conv1 = keras.layers.Conv2D(f, k, strides=s, padding="same", use_bias=False)
    bn1 = keras.layers.BatchNormalization()
    conv2 = keras.layers.Conv2D(f, k, padding="same", use_bias=False)
    bn2 = keras.layers.BatchNormalization()
    proj = keras.layers.Conv2D(f, 1, strides=s, use_bias=False)
    bn3 = keras.layers.BatchNormalization()

    def call(x, training=True):
        h = tf.nn.relu(bn1(conv1(x), training=training))
        h = bn2(conv2(h), training=training)
        return tf.nn.relu(h + bn3(proj(x), training=training))

    call(tf.zeros(shape))
    for ours, theirs in zip([block.convs[0], block.bns[0], block.convs[1], block.bns[1],
                             block.shortcut_conv, block.shortcut_bn],
                            [conv1, bn1, conv2, bn2, proj, bn3], strict=True):
        _copy(ours, theirs)
    variables = [v for layer in (conv1, bn1, conv2, bn2, proj, bn3)
                 for v in layer.trainable_variables]
    return call, variables


def keras_inception(module, shape):
    """GoogLeNet's four branches from Keras Conv2D/MaxPooling2D/Concatenate."""
    specs = [(module.filters_1x1, 1), (module.filters_3x3_reduce, 1), (module.filters_3x3, 3),
             (module.filters_5x5_reduce, 1), (module.filters_5x5, 5),
             (module.filters_pool_proj, 1)]
    convs = [keras.layers.Conv2D(f, k, padding="same", activation="relu") for f, k in specs]
    pool = keras.layers.MaxPooling2D(3, strides=1, padding="same")
    concat = keras.layers.Concatenate()

    def call(x):
        return concat([convs[0](x), convs[2](convs[1](x)), convs[4](convs[3](x)),
                       convs[5](pool(x))])

    call(tf.zeros(shape))
    for ours, theirs in zip(module.convs, convs, strict=True):
        _copy(ours, theirs)
    return call, [v for c in convs for v in c.trainable_variables]


def keras_encoder(block, shape):
    """Post-norm encoder block from Keras MultiHeadAttention/LayerNormalization/Dense/Dropout."""
    mha = keras.layers.MultiHeadAttention(block.num_heads, block.key_dim, dropout=block.dropout)
    ln1 = keras.layers.LayerNormalization(epsilon=block.epsilon)
    ln2 = keras.layers.LayerNormalization(epsilon=block.epsilon)
    ff1 = keras.layers.Dense(block.ff_dim, activation="relu")
    ff2 = keras.layers.Dense(shape[-1])
    drop = keras.layers.Dropout(block.dropout)

    def call(x, training=True):
        x1 = ln1(x + drop(mha(x, x, training=training), training=training))
        return ln2(x1 + drop(ff2(ff1(x1)), training=training))

    call(tf.zeros(shape))
    parts = [mha, ln1, ff1, ff2, ln2]
    for ours, theirs in zip([block.attention, block.norm1, block.ffn_hidden, block.ffn_output,
                             block.norm2], parts, strict=True):
        _copy(ours, theirs)
    return call, [v for p in parts for v in p.trainable_variables]


def keras_decoder(block, shape, enc_shape):
    """Post-norm decoder block (causal self-attention, cross-attention, FFN) from Keras layers."""
    self_mha = keras.layers.MultiHeadAttention(block.num_heads, block.key_dim,
                                               dropout=block.dropout)
    cross_mha = keras.layers.MultiHeadAttention(block.num_heads, block.key_dim,
                                                dropout=block.dropout)
    lns = [keras.layers.LayerNormalization(epsilon=block.epsilon) for _ in range(3)]
    ff1 = keras.layers.Dense(block.ff_dim, activation="relu")
    ff2 = keras.layers.Dense(shape[-1])
    drop = keras.layers.Dropout(block.dropout)

    def call(y, z, training=True):
        y1 = lns[0](y + drop(self_mha(y, y, use_causal_mask=True, training=training),
                             training=training))
        y2 = lns[1](y1 + drop(cross_mha(y1, z, training=training), training=training))
        return lns[2](y2 + drop(ff2(ff1(y2)), training=training))

    call(tf.zeros(shape), tf.zeros(enc_shape))
    parts = [self_mha, lns[0], cross_mha, lns[1], ff1, ff2, lns[2]]
    for ours, theirs in zip([block.self_attention, block.norm1, block.cross_attention,
                             block.norm2, block.ffn_hidden, block.ffn_output, block.norm3],
                            parts, strict=True):
        _copy(ours, theirs)
    return call, [v for p in parts for v in p.trainable_variables]


def keras_maxout(num_units):
    """Maxout from Keras's Reshape and a max over the last axis."""
    def call(x):
        grouped = keras.layers.Reshape(tuple(x.shape[1:-1]) + (num_units, -1))(x)
        return keras.ops.max(grouped, axis=-1)
    return call, []


def keras_positional(shape):
    """x + KerasHub's SinePositionEncoding (the same sinusoids, computed per call)."""
    import keras_hub  # only the benchmark needs it

    encoding = keras_hub.layers.SinePositionEncoding()
    return (lambda x: x + encoding(x)), []


# -- the cases ----------------------------------------------------------------------------


def cases():
    """(name, ours (call, variables), theirs (call, variables), inputs), built lazily."""
    def batch_norm():
        x = _inputs((32, 16, 16, 32))
        ours, theirs = L.BatchNorm(), keras.layers.BatchNormalization()
        ours.build(x[0].shape)
        theirs.build(x[0].shape)
        return ((lambda a: ours(a, training=True), ours.trainable_variables),
                (lambda a: theirs(a, training=True), theirs.trainable_variables), x)

    def layer_norm():
        x = _inputs((32, 64, 128))
        ours, theirs = L.LayerNorm(), keras.layers.LayerNormalization()
        ours.build(x[0].shape)
        theirs.build(x[0].shape)
        return (ours, ours.trainable_variables), (theirs, theirs.trainable_variables), x

    def attention():
        x = _inputs((16, 32, 64))
        ours, theirs = L.MultiHeadAttention(4, 16), keras.layers.MultiHeadAttention(4, 16)
        ours(x[0], x[0])
        theirs(x[0], x[0])
        return ((lambda a: ours(a, a, use_causal_mask=True), ours.trainable_variables),
                (lambda a: theirs(a, a, use_causal_mask=True), theirs.trainable_variables), x)

    def positional():
        x = _inputs((32, 64, 128))
        return (L.PositionalEncoding(64), []), keras_positional(x[0].shape), x

    def encoder():
        x = _inputs((16, 32, 64))
        block = L.TransformerEncoderBlock(4, 16, 128, dropout=0.1)
        block.build(x[0].shape)
        return ((lambda a: block(a, training=True), block.trainable_variables),
                keras_encoder(block, x[0].shape), x)

    def decoder():
        x = _inputs((16, 32, 64), (16, 40, 64))
        block = L.TransformerDecoderBlock(4, 16, 128, dropout=0.1)
        block.build(x[0].shape, x[1].shape)
        return ((lambda a, b: block(a, b, training=True), block.trainable_variables),
                keras_decoder(block, x[0].shape, x[1].shape), x)

    def residual():
        x = _inputs((16, 16, 16, 16))
        block = L.ResidualBlock(32, strides=2)
        block.build(x[0].shape)
        return ((lambda a: block(a, training=True), block.trainable_variables),
                keras_residual(block, x[0].shape), x)

    def inception():
        x = _inputs((16, 16, 16, 32))
        module = L.InceptionModule(16, 16, 24, 4, 8, 8)
        module.build(x[0].shape)
        return (module, module.trainable_variables), keras_inception(module, x[0].shape), x

    def maxout():
        x = _inputs((64, 64, 256))
        return (L.Maxout(64), []), keras_maxout(64), x

    def recurrent(ours_cls, theirs_cls, **kwargs):
        """Batch 64, 50 steps, 64 features -> 128 units, every step's output (on CPU Keras
        runs its generic loop, as ours: no cuDNN)."""
        def make():
            x = _inputs((64, 50, 64))
            ours = ours_cls(128, return_sequences=True, **kwargs)
            theirs = theirs_cls(128, return_sequences=True, **kwargs)
            ours.build(x[0].shape)
            theirs.build(x[0].shape)
            _copy(ours, theirs)
            return (ours, ours.trainable_variables), (theirs, theirs.trainable_variables), x
        return make

    return [("BatchNorm (train, 4D)", batch_norm), ("LayerNorm", layer_norm),
            ("MultiHeadAttention (causal)", attention), ("PositionalEncoding", positional),
            ("TransformerEncoderBlock", encoder), ("TransformerDecoderBlock", decoder),
            ("ResidualBlock (stride 2)", residual), ("InceptionModule", inception),
            ("Maxout", maxout),
            ("LSTM (64 x 50 steps, 128 units)", recurrent(L.LSTM, keras.layers.LSTM)),
            ("GRU (notes', reset_after=False)",
             recurrent(L.GRU, keras.layers.GRU, reset_after=False)),
            ("GRU (reset_after=True)", recurrent(L.GRU, keras.layers.GRU, reset_after=True)),
            ("SimpleRNN", recurrent(L.SimpleRNN, keras.layers.SimpleRNN))]


def main(rounds=9, repeats=8):
    rows = []
    for name, make in cases():
        (ours, ours_vars), (theirs, theirs_vars), inputs = make()
        for jit in (False, True):
            rows.append(compare(name, _step(ours, ours_vars, inputs, jit),
                                _step(theirs, theirs_vars, inputs, jit),
                                rounds=rounds, repeats=repeats, warmup=2, xla=jit))
            print(f"{name:<34}{str(jit):>5}{rows[-1]['ratio']:>8.3f}", flush=True)
    print_table("Layers: forward + backward, ours vs Keras (ms per step)", rows, target=TARGET)
    payload = {"benchmark": "layers", "target_ratio": TARGET, "rows": rows,
               "all_within_target": all(r["ratio"] <= TARGET for r in rows)}
    print(f"\nwrote {write_json('layers.json', payload)}")
    return payload


if __name__ == "__main__":
    main()
