"""SimpleRNN, GRU and LSTM against their Keras twins and NumPy; gradients, XLA, Mirrored."""

import keras
import numpy as np
import pytest
from keras import ops

from layers import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from layers.gradient_check import gradient_check
from tests import keras_testing as kt

ATOL = 1e-5
B, T, D, N = 4, 5, 4, 3

# name -> (ours, Keras's twin, shared arguments)
KINDS = {
    "simple_rnn": (SimpleRNN, keras.layers.SimpleRNN, {}),
    "gru": (GRU, keras.layers.GRU, {"reset_after": False}),
    "gru_reset_after": (GRU, keras.layers.GRU, {"reset_after": True}),
    "lstm": (LSTM, keras.layers.LSTM, {}),
}
CELLS = {"simple_rnn": (SimpleRNNCell, {}), "gru": (GRUCell, {"reset_after": False}),
         "gru_reset_after": (GRUCell, {"reset_after": True}), "lstm": (LSTMCell, {})}
STATES = {"simple_rnn": 1, "gru": 1, "gru_reset_after": 1, "lstm": 2}

# Rows: trailing padding, leading padding, holes, fully masked.
MASK = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], bool)


def _pair(kind, **kwargs):
    ours, theirs, shared = KINDS[kind]
    return ours(N, **shared, **kwargs), theirs(N, **shared, **kwargs)


def _copy_random(ours, theirs, x, seed=0):
    """Builds both on x and gives them the same random weights (Keras's, copied to ours)."""
    theirs(x)
    ours(x)
    rng = np.random.default_rng(seed)
    theirs.set_weights([rng.normal(scale=0.6, size=w.shape) for w in theirs.get_weights()])
    kt.copy_weights(theirs, ours)


def _assert_close(actual, expected, what, atol=ATOL):
    """Every output (a tensor or a nest: output and states) within atol."""
    actual, expected = keras.tree.flatten(actual), keras.tree.flatten(expected)
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs vs {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=atol,
                                   err_msg=f"{what}: output {i}")


def _initial_state(kind, seed=5):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(B, N)).astype("float32") for _ in range(STATES[kind])]


CASES = {
    "last": dict(layer={}, call={}),
    "sequences": dict(layer=dict(return_sequences=True), call={}),
    "backwards_state": dict(layer=dict(go_backwards=True, return_state=True), call={}),
    "backwards_sequences_state": dict(
        layer=dict(go_backwards=True, return_sequences=True, return_state=True), call={}),
    "initial_state": dict(layer=dict(return_sequences=True, return_state=True),
                          call=dict(initial_state=True)),
    "mask_sequences_state": dict(layer=dict(return_sequences=True, return_state=True),
                                 call=dict(mask=True)),
    "mask_backwards": dict(layer=dict(go_backwards=True, return_sequences=True, return_state=True),
                           call=dict(mask=True)),
    # The last output of a sequence whose first steps are masked is zeros until
    # an unmasked step, even with a non-zero initial state (as Keras).
    "mask_initial_state_last": dict(layer=dict(return_state=True),
                                    call=dict(mask=True, initial_state=True)),
    "mask_backwards_initial_state": dict(
        layer=dict(go_backwards=True, return_sequences=True, return_state=True),
        call=dict(mask=True, initial_state=True)),
    "mask_zero_output": dict(layer=dict(return_sequences=True, zero_output_for_mask=True),
                             call=dict(mask=True)),
    "unroll_mask": dict(layer=dict(unroll=True, return_sequences=True), call=dict(mask=True)),
    "unroll_mask_backwards": dict(layer=dict(unroll=True, go_backwards=True,
                                             return_sequences=True, return_state=True),
                                  call=dict(mask=True, initial_state=True)),
}


