"""Transformer blocks against compositions of Keras layers, gradients, XLA, Mirrored."""

import keras
import numpy as np
import pytest

from layers import TransformerDecoderBlock, TransformerEncoderBlock
from tests import keras_testing as kt

ATOL = 1e-5
B, T, S, D = 2, 4, 5, 6


def _keras_like(ours_layer, theirs_layer, *build_args):
    """Builds `theirs_layer` on `build_args` and copies `ours_layer`'s weights into it."""
    theirs_layer.build(*build_args)
    kt.copy_weights(ours_layer, theirs_layer)
    return theirs_layer


def keras_encoder(block, shape):
    """Post-norm encoder from Keras layers: LN(x + MHA(x)), LN(x1 + FFN(x1))."""
    mha = keras.layers.MultiHeadAttention(block.num_heads, block.key_dim)
    mha(np.zeros(shape, "float32"), np.zeros(shape, "float32"))
    kt.copy_weights(block.attention, mha)
    ln1 = _keras_like(block.norm1, keras.layers.LayerNormalization(epsilon=block.epsilon), shape)
    ln2 = _keras_like(block.norm2, keras.layers.LayerNormalization(epsilon=block.epsilon), shape)
    ff1 = _keras_like(block.ffn_hidden, keras.layers.Dense(block.ff_dim, activation="relu"), shape)
    ff2 = _keras_like(block.ffn_output, keras.layers.Dense(shape[-1]),
                      shape[:-1] + (block.ff_dim,))

    def forward(x, attention_mask=None):
        a, scores = mha(x, x, attention_mask=attention_mask, return_attention_scores=True)
        x1 = ln1(x + a)
        return ln2(x1 + ff2(ff1(x1))), scores

    return forward


def keras_decoder(block, shape, enc_shape):
    """Post-norm decoder from Keras layers: masked self-attention, cross-attention, FFN."""
    self_mha = keras.layers.MultiHeadAttention(block.num_heads, block.key_dim)
    self_mha(np.zeros(shape, "float32"), np.zeros(shape, "float32"))
    kt.copy_weights(block.self_attention, self_mha)
    cross_mha = keras.layers.MultiHeadAttention(block.num_heads, block.key_dim)
    cross_mha(np.zeros(shape, "float32"), np.zeros(enc_shape, "float32"))
    kt.copy_weights(block.cross_attention, cross_mha)
    lns = [_keras_like(norm, keras.layers.LayerNormalization(epsilon=block.epsilon), shape)
           for norm in (block.norm1, block.norm2, block.norm3)]
    ff1 = _keras_like(block.ffn_hidden, keras.layers.Dense(block.ff_dim, activation="relu"), shape)
    ff2 = _keras_like(block.ffn_output, keras.layers.Dense(shape[-1]),
                      shape[:-1] + (block.ff_dim,))

    def forward(y, z, self_mask=None, cross_mask=None):
        a1, s1 = self_mha(y, y, attention_mask=self_mask, use_causal_mask=True,
                          return_attention_scores=True)
        y1 = lns[0](y + a1)
        a2, s2 = cross_mha(y1, z, attention_mask=cross_mask, return_attention_scores=True)
        y2 = lns[1](y1 + a2)
        return lns[2](y2 + ff2(ff1(y2))), s1, s2

    return forward


def _randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.4, size=w.shape) + ("gamma" in w.path)
                       for w in layer.weights])


def _padding(batch, length, lengths):
    return np.arange(length)[None, :] < np.array(lengths)[:, None]


@kt.jax_subset
def test_encoder_matches_keras_composition():
    x = kt.random_inputs((B, T, D))
    block = TransformerEncoderBlock(num_heads=2, key_dim=3, ff_dim=8, dropout=0.3)
    block.build(x.shape)
    _randomize(block)
    reference = keras_encoder(block, x.shape)
    pad = _padding(B, T, [T, 2])
    for padding_mask, keras_mask in [(None, None), (pad, pad[:, None, :])]:
        y, scores = block(x, padding_mask=padding_mask, return_attention_scores=True)
        y_k, scores_k = reference(x, keras_mask)
        np.testing.assert_allclose(y, y_k, atol=ATOL)
        np.testing.assert_allclose(scores, scores_k, atol=ATOL)
    np.testing.assert_array_equal(scores[1, :, :, 2:], 0.0)  # padded keys get no attention
    # The implicit Keras mask (e.g. Embedding(mask_zero=True)) acts as the padding mask.
    x_masked = x.copy()
    x_masked[1, 2:] = 0.0
    implicit = block(keras.layers.Masking()(x_masked))
    np.testing.assert_allclose(implicit, block(x_masked, padding_mask=pad), atol=1e-6)
    assert implicit._keras_mask is not None  # and it propagates


