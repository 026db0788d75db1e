"""MultiHeadAttention against keras.layers.MultiHeadAttention and NumPy, gradients, XLA, Mirrored."""

import warnings

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
    # Built through Keras's scores path: on JAX its fast path (jax.nn.dot_product_attention)
    # fails when value_dim != key_dim (Keras 3.15).
    theirs(*args, return_attention_scores=True)
    ours(*args)
    rng = np.random.default_rng(0)
    theirs.set_weights([rng.normal(scale=0.5, size=w.shape) for w in theirs.get_weights()])
    kt.copy_weights(theirs, ours)


def _padding_mask(shape=(B, T, S)):
    """A random mask of `shape` (keys last) that leaves every query at least key 0."""
    mask = np.random.default_rng(1).random(shape) > 0.4
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
    "gate": dict(shapes=[(B, T, 6), (B, S, 5)], call={}, layer=dict(use_gate=True)),
    "gate_no_bias_value_dim_padding": dict(
        shapes=[(B, T, 6), (B, S, 5)], call={"attention_mask": "padding"},
        layer=dict(use_gate=True, use_bias=False, value_dim=3)),
    "sliding_window_self": dict(shapes=[(B, 5, 6), (B, 5, 6)], call={},
                                layer=dict(sliding_window=2)),
    "sliding_window_causal_padding": dict(
        shapes=[(B, 5, 6), (B, 5, 6)], call={"use_causal_mask": True, "attention_mask": "padding"},
        layer=dict(sliding_window=3)),
    "sliding_window_cross": dict(shapes=[(B, T, 6), (B, S, 5)], call={},
                                 layer=dict(sliding_window=2)),
    # Inputs of rank 4 and 5: attention over some axes, the others batch-like.
    "axes_4d_last_full_mask": dict(shapes=[(B, 3, 4, 6), (B, 3, 5, 6)],
                                   call={"attention_mask": (B, 3, 4, 5)},
                                   layer=dict(attention_axes=2)),
    "axes_4d_negative_broadcast_mask": dict(shapes=[(B, 3, 4, 6), (B, 3, 5, 6)],
                                            call={"attention_mask": (B, 4, 5)},
                                            layer=dict(attention_axes=-2)),
    "axes_4d_first_causal": dict(shapes=[(B, 4, 3, 6), (B, 4, 3, 6)],
                                 call={"use_causal_mask": True}, layer=dict(attention_axes=(1,))),
    "axes_2d_image_mask": dict(shapes=[(B, 3, 4, 6), (B, 3, 4, 6)],
                               call={"attention_mask": (B, 3, 4, 3, 4)},
                               layer=dict(attention_axes=(1, 2))),
    "axes_2d_reversed_order": dict(shapes=[(B, 3, 4, 6), (B, 3, 4, 6)],
                                   call={"attention_mask": (B, 4, 3, 4, 3)},
                                   layer=dict(attention_axes=(2, 1))),
    "axes_5d_2d_gate_mask": dict(shapes=[(B, 5, 3, 4, 6), (B, 5, 3, 2, 6)],
                                 call={"attention_mask": (B, 5, 3, 4, 3, 2)},
                                 layer=dict(attention_axes=(2, 3), use_gate=True)),
    "axes_default_4d_separate_key_output_shape": dict(
        shapes=[(B, 2, 3, 6), (B, 1, 5, 5), (B, 1, 5, 3)], call={},
        layer=dict(value_dim=3, output_shape=(2, 3))),
}


@pytest.mark.parametrize("case", kt.jax_cases(list(CASES), [
    "self_attention", "padding_mask", "causal", "gate", "sliding_window_causal_padding",
    "axes_2d_image_mask"]))
