"""MultiHeadAttention against keras.layers.MultiHeadAttention and NumPy, gradients, XLA, Mirrored."""

import keras
import numpy as np
import pytest

from layers import MultiHeadAttention
from tests import keras_testing as kt

ATOL = 1e-5
B, T, S = 2, 3, 5


def _pair(num_heads=2, key_dim=4, **kwargs):
    """Our layer and Keras's, built on the same shapes, with the same (random) weights."""
    return MultiHeadAttention(num_heads, key_dim, **kwargs), keras.layers.MultiHeadAttention(
        num_heads, key_dim, **kwargs)


def _copy_random(ours, theirs, *args):
    theirs(*args)
    ours(*args)
    rng = np.random.default_rng(0)
    theirs.set_weights([rng.normal(scale=0.5, size=w.shape) for w in theirs.get_weights()])
    kt.copy_weights(theirs, ours)


def _padding_mask():
    """A random (B, T, S) mask that leaves every query at least key 0."""
    mask = np.random.default_rng(1).random((B, T, S)) > 0.4
    mask[..., 0] = True
    return mask


CASES = {
    "self_attention": dict(shapes=[(B, T, 6), (B, T, 6)], call={}),
    "cross_attention_lengths": dict(shapes=[(B, T, 6), (B, S, 5)], call={}),
    "separate_key": dict(shapes=[(B, T, 6), (B, S, 5), (B, S, 3)], call={}),
    "padding_mask": dict(shapes=[(B, T, 6), (B, S, 5)], call={"attention_mask": "padding"}),
    "causal": dict(shapes=[(B, T, 6), (B, T, 6)], call={"use_causal_mask": True}),
    "causal_and_padding_cross": dict(
        shapes=[(B, T, 6), (B, S, 6)], call={"use_causal_mask": True, "attention_mask": "padding"}),
    "value_dim_output_shape": dict(shapes=[(B, T, 6), (B, S, 5)], call={},
                                   layer=dict(value_dim=3, output_shape=7)),
    "no_bias_multi_dim_output": dict(shapes=[(B, T, 6), (B, S, 5)], call={},
                                     layer=dict(use_bias=False, output_shape=(2, 3))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_keras(case):
    spec = CASES[case]
    args = kt.random_inputs(*spec["shapes"], seed=3)
    call = dict(spec["call"])
    if call.get("attention_mask") == "padding":
        call["attention_mask"] = _padding_mask()[:, :, :spec["shapes"][1][1]]
    ours, theirs = _pair(**spec.get("layer", {}))
    _copy_random(ours, theirs, *args)
    y, scores = ours(*args, return_attention_scores=True, **call)
    y_k, scores_k = theirs(*args, return_attention_scores=True, **call)
    np.testing.assert_allclose(y, y_k, atol=ATOL)
    np.testing.assert_allclose(scores, scores_k, atol=ATOL)
    # Keras's fast path (no scores) gives the same outputs too.
    np.testing.assert_allclose(ours(*args, **call), theirs(*args, **call), atol=ATOL)
    if call.get("use_causal_mask"):
        assert np.all(np.triu(np.asarray(scores), k=1) == 0)  # nothing from the future
    np.testing.assert_allclose(np.sum(scores, -1), 1.0, atol=1e-6)


def test_implicit_keras_masks_match_keras():
    q, v = kt.random_inputs((B, T, 6), (B, S, 5), seed=4)
    q[0, -1] = 0.0   # padded query position
    v[1, -2:] = 0.0  # padded key positions
    q_m, v_m = keras.layers.Masking()(q), keras.layers.Masking()(v)
    ours, theirs = _pair()
    _copy_random(ours, theirs, q, v)
    y, scores = ours(q_m, v_m, return_attention_scores=True)
    y_k, scores_k = theirs(q_m, v_m, return_attention_scores=True)
    np.testing.assert_allclose(y, y_k, atol=ATOL)
    np.testing.assert_allclose(scores, scores_k, atol=ATOL)
    np.testing.assert_array_equal(scores[1, :, :, -2:], 0.0)
    np.testing.assert_array_equal(scores[0, :, -1], 0.0)  # a fully masked query row


def numpy_mha(q_in, v_in, weights, mask=None):
    """softmax(Q K^T / sqrt(d_k) + M) V per head, concatenated, projected."""
    wq, bq, wk, bk, wv, bv, wo, bo = weights
    q = np.einsum("btd,dnh->bnth", q_in, wq) + bq[None, :, None, :]
    k = np.einsum("bsd,dnh->bnsh", v_in, wk) + bk[None, :, None, :]
    v = np.einsum("bsd,dnh->bnsh", v_in, wv) + bv[None, :, None, :]
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    if mask is not None:
        logits = np.where(mask[:, None], logits, -np.inf)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    heads = a @ v                                                    # (B, N, T, dv)
    return np.einsum("bnth,nho->bto", heads, wo) + bo, a


def test_matches_numpy_transcription():
    q, v = kt.random_inputs((B, T, 6), (B, S, 5), seed=5, dtype="float64")
    layer = MultiHeadAttention(2, 3, value_dim=2, dtype="float64",
                               bias_initializer="random_normal")
    mask = _padding_mask()
    y, scores = layer(q, v, attention_mask=mask, return_attention_scores=True)
    y_np, scores_np = numpy_mha(q, v, layer.get_weights(), mask)
    np.testing.assert_allclose(y, y_np, atol=1e-12)
    np.testing.assert_allclose(scores, scores_np, atol=1e-12)


def test_dropout_only_in_training():
    q, v = kt.random_inputs((B, T, 6), (B, S, 6))
    layer = MultiHeadAttention(2, 4, dropout=0.5, seed=1)
    y_inf, s_inf = layer(q, v, return_attention_scores=True)
    y_tr, s_tr = layer(q, v, training=True, return_attention_scores=True)
    np.testing.assert_allclose(s_tr, s_inf, atol=1e-7)  # scores are before dropout
    assert not np.allclose(y_tr, y_inf, atol=1e-4)
    np.testing.assert_allclose(layer(q, v, training=False), y_inf, atol=1e-7)


def test_mixed_precision_matches_keras():
    q, v = kt.random_inputs((B, T, 8), (B, S, 8))
    ours, theirs = _pair(dtype="mixed_float16")
    _copy_random(ours, theirs, q, v)
    y = ours(q, v, use_causal_mask=True)
    assert y.dtype == "float16" and ours.query_kernel.dtype == "float32"
    np.testing.assert_allclose(np.asarray(y, "float32"),
                               np.asarray(theirs(q, v, use_causal_mask=True), "float32"),
                               atol=2e-2)


def test_gradient_check():
    q, v = kt.random_inputs((1, 2, 3), (1, 3, 2), dtype="float64")
    layer = MultiHeadAttention(2, 2, dtype="float64", bias_initializer="random_normal")
    mask = np.array([[[1, 0, 1], [1, 1, 0]]], bool)
    assert kt.check_gradients(layer, (q, v), attention_mask=mask) < 1e-7
    layer = MultiHeadAttention(2, 2, dtype="float64", bias_initializer="random_normal")
    assert kt.check_gradients(layer, (q, q), use_causal_mask=True) < 1e-7


def test_keras_helper_checks(tmp_path):
    q, v = kt.random_inputs((4, T, 6), (4, S, 5))
    kt.run_layer_checks(lambda: MultiHeadAttention(2, 3, value_dim=2), (q, v), tmp_path,
                        expected_output_shape=(4, T, 6), trainable=8, non_trainable=0)
    layer = MultiHeadAttention(2, 3, use_bias=False)
    _, scores = kt.check_output_shape(layer, (q, v), return_attention_scores=True)
    assert tuple(scores.shape) == (4, 2, T, S)
    kt.check_weight_counts(layer, trainable=4, non_trainable=0)


def test_xla_matches_plain():
    q = kt.random_inputs((B, T, 6))
    kt.check_xla(MultiHeadAttention(2, 3), (q, q), use_causal_mask=True)


def test_invalid_arguments():
    for name, kwargs in [("num_heads", dict(num_heads=0, key_dim=2)),
                         ("key_dim", dict(num_heads=2, key_dim=-1)),
                         ("value_dim", dict(num_heads=2, key_dim=2, value_dim=0)),
                         ("dropout", dict(num_heads=2, key_dim=2, dropout=1.5)),
                         ("output_shape", dict(num_heads=2, key_dim=2, output_shape=(0,)))]:
        with pytest.raises(ValueError, match=name):
            MultiHeadAttention(**kwargs)
    with pytest.raises(ValueError, match="query"):
        MultiHeadAttention(2, 2).build((2, 3), (2, 3, 4))


def test_mirrored_strategy_matches_one_device(two_cpu_strategy):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(8, T, 4)).astype("float32")
    v = rng.normal(size=(8, S, 4)).astype("float32")
    y = rng.normal(size=(8, T, 4)).astype("float32")

    def make():
        qi, vi = keras.Input((T, 4)), keras.Input((S, 4))
        out = MultiHeadAttention(2, 2, kernel_initializer=keras.initializers.GlorotUniform(4))(
            qi, vi, use_causal_mask=True)
        return keras.Model([qi, vi], out)

    mirrored = kt.fit_steps(make, [q, v], y, two_cpu_strategy).get_weights()
    single = kt.fit_steps(make, [q, v], y).get_weights()
    initial = make().get_weights()
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    assert not np.allclose(mirrored[0], initial[0])