def test_decoder_matches_keras_composition():
    y_in, z = kt.random_inputs((B, T, D), (B, S, 5), seed=1)
    block = TransformerDecoderBlock(num_heads=2, key_dim=3, ff_dim=8)
    block.build(y_in.shape, z.shape)
    _randomize(block, seed=1)
    reference = keras_decoder(block, y_in.shape, z.shape)
    dec_pad, enc_pad = _padding(B, T, [T, 3]), _padding(B, S, [2, S])
    out, s1, s2 = block(y_in, z, decoder_padding_mask=dec_pad, encoder_padding_mask=enc_pad,
                        return_attention_scores=True)
    out_k, s1_k, s2_k = reference(y_in, z, dec_pad[:, None, :], enc_pad[:, None, :])
    np.testing.assert_allclose(out, out_k, atol=ATOL)
    np.testing.assert_allclose(s1, s1_k, atol=ATOL)
    np.testing.assert_allclose(s2, s2_k, atol=ATOL)
    assert s1.shape == (B, 2, T, T) and s2.shape == (B, 2, T, S)
    np.testing.assert_array_equal(s2[0, :, :, 2:], 0.0)
    assert np.all(np.triu(np.asarray(s1), k=1) == 0)
    np.testing.assert_allclose(block(y_in, z, decoder_padding_mask=dec_pad,
                                     encoder_padding_mask=enc_pad), out, atol=1e-7)


def test_decoder_is_causal():
    y_in, z = kt.random_inputs((1, T, D), (1, S, D), seed=2)
    block = TransformerDecoderBlock(2, 3, 8)
    changed = y_in.copy()
    changed[0, -1] += 1.0  # change only the last target position
    a, b = np.asarray(block(y_in, z)), np.asarray(block(changed, z))
    np.testing.assert_allclose(a[0, :-1], b[0, :-1], atol=1e-6)
    assert not np.allclose(a[0, -1], b[0, -1], atol=1e-3)
    no_causal = np.asarray(block(changed, z, use_causal_mask=False))
    assert not np.allclose(no_causal[0, 0], a[0, 0], atol=1e-4)


@kt.exact_float64("the gradient check through LayerNorm (ops.mean)")
def test_gradient_check():
    x, z = kt.random_inputs((1, 3, 4), (1, 2, 4), dtype="float64", seed=3)
    encoder = TransformerEncoderBlock(2, 2, 4, dtype="float64")
    encoder.build(x.shape)
    _randomize(encoder)
    assert kt.check_gradients(encoder, x, padding_mask=np.array([[1, 1, 0]]),
                              training=False) < 1e-7
    decoder = TransformerDecoderBlock(2, 2, 4, dropout=0.0, dtype="float64")
    decoder.build(x.shape, z.shape)
    _randomize(decoder)
    assert kt.check_gradients(decoder, (x, z), training=True) < 1e-7


def test_keras_helper_checks(tmp_path):
    x, z = kt.random_inputs((4, T, D), (4, S, 5))
    kt.run_layer_checks(lambda: TransformerEncoderBlock(2, 3, 8), x, tmp_path,
                        expected_output_shape=(4, T, D), trainable=16, non_trainable=0)
    kt.run_layer_checks(lambda: TransformerDecoderBlock(2, 3, 8), (x, z), tmp_path,
                        expected_output_shape=(4, T, D), trainable=26, non_trainable=0)
    _, s1, s2 = kt.check_output_shape(TransformerDecoderBlock(2, 3, 8), (x, z),
                                      return_attention_scores=True)
    assert s1.shape == (4, 2, T, T) and s2.shape == (4, 2, T, S)


def test_xla_matches_plain():
    x, z = kt.random_inputs((B, T, D), (B, S, D))
    kt.check_xla(TransformerDecoderBlock(2, 3, 8, dropout=0.0), (x, z), training=True)


def test_invalid_arguments():
    for cls in (TransformerEncoderBlock, TransformerDecoderBlock):
        for name, args in [("num_heads", (0, 2, 4)), ("key_dim", (2, -2, 4)),
                           ("ff_dim", (2, 2, 0))]:
            with pytest.raises(ValueError, match=name):
                cls(*args)
        with pytest.raises(ValueError, match="dropout"):
            cls(2, 2, 4, dropout=1.0)
        with pytest.raises(ValueError, match="epsilon"):
            cls(2, 2, 4, epsilon=0)


def test_mirrored_strategy_matches_one_device(two_cpu_strategy):
    rng = np.random.default_rng(0)
    src = rng.normal(size=(8, S, 4)).astype("float32")
    tgt = rng.normal(size=(8, T, 4)).astype("float32")
    y = rng.normal(size=(8, T, 4)).astype("float32")

    def make():
        init = keras.initializers.GlorotUniform(7)
        si, ti = keras.Input((S, 4)), keras.Input((T, 4))
        enc = TransformerEncoderBlock(2, 2, 8, dropout=0.0, kernel_initializer=init)(si)
        dec = TransformerDecoderBlock(2, 2, 8, dropout=0.0, kernel_initializer=init)(ti, enc)
        return keras.Model([si, ti], dec)

    mirrored = kt.fit_steps(make, [src, tgt], y, two_cpu_strategy).get_weights()
    single = kt.fit_steps(make, [src, tgt], y).get_weights()
    initial = make().get_weights()
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    assert not np.allclose(mirrored[0], initial[0])