def test_matches_keras(case):
    spec = CASES[case]
    args = kt.random_inputs(*spec["shapes"], seed=3)
    call = dict(spec["call"])
    query_shape, value_shape = spec["shapes"][:2]
    if call.get("attention_mask") == "padding":
        call["attention_mask"] = _padding_mask((B, query_shape[1], value_shape[1]))
    elif "attention_mask" in call:
        call["attention_mask"] = _padding_mask(call["attention_mask"])
    ours, theirs = _pair(**spec.get("layer", {}))
    _copy_random(ours, theirs, *args)
    y, scores = ours(*args, return_attention_scores=True, **call)
    y_k, scores_k = theirs(*args, return_attention_scores=True, **call)
    assert scores.shape == scores_k.shape
    np.testing.assert_allclose(y, y_k, atol=ATOL)
    np.testing.assert_allclose(scores, scores_k, atol=ATOL)
    # Keras's fast path (no scores) gives the same outputs too (on JAX that path fails
    # when value_dim != key_dim, Keras 3.15).
    if kt.BACKEND == "tensorflow" or "value_dim" not in spec.get("layer", {}):
        np.testing.assert_allclose(ours(*args, **call), theirs(*args, **call), atol=ATOL)
    if call.get("use_causal_mask"):
        assert np.all(np.triu(np.asarray(scores), k=1) == 0)  # nothing from the future
    window = spec.get("layer", {}).get("sliding_window")
    if window:  # nothing outside the band |i - j| < window
        i, j = np.indices(scores.shape[-2:])
        assert np.all(np.asarray(scores)[..., np.abs(i - j) >= window] == 0)
    key_axes = scores.ndim - len(query_shape)  # the softmax runs over the key attention axes
    np.testing.assert_allclose(np.sum(scores, axis=tuple(range(-key_axes, 0))), 1.0, atol=1e-6)


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


def test_implicit_keras_masks_high_rank_match_keras():
    """(B, rows, columns, features) inputs, attention along the rows' columns (axis 2)."""
    q, v = kt.random_inputs((B, 3, 4, 6), (B, 3, 5, 6), seed=6)
    q[0, 1, -1] = 0.0
    v[1, 2, -2:] = 0.0
    q_m, v_m = keras.layers.Masking()(q), keras.layers.Masking()(v)
    ours, theirs = _pair(attention_axes=2)
    _copy_random(ours, theirs, q, v)
    y, scores = ours(q_m, v_m, return_attention_scores=True)
    y_k, scores_k = theirs(q_m, v_m, return_attention_scores=True)
    np.testing.assert_allclose(y, y_k, atol=ATOL)
    np.testing.assert_allclose(scores, scores_k, atol=ATOL)
    np.testing.assert_array_equal(scores[1, 2, :, :, -2:], 0.0)   # (B, rows, h, T, S)
    np.testing.assert_array_equal(scores[0, 1, :, -1], 0.0)


def test_implicit_masks_on_any_attention_axis():
    """Masks of the inputs' shape follow the attention axes wherever they are."""
    q, v = kt.random_inputs((B, 4, 3, 6), (B, 5, 3, 6), seed=7)
    q_mask = np.ones((B, 4, 3), bool)
    v_mask = np.ones((B, 5, 3), bool)
    q_mask[0, -1, 1] = False
    v_mask[1, 1:3, 2] = False
    layer = MultiHeadAttention(2, 4, attention_axes=1)
    _, scores = layer(q, v, query_mask=q_mask, value_mask=v_mask, return_attention_scores=True)
    # The same as an explicit (B, columns, T, S) mask.
    explicit = q_mask.transpose(0, 2, 1)[..., None] & v_mask.transpose(0, 2, 1)[:, :, None, :]
    _, expected = layer(q, v, attention_mask=explicit, return_attention_scores=True)
    np.testing.assert_allclose(scores, expected, atol=1e-7)
    np.testing.assert_array_equal(scores[1, 2, :, :, 1:3], 0.0)
    np.testing.assert_array_equal(scores[0, 1, :, -1], 0.0)


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


@kt.jax_subset
def test_matches_numpy_transcription():
    q, v = kt.random_inputs((B, T, 6), (B, S, 5), seed=5, dtype="float64")
    layer = MultiHeadAttention(2, 3, value_dim=2, dtype="float64",
                               bias_initializer="random_normal")
    mask = _padding_mask()
    y, scores = layer(q, v, attention_mask=mask, return_attention_scores=True)
    y_np, scores_np = numpy_mha(q, v, layer.get_weights(), mask)
    np.testing.assert_allclose(y, y_np, atol=kt.float64_atol(1e-12))
    np.testing.assert_allclose(scores, scores_np, atol=kt.float64_atol(1e-12))