@pytest.mark.parametrize("case", kt.jax_cases(list(CASES), ["mask_backwards",
                                                    "mask_initial_state_last"]))
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_keras(kind, case):
    spec = CASES[case]
    x = kt.random_inputs((B, T, D), seed=1)
    ours, theirs = _pair(kind, **spec["layer"])
    _copy_random(ours, theirs, x)
    call = {}
    if spec["call"].get("mask"):
        call["mask"] = MASK
    if spec["call"].get("initial_state"):
        call["initial_state"] = _initial_state(kind)
    if kt.BACKEND != "tensorflow" and "initial_state" in call and "mask" in call:
        # Keras's JAX scan loop outputs the initial state at masked steps before
        # the first real one; its TensorFlow loop and its JAX unrolled loop (like
        # ours on every backend) output zeros there: compare with the unrolled twin.
        theirs = _unrolled(theirs)
    y, y_k = ours(x, **call), theirs(x, **call)
    _assert_close(y, y_k, f"{kind} {case}")
    assert ours.count_params() == theirs.count_params()


def _unrolled(layer):
    twin = type(layer).from_config({**layer.get_config(), "unroll": True})
    twin.build((B, T, D))
    twin.set_weights(layer.get_weights())
    return twin


def test_weight_layout_matches_keras():
    for kind in KINDS:
        ours, theirs = _pair(kind, name="rnn")
        ours.build((None, None, D))
        theirs.build((None, None, D))
        assert [w.path for w in ours.weights] == [w.path for w in theirs.weights], kind
        assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights], kind
    # The LSTM's forget-gate bias starts at 1 (unit_forget_bias), as Keras's.
    lstm = LSTM(N)
    lstm.build((None, None, D))
    np.testing.assert_array_equal(lstm.cell.bias.numpy(),
                                  np.r_[np.zeros(N), np.ones(N), np.zeros(2 * N)])


def test_bidirectional_matches_keras():
    x = kt.random_inputs((B, T, D), seed=2)
    for kind in KINDS:
        for return_sequences in (True, False):
            ours, theirs = _pair(kind, return_sequences=return_sequences, return_state=True)
            ours = keras.layers.Bidirectional(ours)
            theirs = keras.layers.Bidirectional(theirs)
            _copy_random(ours, theirs, x, seed=3)
            _assert_close(ours(x, mask=MASK), theirs(x, mask=MASK), f"Bidirectional {kind}")


def test_implicit_masks_match_keras():
    """Masks that Keras passes along: from Embedding(mask_zero=True) and from Masking."""
    ids = np.array([[3, 1, 4, 0, 0], [5, 9, 2, 6, 0], [0, 0, 0, 0, 0]])
    x = kt.random_inputs((3, T, D), seed=4)
    x[0, 3:] = 0.0
    x[1, :2] = 0.0
    for kind, (ours_cls, keras_cls, shared) in KINDS.items():
        models = []
        for cls in (ours_cls, keras_cls):
            tokens, frames = keras.Input((T,), dtype="int32"), keras.Input((T, D))
            embedded = keras.layers.Embedding(10, D, mask_zero=True)(tokens)
            sequence = cls(N, return_sequences=True, **shared)(embedded)
            last = keras.layers.Bidirectional(cls(N, **shared))(keras.layers.Masking()(frames))
            models.append(keras.Model([tokens, frames], [sequence, last]))
        ours, theirs = models
        rng = np.random.default_rng(6)
        theirs.set_weights([rng.normal(scale=0.6, size=w.shape) for w in theirs.get_weights()])
        ours.set_weights(theirs.get_weights())
        _assert_close(ours([ids, x]), theirs([ids, x]), f"implicit masks {kind}")