def numpy_attention(q_in, v_in, weights, key_dim, attention_axes=None, mask=None, gate=False,
                    k_in=None):
    """The docstring's general formulas, positions flattened.

    The batch-like axes are moved next to the batch and the attention axes
    (in the order given) flattened into one position axis, so that each
    batch-like slice is ordinary sequence attention; gate G = sigmoid(Q_in
    W^G + b^G) multiplies the heads. Returns the output and the weights in
    the layer's layout (B, <others>, h, <query attention>, <key attention>).
    """
    k_in = v_in if k_in is None else k_in
    names = ["query", "key"] + (["gate"] if gate else []) + ["value", "output"]
    w = {n: (weights[2 * i], weights[2 * i + 1]) for i, n in enumerate(names)}
    rank = q_in.ndim
    axes = tuple(range(1, rank - 1)) if attention_axes is None else tuple(
        a % rank for a in np.atleast_1d(attention_axes))
    others = [a for a in range(1, rank - 1) if a not in axes]
    order = [0] + others + list(axes)

    def flat(x):
        x = x.transpose(order + [rank - 1])
        lead, positions = x.shape[:1 + len(others)], x.shape[1 + len(others):-1]
        return x.reshape(int(np.prod(lead)), int(np.prod(positions)), x.shape[-1]), lead, positions

    def project(x, name):                                   # (G, P, d) -> (G, h, P, k)
        kernel, bias = w[name]
        return np.einsum("gpd,dhk->ghpk", x, kernel) + bias[None, :, None, :]

    (qf, lead, t_dims), (kf, _, s_dims), (vf, _, _) = flat(q_in), flat(k_in), flat(v_in)
    q, k, v = project(qf, "query"), project(kf, "key"), project(vf, "value")
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(key_dim)        # (G, h, T, S)
    if mask is not None:
        full = np.broadcast_to(mask, lead + t_dims + s_dims)
        logits = np.where(full.reshape(logits.shape[0], 1, *logits.shape[2:]), logits, -np.inf)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    heads = a @ v                                                    # (G, h, T, dv)
    if gate:
        heads = heads / (1.0 + np.exp(-project(qf, "gate")))
    kernel, bias = w["output"]
    out = np.tensordot(heads.transpose(0, 2, 1, 3), kernel, axes=2) + bias   # (G, T, *out)
    out = out.reshape(lead + t_dims + kernel.shape[2:])
    back = list(np.argsort(order)) + list(range(rank - 1, out.ndim))
    return out.transpose(back), a.reshape(lead + (a.shape[1],) + t_dims + s_dims)


NUMPY_CASES = {
    "gate_padding": dict(shapes=[(B, T, 6), (B, S, 5)], mask=(B, T, S), layer=dict(use_gate=True)),
    "axes_4d_last": dict(shapes=[(B, 3, 4, 6), (B, 3, 5, 5)], mask=(B, 3, 4, 5),
                         layer=dict(attention_axes=-2)),
    "axes_4d_first": dict(shapes=[(B, 4, 3, 6), (B, 5, 3, 5)], mask=(B, 3, 4, 5),
                          layer=dict(attention_axes=1)),
    "axes_2d_image_gate": dict(shapes=[(B, 3, 4, 6), (B, 2, 5, 6)], mask=(B, 3, 4, 2, 5),
                               layer=dict(attention_axes=(1, 2), use_gate=True)),
    "axes_2d_reversed": dict(shapes=[(B, 3, 4, 6), (B, 2, 5, 6)], mask=(B, 4, 3, 5, 2),
                             layer=dict(attention_axes=(2, 1))),
    "axes_5d_2d_output_shape": dict(shapes=[(B, 2, 3, 4, 6), (B, 2, 3, 2, 5)],
                                    mask=(B, 2, 3, 4, 3, 2),
                                    layer=dict(attention_axes=(2, 3), output_shape=(2, 3))),
}


@pytest.mark.parametrize("case", list(NUMPY_CASES))
def test_general_formulas_match_numpy(case):
    spec = NUMPY_CASES[case]
    q, v = kt.random_inputs(*spec["shapes"], seed=8, dtype="float64")
    mask = _padding_mask(spec["mask"])
    layer = MultiHeadAttention(2, 3, value_dim=2, dtype="float64",
                               bias_initializer="random_normal", **spec["layer"])
    y, scores = layer(q, v, attention_mask=mask, return_attention_scores=True)
    y_np, scores_np = numpy_attention(q, v, layer.get_weights(), 3,
                                      spec["layer"].get("attention_axes"), mask,
                                      spec["layer"].get("use_gate", False))
    np.testing.assert_allclose(y, y_np, atol=kt.float64_atol(1e-12))
    np.testing.assert_allclose(scores, scores_np, atol=kt.float64_atol(1e-12))


@pytest.mark.parametrize("causal", [False, True])
def test_sliding_window_matches_numpy_band(causal):
    """sliding_window=w is the mask |i - j| < w (and j <= i with the causal mask)."""
    q = kt.random_inputs((B, 6, 5), seed=9, dtype="float64")
    layer = MultiHeadAttention(2, 3, sliding_window=3, dtype="float64",
                               bias_initializer="random_normal")
    y, scores = layer(q, q, use_causal_mask=causal, return_attention_scores=True)
    i, j = np.indices((6, 6))
    band = (np.abs(i - j) < 3) & ((j <= i) if causal else True)
    y_np, scores_np = numpy_attention(q, q, layer.get_weights(), 3, mask=band[None])
    np.testing.assert_allclose(y, y_np, atol=kt.float64_atol(1e-12))
    np.testing.assert_allclose(scores, scores_np, atol=kt.float64_atol(1e-12))


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


@kt.jax_subset
def test_gradient_check():
    q, v = kt.random_inputs((1, 2, 3), (1, 3, 2), dtype="float64")
    layer = MultiHeadAttention(2, 2, dtype="float64", bias_initializer="random_normal")
    mask = np.array([[[1, 0, 1], [1, 1, 0]]], bool)
    assert kt.check_gradients(layer, (q, v), attention_mask=mask) < 1e-7
    layer = MultiHeadAttention(2, 2, dtype="float64", bias_initializer="random_normal")
    assert kt.check_gradients(layer, (q, q), use_causal_mask=True) < 1e-7


GRADIENT_CASES = {
    "gate_padding": dict(shapes=[(1, 2, 3), (1, 3, 2)], mask=np.array([[[1, 0, 1], [1, 1, 0]]], bool),
                         layer=dict(use_gate=True)),
    "sliding_window_causal": dict(shapes=[(1, 4, 3), (1, 4, 3)], mask=None, causal=True,
                                  layer=dict(sliding_window=2)),
    "axes_4d_last": dict(shapes=[(1, 2, 2, 3), (1, 2, 3, 2)], mask=_padding_mask((1, 2, 2, 3)),
                         layer=dict(attention_axes=2)),
    "axes_2d_gate": dict(shapes=[(1, 2, 2, 3), (1, 2, 1, 2)], mask=_padding_mask((1, 2, 2, 2, 1)),
                         layer=dict(attention_axes=(1, 2), use_gate=True)),
}


@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_gradient_check_new_arguments(case):
    spec = GRADIENT_CASES[case]
    q, v = kt.random_inputs(*spec["shapes"], dtype="float64", seed=10)
    layer = MultiHeadAttention(2, 2, dtype="float64", bias_initializer="random_normal",
                               **spec["layer"])
    call = {"use_causal_mask": True} if spec.get("causal") else {}
    if spec["mask"] is not None:
        call["attention_mask"] = spec["mask"]
    assert kt.check_gradients(layer, (q, v), **call) < 1e-7


def test_keras_helper_checks(tmp_path):
    q, v = kt.random_inputs((4, T, 6), (4, S, 5))
    kt.run_layer_checks(lambda: MultiHeadAttention(2, 3, value_dim=2), (q, v), tmp_path,
                        expected_output_shape=(4, T, 6), trainable=8, non_trainable=0)
    layer = MultiHeadAttention(2, 3, use_bias=False)
    _, scores = kt.check_output_shape(layer, (q, v), return_attention_scores=True)
    assert tuple(scores.shape) == (4, 2, T, S)
    kt.check_weight_counts(layer, trainable=4, non_trainable=0)