def test_keras_rnn_of_our_cell_and_keras_config():
    """keras.layers.RNN(our cell) steps our cell; a Keras config loads into ours."""
    x = kt.random_inputs((B, T, D), seed=7)
    for kind in KINDS:
        ours, theirs = _pair(kind, return_sequences=True, go_backwards=True)
        _copy_random(ours, theirs, x)
        cell_class, shared = CELLS[kind]
        stepped = keras.layers.RNN(cell_class(N, **shared), return_sequences=True,
                                   go_backwards=True)
        stepped(x)
        stepped.set_weights(ours.get_weights())
        _assert_close(stepped(x, mask=MASK), ours(x, mask=MASK), f"RNN({kind})")
        # from_config of the Keras twin's config (all its keys) gives the same layer.
        loaded = type(ours).from_config(theirs.get_config())
        loaded(x)
        loaded.set_weights(theirs.get_weights())
        _assert_close(loaded(x), theirs(x), f"{kind} from Keras's config")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_rnn(kind, x, weights):
    """The notes' equations, one example at a time, column vectors, [a<t-1>, x<t>] stacked."""
    kernel, recurrent, bias = weights
    n = recurrent.shape[0]

    def block(k):
        """W_k (n, n + d) acting on [a<t-1>, x<t>], from the Keras-layout kernels."""
        return np.concatenate([recurrent[:, k * n:(k + 1) * n], kernel[:, k * n:(k + 1) * n]]).T

    outputs = np.zeros(x.shape[:2] + (n,))
    for b in range(x.shape[0]):
        a, c = np.zeros(n), np.zeros(n)
        for t in range(x.shape[1]):
            xt = x[b, t]
            if kind == "simple_rnn":                       # a = tanh(Waa a + Wax x + ba)
                a = np.tanh(block(0) @ np.r_[a, xt] + bias)
            elif kind == "gru":
                # Keras's z block is the notes' 1 - Γu: Wu = -Wz, bu = -bz.
                w_u, b_u = -block(0), -bias[:n]
                w_r, b_r = block(1), bias[n:2 * n]
                w_c, b_c = block(2), bias[2 * n:]
                gamma_u = _sigmoid(w_u @ np.r_[a, xt] + b_u)
                gamma_r = _sigmoid(w_r @ np.r_[a, xt] + b_r)
                c_tilde = np.tanh(w_c @ np.r_[gamma_r * a, xt] + b_c)
                a = gamma_u * c_tilde + (1 - gamma_u) * a
            elif kind == "gru_reset_after":                # two biases
                bx, bh = bias
                z = _sigmoid(block(0) @ np.r_[a, xt] + bx[:n] + bh[:n])
                r = _sigmoid(block(1) @ np.r_[a, xt] + bx[n:2 * n] + bh[n:2 * n])
                c_tilde = np.tanh(kernel[:, 2 * n:].T @ xt + bx[2 * n:]
                                  + r * (recurrent[:, 2 * n:].T @ a + bh[2 * n:]))
                a = z * a + (1 - z) * c_tilde
            else:                                          # LSTM, gates u, f, c~, o
                gamma_u = _sigmoid(block(0) @ np.r_[a, xt] + bias[:n])
                gamma_f = _sigmoid(block(1) @ np.r_[a, xt] + bias[n:2 * n])
                c_tilde = np.tanh(block(2) @ np.r_[a, xt] + bias[2 * n:3 * n])
                gamma_o = _sigmoid(block(3) @ np.r_[a, xt] + bias[3 * n:])
                c = gamma_u * c_tilde + gamma_f * c
                a = gamma_o * np.tanh(c)
            outputs[b, t] = a
    return outputs


@pytest.mark.parametrize("kind", list(KINDS))
@kt.jax_subset
def test_matches_numpy_transcription(kind):
    x = kt.random_inputs((2, 4, 3), seed=8, dtype="float64")
    ours_cls, _, shared = KINDS[kind]
    layer = ours_cls(4, return_sequences=True, dtype="float64",
                     bias_initializer="random_normal", **shared)
    layer.build(x.shape)
    expected = numpy_rnn(kind, x, layer.get_weights())
    np.testing.assert_allclose(layer(x), expected, atol=kt.float64_atol(1e-12))


@pytest.mark.parametrize("kind", list(KINDS))
@kt.exact_float64("the gradient check of the tanh recurrences (ops.tanh)")
def test_gradient_check(kind):
    x = kt.random_inputs((2, 3, 2), seed=9, dtype="float64")
    mask = np.array([[1, 0, 1], [0, 1, 1]], bool)
    ours_cls, _, shared = KINDS[kind]

    def make(**kwargs):
        return ours_cls(2, dtype="float64", bias_initializer="random_normal", **shared, **kwargs)

    assert kt.check_gradients(make(return_sequences=True, return_state=True), x,
                              mask=mask) < 1e-7
    assert kt.check_gradients(make(go_backwards=True), x) < 1e-7
    # ... and with respect to the initial state(s).
    layer = make(return_sequences=True, go_backwards=True)
    layer.build(x.shape)
    states = [np.random.default_rng(10 + i).normal(size=(2, 2)) for i in range(STATES[kind])]
    assert gradient_check(
        lambda s: ops.sum(ops.arange(1.0, 13.0, dtype="float64") * ops.reshape(
            layer(x, initial_state=list(s), mask=mask), [-1]) ** 2), states) < 1e-7