def test_keras_helper_checks_new_arguments(tmp_path):
    """Shapes (symbolic too), config, .keras save/reload and a training step."""
    q, v = kt.random_inputs((4, 3, 4, 6), (4, 3, 2, 5))
    kt.run_layer_checks(lambda: MultiHeadAttention(2, 3, attention_axes=(-2,), use_gate=True),
                        (q, v), tmp_path, expected_output_shape=(4, 3, 4, 6), trainable=10,
                        non_trainable=0)
    layer = MultiHeadAttention(2, 3, attention_axes=(1, 2), output_shape=(2, 2))
    _, scores = kt.check_output_shape(layer, (q, v), return_attention_scores=True)
    assert tuple(scores.shape) == (4, 2, 3, 4, 3, 2)
    q3 = kt.random_inputs((4, 5, 6))
    kt.run_layer_checks(lambda: MultiHeadAttention(2, 3, sliding_window=2, use_gate=True,
                                                   use_bias=False),
                        (q3, q3), tmp_path, expected_output_shape=(4, 5, 6), trainable=5,
                        non_trainable=0, use_causal_mask=True)


def test_config_round_trip_new_arguments():
    q, v = kt.random_inputs((2, 3, 4, 6), (2, 3, 2, 5))
    layer = MultiHeadAttention(2, 3, value_dim=4, dropout=0.1, output_shape=[3],
                               attention_axes=-2, sliding_window=5, use_gate=True,
                               activity_regularizer="l2", kernel_constraint="non_neg",
                               bias_constraint="non_neg", kernel_regularizer="l1", seed=3)
    clone = kt.check_config_round_trip(layer, (q, v))
    config = clone.get_config()
    assert (config["attention_axes"], config["sliding_window"], config["use_gate"],
            config["output_shape"]) == ((-2,), 5, True, (3,))
    assert config["activity_regularizer"] is not None
    # Keras's twin reads our config (and we read its).
    theirs = keras.layers.MultiHeadAttention.from_config(config)
    assert MultiHeadAttention.from_config(theirs.get_config()).get_config() == config


def test_activity_regularizer_matches_keras():
    """Keras regularizes the output of every projection (query, key, gate, value, output)."""
    q, v = kt.random_inputs((B, T, 6), (B, S, 5), seed=11)
    ours, theirs = _pair(use_gate=True, activity_regularizer="l2")
    _copy_random(ours, theirs, q, v)
    ours(q, v)
    theirs(q, v)
    assert len(ours.losses) == len(theirs.losses) == 5
    np.testing.assert_allclose(sum(np.asarray(x) for x in ours.losses),
                               sum(np.asarray(x) for x in theirs.losses), rtol=1e-6)


def test_initializers_and_constraints_reach_every_projection():
    layer = MultiHeadAttention(3, 4, use_gate=True, kernel_constraint="non_neg",
                               bias_constraint="non_neg",
                               kernel_initializer=keras.initializers.TruncatedNormal(0.0, 0.02))
    layer.build((2, 4, 4), (2, 4, 4))
    kernels = [w for w in layer.weights if w.path.endswith("_kernel")]
    biases = [w for w in layer.weights if w.path.endswith("_bias")]
    assert len(kernels) == len(biases) == 5
    assert all(isinstance(w.constraint, keras.constraints.NonNeg) for w in kernels + biases)
    flat = [np.asarray(w).ravel()[:12] for w in kernels]  # each has at least 12 entries
    for i in range(len(flat)):
        for j in range(i):
            assert not np.allclose(flat[i], flat[j]), (kernels[i].path, kernels[j].path)


def test_compute_output_shape_high_rank_and_projections():
    layer = MultiHeadAttention(2, 2, value_dim=2, output_shape=(3, 2))
    shapes = ((7, 4, 2, 3, 8), (7, 1, 1, 5, 8), (7, 1, 1, 5, 2))
    y = layer(*[np.ones(s, "float32") for s in shapes])
    assert layer.compute_output_shape(*shapes) == tuple(y.shape) == (7, 4, 2, 3, 3, 2)
    assert layer.compute_output_shape(*[list(s) for s in shapes]) == (7, 4, 2, 3, 3, 2)
    # Symbolic scores: (B, h, T..., S...) with S from the value, not the query.
    qi, vi = keras.Input((4, 2, 3, 8)), keras.Input((1, 1, 5, 8))
    _, scores = MultiHeadAttention(2, 2)(qi, vi, return_attention_scores=True)
    assert tuple(scores.shape) == (None, 2, 4, 2, 3, 1, 1, 5)


def test_xla_matches_plain():
    q = kt.random_inputs((B, T, 6))
    kt.check_xla(MultiHeadAttention(2, 3), (q, q), use_causal_mask=True)


def test_xla_matches_plain_new_arguments():
    q, v = kt.random_inputs((B, 3, 4, 6), (B, 2, 5, 6))
    kt.check_xla(MultiHeadAttention(2, 3, attention_axes=(1, 2), use_gate=True), (q, v),
                 attention_mask=_padding_mask((B, 3, 4, 2, 5)))
    q = kt.random_inputs((B, 6, 6))
    kt.check_xla(MultiHeadAttention(2, 3, sliding_window=2), (q, q), use_causal_mask=True)


def _quantizable(**kwargs):
    """A functional model around MultiHeadAttention(2, 3) and Keras's twin, same weights."""
    def make(cls):
        qi, vi = keras.Input((T, 6)), keras.Input((S, 5))
        return keras.Model([qi, vi], cls(2, 3, **kwargs)(qi, vi))
    ours, theirs = make(MultiHeadAttention), make(keras.layers.MultiHeadAttention)
    rng = np.random.default_rng(0)
    theirs.set_weights([rng.normal(scale=0.5, size=w.shape) for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _quantize(model, *args, **kwargs):
    """model.quantize(...), checking that it did not skip our layer with a warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.quantize(*args, **kwargs)
    # Keras skips layers without quantize() (InputLayer; Dropout, Softmax inside its twin).
    assert not [w for w in caught if "MultiHeadAttention" in str(w.message)], caught


@pytest.mark.parametrize("kwargs", [{}, {"use_gate": True, "output_shape": (2, 3)}])
def test_int8_quantization_matches_keras(kwargs, tmp_path):
    q, v = kt.random_inputs((B, T, 6), (B, S, 5), seed=12)
    ours, theirs = _quantizable(**kwargs)
    y_float = ours.predict([q, v], verbose=0)
    _quantize(ours, "int8")
    _quantize(theirs, "int8")
    layer = ours.layers[-1]
    assert layer.dtype_policy.name == "int8_from_float32"
    kernels = [w for w in layer.weights if w.path.endswith("_kernel")]
    assert len(kernels) == (5 if kwargs else 4) and all(w.dtype == "int8" for w in kernels)
    y = ours.predict([q, v], verbose=0)
    np.testing.assert_allclose(y, theirs.predict([q, v], verbose=0), atol=1e-5)
    assert 0 < np.abs(y - y_float).max() < 0.1  # really quantized, and close
    path = str(tmp_path / "int8.keras")
    ours.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.layers[-1].dtype_policy.name == "int8_from_float32"
    np.testing.assert_allclose(reloaded.predict([q, v], verbose=0), y, atol=1e-6)


def test_int8_weight_only_config_matches_keras(tmp_path):
    q, v = kt.random_inputs((B, T, 6), (B, S, 5), seed=13)
    ours, theirs = _quantizable()
    config = keras.quantizers.Int8QuantizationConfig(activation_quantizer=None)
    _quantize(ours, config=config)
    _quantize(theirs, config=keras.quantizers.Int8QuantizationConfig(activation_quantizer=None))
    y = ours.predict([q, v], verbose=0)
    np.testing.assert_allclose(y, theirs.predict([q, v], verbose=0), atol=1e-5)
    path = str(tmp_path / "int8_weights_only.keras")
    ours.save(path)  # the config (no activation quantizer) travels with the layer
    np.testing.assert_allclose(keras.models.load_model(path).predict([q, v], verbose=0), y,
                               atol=1e-6)


def test_int8_quantized_layer_still_trains():
    """Kernels frozen in int8; biases train; gradients reach the inputs (straight through)."""
    q, v = kt.random_inputs((B, T, 6), (B, S, 5), seed=14)
    ours, _ = _quantizable()
    _quantize(ours, "int8")
    layer = ours.layers[-1]
    assert [w.path.rsplit("/", 1)[-1] for w in layer.trainable_weights] == [
        "query_bias", "key_bias", "value_bias", "output_bias"]
    frozen = [np.array(w) for w in layer.non_trainable_weights]
    args = [keras.ops.convert_to_tensor(q), keras.ops.convert_to_tensor(v)]
    _, grads = kt.loss_and_gradients(layer, args)
    assert all(g is not None and np.abs(np.asarray(g)).max() > 0 for g in grads)
    ours.compile(optimizer="sgd", loss="mse")
    ours.fit([q, v], np.zeros((B, T, 6), "float32"), verbose=0)
    for w, old in zip(layer.non_trainable_weights, frozen, strict=True):
        np.testing.assert_array_equal(w, old)


def test_quantization_modes_other_than_int8_are_refused():
    ours, _ = _quantizable()
    for mode in ("int4", "float8"):
        with pytest.raises(ValueError, match="only int8"):
            _quantize(ours, mode)
    assert ours.layers[-1].quantization_mode is None  # still float, nothing half done
    with pytest.raises(ValueError, match="only int8"):
        MultiHeadAttention(2, 3, dtype="int4_from_float32").build((2, 3, 4), (2, 3, 4))


def test_invalid_arguments():
    for name, kwargs in [("argument `num_heads`", dict(num_heads=0, key_dim=2)),
                         ("argument `num_heads`", dict(num_heads=1.5, key_dim=2)),
                         ("argument `key_dim`", dict(num_heads=2, key_dim=-1)),
                         ("argument `value_dim`", dict(num_heads=2, key_dim=2, value_dim=0)),
                         ("argument `dropout`", dict(num_heads=2, key_dim=2, dropout=1.5)),
                         ("argument `sliding_window`",
                          dict(num_heads=2, key_dim=2, sliding_window=0)),
                         ("Invalid `output_shape`", dict(num_heads=2, key_dim=2, output_shape=(0,))),
                         ("Invalid `output_shape`", dict(num_heads=2, key_dim=2, output_shape=8.0)),
                         ("`attention_axes` must be", dict(num_heads=2, key_dim=2,
                                                           attention_axes="1")),
                         ("`flash_attention=True`", dict(num_heads=2, key_dim=2,
                                                         flash_attention=True))]:
        with pytest.raises(ValueError, match=name):
            MultiHeadAttention(**kwargs)
    with pytest.raises(ValueError, match="query"):
        MultiHeadAttention(2, 2).build((2, 3), (2, 3, 4))


@pytest.mark.parametrize("shapes, kwargs, message", [
    # Keras's test_shape_mismatch_error cases.
    (((2, 4, 8), (2, 2, 7), (2,)), {}, "`key` and `value` must be equal"),
    (((2, 4, 8), (2, 2, 8), (2, 1, 7)), {}, "`key` and `value` must be equal"),
    (((2, 4, 2, 3, 8), (2, 1, 1, 5, 8), (2, 1, 15, 5, 2)), {}, "`key` and `value` must be equal"),
    (((2, 3, 4, 8), (2, 2, 5, 8), None), {"attention_axes": 2},
     r"`query` and `value` must be equal in the batch axis and the axes outside"),
    (((2, 3, 8), (2, 3, 4, 8), None), {}, "same rank"),
    (((2, 3, 4, 8), (2, 3, 4, 8), None), {"attention_axes": 3}, "`attention_axes` must be"),
    (((2, 3, 4, 8), (2, 3, 4, 8), None), {"attention_axes": (1, -3)}, "`attention_axes` must be"),
    (((2, 3, 4, 8), (2, 3, 4, 8), None), {"attention_axes": (1, 2), "sliding_window": 2},
     "`sliding_window` needs exactly one attention axis"),
])
def test_shape_errors_are_clear(shapes, kwargs, message):
    """One clear ValueError, from compute_output_shape and from the call (not from a matmul)."""
    layer = MultiHeadAttention(4, 2, value_dim=2, **kwargs)
    with pytest.raises(ValueError, match=message):
        layer.compute_output_shape(*shapes)
    with pytest.raises(ValueError, match=message):
        layer(*[np.ones(s, "float32") for s in shapes if s is not None])


def test_call_errors_are_clear():
    x = np.ones((2, 3, 4, 8), "float32")
    with pytest.raises(ValueError, match="`use_causal_mask` needs exactly one attention axis"):
        MultiHeadAttention(2, 2)(x, x, use_causal_mask=True)
    with pytest.raises(ValueError, match="`attention_mask` has rank 6"):
        MultiHeadAttention(2, 2, attention_axes=2)(x, x, attention_mask=np.ones((2, 3, 1, 1, 4, 4)))


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