@pytest.mark.parametrize("kind", list(KINDS))
def test_dropout_matches_keras_with_the_same_masks(kind, monkeypatch):
    """With the masks fixed, the dropout arithmetic (which gates, which mask) is Keras's."""
    x = kt.random_inputs((B, T, D), seed=11)
    rng = np.random.default_rng(12)
    gates = {"simple_rnn": 1, "gru": 3, "gru_reset_after": 3, "lstm": 4}[kind]
    for recurrent in (0.0, 0.4):
        ours, theirs = _pair(kind, dropout=0.3, recurrent_dropout=recurrent,
                             return_sequences=True, return_state=True)
        _copy_random(ours, theirs, x)
        count = gates if recurrent and kind != "simple_rnn" else 1
        keep = [(rng.random((B, D)) > 0.3) / 0.7 for _ in range(count)]
        keep_h = [(rng.random((B, N)) > 0.4) / 0.6 for _ in range(count)] if recurrent else None
        ours_masks = ([m.astype("float32") for m in keep],
                      keep_h and [m.astype("float32") for m in keep_h])
        monkeypatch.setattr(ours.cell, "_dropout_masks", lambda *_, m=ours_masks: m)
        # Keras caches a cell's masks (one, or a list of one per gate) until the call ends.
        theirs.cell._dropout_mask = ours_masks[0] if count > 1 else ours_masks[0][0]
        theirs.cell._recurrent_dropout_mask = (
            ours_masks[1] if count > 1 or not recurrent else ours_masks[1][0])
        _assert_close(ours(x, training=True), theirs(x, training=True),
                      f"{kind} recurrent_dropout={recurrent}")


def test_dropout_masks_are_fixed_over_time():
    ones = np.ones((64, T, 6), "float32")
    # a<t> = x<t> * m: the same input mask at every step.
    layer = SimpleRNN(6, activation=None, dropout=0.5, return_sequences=True, seed=1,
                      kernel_initializer="identity", recurrent_initializer="zeros")
    y = np.asarray(layer(ones, training=True))
    assert set(np.unique(y)) == {0.0, 2.0}
    np.testing.assert_array_equal(y, np.repeat(y[:, :1], T, axis=1))
    np.testing.assert_array_equal(layer(ones), ones)  # no dropout in inference
    # a<t> = x<t> + a<t-1> * r: with r fixed, a = 1, 1 + r, 1 + r + r^2, ...
    layer = SimpleRNN(6, activation=None, recurrent_dropout=0.5, return_sequences=True, seed=2,
                      kernel_initializer="identity", recurrent_initializer="identity")
    y = np.asarray(layer(ones, training=True))
    r = y[:, 1] - 1.0
    assert set(np.unique(r)) == {0.0, 2.0}
    np.testing.assert_allclose(y[:, 2], 1.0 + r + r * r)
    # GRU/LSTM: one input mask shared by the gates, or one per gate with recurrent dropout.
    for cell, gates in ((GRUCell(N, dropout=0.5, seed=3), 3),
                        (LSTMCell(N, dropout=0.5, seed=3), 4)):
        masks, none = cell._dropout_masks(ones[:, 0], np.ones((64, N), "float32"), True)
        assert len(masks) == 1 and none is None
        cell.recurrent_dropout = 0.5
        masks, rec = cell._dropout_masks(ones[:, 0], np.ones((64, N), "float32"), True)
        assert len(masks) == len(rec) == gates and rec[0].shape == (64, N)
        assert not np.array_equal(masks[0], masks[1])
        assert cell._dropout_masks(ones[:, 0], np.ones((64, N)), False) == (None, None)


@pytest.mark.parametrize("kind", list(KINDS))
def test_keras_helper_checks(kind, tmp_path):
    x = kt.random_inputs((B, T, D), seed=13)
    ours_cls, _, shared = KINDS[kind]
    kt.run_layer_checks(lambda: ours_cls(N, return_sequences=True, dropout=0.1, **shared), x,
                        tmp_path, expected_output_shape=(B, T, N), trainable=3, non_trainable=0)
    # A Bidirectional wrapper with states survives the .keras round trip too.
    kt.check_save_and_reload(keras.layers.Bidirectional(ours_cls(N, return_state=True, **shared)),
                             x, tmp_path)


def test_xla_matches_plain():
    x = kt.random_inputs((B, T, D), seed=14)
    for kind, kwargs in (("simple_rnn", dict(return_sequences=True)),
                         ("gru", dict(go_backwards=True, return_state=True)),
                         ("gru_reset_after", dict(return_sequences=True, return_state=True)),
                         ("lstm", dict(go_backwards=True, return_sequences=True,
                                       return_state=True))):
        ours_cls, _, shared = KINDS[kind]
        kt.check_xla(ours_cls(N, **shared, **kwargs), x, mask=MASK)


@kt.tensorflow_only("a tf.function traced with unknown batch and time sizes")
def test_xla_with_sizes_unknown_when_traced():
    """A step traced with batch and time sizes unknown (a second worker, a model
    built on (None, None, d) inputs) compiles with XLA and equals the plain run."""
    import tensorflow as tf

    x = kt.random_inputs((B, T, D), seed=16)
    layer = LSTM(N, return_sequences=True)
    layer(x)

    def gradients(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) ** 2)
        return tape.gradient(loss, [x, *layer.trainable_variables])

    spec = [tf.TensorSpec([None, None, D], x.dtype)]
    compiled = tf.function(gradients, jit_compile=True, input_signature=spec)(x)
    plain = gradients(tf.constant(x))
    for a, b in zip(compiled, plain, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_mixed_precision_matches_keras():
    x = kt.random_inputs((B, T, D), seed=15)
    ours, theirs = _pair("lstm", return_sequences=True, dtype="mixed_float16")
    _copy_random(ours, theirs, x)
    y = ours(x, mask=MASK)
    assert y.dtype == "float16" and ours.cell.kernel.dtype == "float32"
    np.testing.assert_allclose(np.asarray(y, "float32"),
                               np.asarray(theirs(x, mask=MASK), "float32"), atol=5e-3)


def test_invalid_arguments():
    for kwargs, name in ((dict(units=0), "units"), (dict(units=2, dropout=1.0), "dropout"),
                         (dict(units=2, recurrent_dropout=-0.1), "recurrent_dropout"),
                         (dict(units=2, stateful=True), "stateful")):
        with pytest.raises(ValueError, match=name):
            LSTM(**kwargs)
    with pytest.raises(ValueError, match="reset_after"):
        GRU(2, reset_after="yes")
    x = kt.random_inputs((B, T, D))
    with pytest.raises(ValueError, match="initial state"):
        LSTM(2)(x, initial_state=[np.zeros((B, 2), "float32")])
    with pytest.raises(ValueError, match="unroll"):
        GRU(2, unroll=True)(keras.Input((None, D)))


def test_mirrored_strategy_matches_one_device(two_cpu_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, T, D)).astype("float32")
    x[:4, 3:] = 0.0  # padding that Masking turns into a mask
    y = rng.normal(size=(8, 2)).astype("float32")

    def make():
        keras.utils.set_random_seed(1)
        inputs = keras.Input((T, D))
        h = keras.layers.Masking()(inputs)
        h = keras.layers.Bidirectional(LSTM(3, return_sequences=True))(h)
        h = GRU(3, reset_after=True)(h)
        return keras.Model(inputs, keras.layers.Dense(2)(h))

    mirrored = kt.fit_steps(make, x, y, two_cpu_strategy).get_weights()
    single = kt.fit_steps(make, x, y).get_weights()
    initial = make().get_weights()
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    assert not np.allclose(mirrored[0], initial[0])
