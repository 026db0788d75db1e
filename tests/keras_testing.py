"""Our small stand-in for Keras's private `keras.src.testing` layer checks.

Plain functions (no `test_` prefix, so pytest does not collect them) that any
test module may import::

    from tests import keras_testing as kt

    layer = MyLayer(units=3)
    x = kt.random_inputs((2, 4, 5))
    kt.check_output_shape(layer, x)              # built, output shape == compute_output_shape
    kt.check_weight_counts(layer, trainable=2, non_trainable=0)
    kt.check_config_round_trip(layer, x)         # get_config/from_config, equal outputs
    kt.check_save_and_reload(layer, x, tmp_path) # .keras save + load_model, equal outputs
    kt.check_training_step(MyLayer(units=3), x)  # compile + fit one step, loss finite, weights move

or all of them at once with `run_layer_checks`. Beyond Keras's helpers:

    kt.check_gradients(float64_layer, x)         # numeric vs autodiff (layers.gradient_check)
    kt.check_xla(layer, x, training=True)        # jit_compile forward+backward == plain
    kt.copy_weights(source_layer, target_layer)  # set_weights with a shape check
    kt.fit_steps(make_model, x, y, strategy)     # compile + fit a few steps (under a strategy)
    kt.loss_and_gradients(layer, args)           # the loss/gradients the two above compare
    kt.value_and_gradients(fn, x, y)             # autodiff of a scalar function, any backend
    @kt.tensorflow_only("why")                   # skip a test on the other backends
    @kt.jax_subset                               # also run by make test under JAX

Conventions:

* `inputs` is one array or a tuple of arrays, passed to the layer
  positionally; `call_kwargs` are extra keyword arguments of the call. Only
  non-tensor keyword arguments (flags like `training`,
  `return_attention_scores`) survive the `.keras` round trip; test tensor
  keyword arguments (masks) separately.
* Outputs may be a tensor or a nest of tensors (e.g. `(outputs, scores)`).
* Every function raises `AssertionError` with a message naming what differs,
  and returns something useful (outputs, the reloaded model, the loss).

For `tf.distribute` checks use the `two_cpu_strategy` fixture of
tests/conftest.py (it gives each strategy fresh collective keys).

Backends: every check runs on TensorFlow and on JAX. The automatic gradients
come from `tf.GradientTape` or `jax.value_and_grad` (through
`layer.stateless_call`); "XLA" is `tf.function(jit_compile=True)` or `jax.jit`.
TensorFlow is imported only on its backend (a GPU host may have JAX alone).
"""

import contextlib
import math
import os
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from layers.gradient_check import gradient_check

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf
elif BACKEND == "jax":
    import jax

__all__ = [
    "random_inputs",
    "as_tuple",
    "check_output_shape",
    "check_weight_counts",
    "check_config_round_trip",
    "check_save_and_reload",
    "check_training_step",
    "run_layer_checks",
    "check_gradients",
    "check_xla",
    "copy_weights",
    "loss_and_gradients",
    "fit_steps",
]


def random_inputs(*shapes, seed=0, dtype="float32", low=-1.0, high=1.0):
    """Uniform random NumPy arrays: one array for one shape, else a tuple."""
    rng = np.random.default_rng(seed)
    arrays = tuple(rng.uniform(low, high, size=shape).astype(dtype) for shape in shapes)
    return arrays[0] if len(arrays) == 1 else arrays


def as_tuple(inputs):
    """`inputs` as a tuple of positional arguments."""
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def _flat_numpy(outputs):
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(outputs)]


def _assert_all_close(actual, expected, atol, what, rtol=0.0, relative_to_max=False):
    """Elementwise |actual - expected| <= atol + rtol * |expected|.

    With `relative_to_max`, atol is multiplied by max(1, max |expected|) of
    each tensor: float32 round-off in a sum scales with its largest terms,
    not with each (possibly tiny) element.
    """
    actual, expected = _flat_numpy(actual), _flat_numpy(expected)
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs vs {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.shape == e.shape, f"{what}: output {i} has shape {a.shape}, expected {e.shape}"
        tol = atol * max(1.0, float(np.max(np.abs(e), initial=0.0))) if relative_to_max else atol
        np.testing.assert_allclose(a, e, atol=tol, rtol=rtol, err_msg=f"{what}: output {i}")


def check_output_shape(layer, inputs, **call_kwargs):
    """Calls `layer` on `inputs` (building it) and checks the output shapes.

    Checks that the concrete output shape equals
    `layer.compute_output_shape(*input_shapes)` (when the layer returns a
    single tensor), and that every output's shape equals the one Keras
    infers when a fresh copy of the layer (from its config) is called on
    symbolic `keras.Input`s with an unknown batch size. Returns the outputs.
    """
    args = as_tuple(inputs)
    outputs = layer(*args, **call_kwargs)
    shapes = [tuple(a.shape) for a in args]
    flat = keras.tree.flatten(outputs)
    if len(flat) == 1:
        expected = tuple(layer.compute_output_shape(*shapes))
        assert tuple(flat[0].shape) == expected, (
            f"{layer.name}: output shape {tuple(flat[0].shape)} != compute_output_shape "
            f"{expected}")
    # Symbolic call on a fresh copy (batch dimension unknown).
    clone = layer.__class__.from_config(layer.get_config())
    symbolic = [keras.Input(shape=a.shape[1:], dtype=str(a.dtype)) for a in args]
    spec = keras.tree.flatten(clone(*symbolic, **call_kwargs))
    assert len(spec) == len(flat), f"{layer.name}: {len(spec)} symbolic outputs vs {len(flat)}"
    for s, o in zip(spec, flat, strict=True):
        assert tuple(s.shape)[1:] == tuple(o.shape)[1:] and s.shape[0] is None, (
            f"{layer.name}: symbolic output shape {tuple(s.shape)} does not match the "
            f"concrete {tuple(o.shape)}")
    return outputs


def check_weight_counts(layer, trainable, non_trainable):
    """Asserts the numbers of trainable and non-trainable weights of a built layer."""
    got = (len(layer.trainable_weights), len(layer.non_trainable_weights))
    assert got == (trainable, non_trainable), (
        f"{layer.name}: (trainable, non-trainable) weights {got}, expected "
        f"{(trainable, non_trainable)}")


def check_config_round_trip(layer, inputs, atol=1e-6, **call_kwargs):
    """`from_config(get_config())` gives an equal config and, weights copied, equal outputs.

    Also serializes through `keras.saving.serialize_keras_object` /
    `deserialize_keras_object` (which needs the class registered). The layer
    is built by calling it if needed. Returns the clone.
    """
    args = as_tuple(inputs)
    expected = layer(*args, **call_kwargs)
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config, (
        f"{layer.name}: config changed in the round trip:\n{config}\n{clone.get_config()}")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config, (
        f"{layer.name}: serialize/deserialize_keras_object did not round-trip (is the class "
        "registered with keras.saving.register_keras_serializable?)")
    clone(*args, **call_kwargs)
    clone.set_weights(layer.get_weights())
    _assert_all_close(clone(*args, **call_kwargs), expected, atol, f"{layer.name} from_config")
    return clone


def _wrap_in_model(layer, args, **call_kwargs):
    symbolic = [keras.Input(shape=a.shape[1:], dtype=str(a.dtype)) for a in args]
    outputs = layer(*symbolic, **call_kwargs)
    return keras.Model(symbolic if len(symbolic) > 1 else symbolic[0], outputs)


def check_save_and_reload(layer, inputs, directory, atol=1e-6, **call_kwargs):
    """Wraps `layer` in a functional Model, saves it as .keras, reloads, compares.

    The reload uses `keras.saving.load_model` without custom objects, so the
    layer must be registered. Predictions (inference mode) of the original
    and reloaded models must agree. Returns the reloaded model.
    """
    args = as_tuple(inputs)
    model = _wrap_in_model(layer, args, **call_kwargs)
    path = os.path.join(str(directory), f"{layer.name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    feed = list(args) if len(args) > 1 else args[0]
    _assert_all_close(reloaded(feed, training=False), model(feed, training=False), atol,
                      f"{layer.name} reloaded from .keras")
    for a, b in zip(reloaded.weights, model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    return reloaded


def check_training_step(layer, inputs, steps=1, learning_rate=0.1, jit_compile=False,
                        expect_non_trainable_change=False, **call_kwargs):
    """Compiles a Model around `layer` and fits it on random targets.

    The first output is regressed (MSE, SGD) onto random targets of its
    shape for `steps` steps (one batch each). Checks that the loss is
    finite, that every trainable weight changed (if the layer has any), and,
    with `expect_non_trainable_change`, that every non-trainable weight
    changed too (e.g. BatchNorm's moving statistics). Returns the last loss.
    """
    args = as_tuple(inputs)
    model = _wrap_in_model(layer, args, **call_kwargs)
    if len(model.outputs) > 1:
        model = keras.Model(model.inputs, model.outputs[0])
    before = [np.array(w) for w in layer.trainable_weights]
    before_nt = [np.array(w) for w in layer.non_trainable_weights]
    first = args[0]
    targets = np.random.default_rng(1).normal(
        size=(first.shape[0],) + tuple(model.outputs[0].shape[1:])).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse",
                  jit_compile=jit_compile)
    feed = list(args) if len(args) > 1 else first
    with warnings.catch_warnings():
        # A weightless layer (e.g. Maxout) still runs in fit; Keras warns about it.
        warnings.filterwarnings("ignore", "The model does not have any trainable weights")
        history = model.fit(feed, targets, batch_size=first.shape[0], epochs=steps,
                            verbose=0, shuffle=False)
    loss = history.history["loss"][-1]
    assert math.isfinite(loss), f"{layer.name}: training loss is {loss}"
    for w, old in zip(layer.trainable_weights, before, strict=True):
        assert not np.array_equal(np.array(w), old), f"{layer.name}: {w.path} did not change"
    if expect_non_trainable_change:
        for w, old in zip(layer.non_trainable_weights, before_nt, strict=True):
            assert not np.array_equal(np.array(w), old), f"{layer.name}: {w.path} did not change"
    return loss


def run_layer_checks(make_layer, inputs, directory, expected_output_shape=None,
                     trainable=None, non_trainable=None, training=True,
                     expect_non_trainable_change=False, seed=0, **call_kwargs):
    """All the checks above on layers from `make_layer()` (a zero-argument factory).

    `expected_output_shape` (optional) is the shape of the (first) output;
    `trainable` / `non_trainable` (optional) the expected weight counts;
    `training=False` skips the training step (layers without weights may
    keep it: then only the loss is checked). The layer for the training step
    is made after `keras.utils.set_random_seed(seed)`.
    """
    layer = make_layer()
    outputs = check_output_shape(layer, inputs, **call_kwargs)
    if expected_output_shape is not None:
        got = tuple(keras.tree.flatten(outputs)[0].shape)
        assert got == tuple(expected_output_shape), (
            f"{layer.name}: output shape {got}, expected {tuple(expected_output_shape)}")
    if trainable is not None or non_trainable is not None:
        check_weight_counts(layer,
                            len(layer.trainable_weights) if trainable is None else trainable,
                            len(layer.non_trainable_weights) if non_trainable is None
                            else non_trainable)
    check_config_round_trip(layer, inputs, **call_kwargs)
    check_save_and_reload(layer, inputs, directory, **call_kwargs)
    if training:
        # Seeded, so that a ReLU unit that happens to start dead (and so
        # legitimately does not move) cannot make the check flaky.
        keras.utils.set_random_seed(seed)
        check_training_step(make_layer(), inputs,
                            expect_non_trainable_change=expect_non_trainable_change,
                            **call_kwargs)
    return outputs


def copy_weights(source, target):
    """`target.set_weights(source.get_weights())`, checking the shapes line up first."""
    src, dst = source.get_weights(), target.get_weights()
    assert [w.shape for w in src] == [w.shape for w in dst], (
        f"weights of {source.name} {[w.shape for w in src]} do not match those of "
        f"{target.name} {[w.shape for w in dst]}")
    target.set_weights(src)


def _weighted_sum_of_squares(outputs):
    """0.5 * sum(c * y^2) over every output, c = 1, 2, 3, ... / mean (position-sensitive)."""
    total = 0.0
    for out in keras.tree.flatten(outputs):
        out = ops.reshape(out, (-1,))
        n = out.shape[0]
        c = ops.arange(1, n + 1, dtype=out.dtype) * ops.cast(2.0 / (n + 1.0), out.dtype)
        total += 0.5 * ops.sum(c * ops.square(out))
    return total


def _jit(fn, jit_compile=True):
    """`fn` traced and compiled once: tf.function (XLA if `jit_compile`) or jax.jit."""
    if BACKEND == "tensorflow":
        return tf.function(fn, jit_compile=jit_compile)
    if BACKEND == "jax":
        return jax.jit(fn) if jit_compile else fn
    return fn


def _is_floating(x):
    return keras.backend.is_float_dtype(x.dtype)


def check_gradients(layer, inputs, check_inputs=True, epsilon=1e-6, **call_kwargs):
    """The gradient check (`layers.gradient_check`) of a float64 layer; returns the difference.

    The scalar is a position-weighted sum of squares of all outputs; the
    gradient is taken with respect to every trainable weight and (with
    `check_inputs`) every floating input. The layer must be float64
    (`dtype="float64"`) and `inputs` float64 arrays; it is built if needed.
    The function runs through `stateless_call` inside one `tf.function`
    (`jax.jit`), so the thousands of finite-difference evaluations stay fast, and the
    layer's variables are never modified. Layers with randomness must be
    called deterministically (e.g. `training=False`, or dropout=0).
    """
    args = [ops.convert_to_tensor(a) for a in as_tuple(inputs)]
    if not layer.built:
        layer(*args, **call_kwargs)
    trainable = list(layer.trainable_variables)
    for v in trainable:
        assert v.dtype == "float64", f"{v.path} is {v.dtype}; check gradients in float64"
    non_trainable = [v.value for v in layer.non_trainable_variables]
    n = len(trainable)
    floating = [i for i, a in enumerate(args) if _is_floating(a)] if check_inputs else []

    @_jit_plain
    def fn(values):
        call_args = list(args)
        for j, i in enumerate(floating):
            call_args[i] = values[n + j]
        outputs, _ = layer.stateless_call(list(values[:n]), non_trainable, *call_args,
                                          **call_kwargs)
        return _weighted_sum_of_squares(outputs)

    values = [v.value for v in trainable] + [args[i] for i in floating]
    assert values, f"{layer.name}: nothing to check (no trainable weights, no inputs)"
    return gradient_check(lambda vs: fn(list(vs)), values, epsilon=epsilon)


def loss_and_gradients(layer, args, **call_kwargs):
    """Loss (weighted sum of squares of the outputs) and its gradients wrt inputs and weights.

    The gradients are listed for every input (None for an integer one) and then
    every trainable weight. The layer's non-trainable state (e.g. moving
    statistics) is updated as by a call.
    """
    loss, grads, state = _loss_gradients_state(layer, args, **call_kwargs)
    _assign_state(layer, state)
    return loss, grads


def _assign_state(layer, state):
    if state is not None:
        for v, value in zip(layer.non_trainable_variables, state, strict=True):
            v.assign(value)


def _loss_gradients_state(layer, args, **call_kwargs):
    """`loss_and_gradients` that can run under `jax.jit`: (loss, gradients, new state).

    On JAX the layer runs through `stateless_call` and its new non-trainable
    state is returned, for the caller to assign outside the jit; on TensorFlow
    the layer updates its variables itself and the state is None.
    """
    if BACKEND == "tensorflow":
        with tf.GradientTape() as tape:
            tape.watch(args)
            loss = _weighted_sum_of_squares(layer(*args, **call_kwargs))
        return loss, tape.gradient(loss, list(args) + list(layer.trainable_variables)), None
    floating = [i for i, a in enumerate(args) if _is_floating(a)]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def fn(inputs, weights):
        call_args = list(args)
        for i, x in zip(floating, inputs, strict=True):
            call_args[i] = x
        outputs, state = layer.stateless_call(weights, non_trainable, *call_args,
                                              **call_kwargs)
        return _weighted_sum_of_squares(outputs), state

    (loss, state), (input_grads, weight_grads) = jax.value_and_grad(
        fn, argnums=(0, 1), has_aux=True)([args[i] for i in floating],
                                          [v.value for v in layer.trainable_variables])
    grads = [None] * len(args)
    for i, g in zip(floating, input_grads, strict=True):
        grads[i] = g
    return loss, grads + list(weight_grads), state


def _jit_plain(fn):
    return _jit(fn, jit_compile=False) if BACKEND == "tensorflow" else _jit(fn)


def check_xla(layer, inputs, atol=1e-5, rtol=1e-5, **call_kwargs):
    """Forward + backward under `tf.function(jit_compile=True)` equals the plain run.

    On JAX: under `jax.jit` against op-by-op (eager) execution.

    Compares the loss, the gradients with respect to the (floating) inputs
    and the trainable weights, and the non-trainable weights after the call
    (e.g. BatchNorm's moving statistics updated in training mode), to
    `atol * max(1, max |plain|) + rtol * |plain|` per tensor. The layer is
    built first; its non-trainable state is restored between the two runs.
    Returns the XLA results.
    """
    args = [ops.convert_to_tensor(a) for a in as_tuple(inputs)]
    if not layer.built:
        layer(*args, **call_kwargs)
    state = [np.array(v) for v in layer.non_trainable_weights]

    def run(jit):
        for v, s in zip(layer.non_trainable_weights, state, strict=True):
            v.assign(s)
        step = (_jit if jit else _jit_eager)(
            lambda *a: _loss_gradients_state(layer, a, **call_kwargs))
        loss, grads, new_state = step(*args)
        _assign_state(layer, new_state)
        return [loss] + [g for g in grads if g is not None], [
            np.array(v) for v in layer.non_trainable_weights]

    plain, plain_state = run(False)
    xla, xla_state = run(True)
    _assert_all_close(xla, plain, atol, f"{layer.name} XLA loss/gradients", rtol,
                      relative_to_max=True)
    _assert_all_close(xla_state, plain_state, atol, f"{layer.name} XLA non-trainable weights",
                      rtol, relative_to_max=True)
    return xla


def _jit_eager(fn):
    """The plain run of `check_xla`: a tf.function without XLA, or JAX op by op."""
    return tf.function(fn, jit_compile=False) if BACKEND == "tensorflow" else fn


def value_and_gradients(fn, *args):
    """(fn(*args), [d fn / d arg for each arg]) for a scalar `fn` of tensors, on any backend.

    `tf.GradientTape` on TensorFlow (unconnected gradients are zero), `jax.value_and_grad`
    on JAX. The gradients come back as NumPy arrays.
    """
    args = [ops.convert_to_tensor(a) for a in args]
    if BACKEND == "tensorflow":
        with tf.GradientTape() as tape:
            tape.watch(args)
            value = fn(*args)
        grads = tape.gradient(value, args, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    else:
        value, grads = jax.value_and_grad(lambda a: fn(*a))(args)
    return value, [ops.convert_to_numpy(g) for g in grads]


#: Marks the representative subset that `make test` also runs under KERAS_BACKEND=jax
#: (`pytest -m jax`), and bench/gpu.sh on a GPU: Keras twins, NumPy transcriptions,
#: gradient checks and compiled steps of every layer, loss and optimizer.
jax_subset = pytest.mark.jax


def jax_cases(values, chosen):
    """Single-argument `parametrize` values, those in `chosen` marked `jax_subset`."""
    assert set(chosen) <= set(values), set(chosen) - set(values)
    return [pytest.param(v, marks=jax_subset) if v in chosen else v for v in values]


# Keras's JAX backend computes some ops of float64 tensors in float32 (ops.mean,
# ops.var, ops.tanh, the trigonometric ops: its result_type maps float64 to
# float32 off TensorFlow, following JAX's 32-bit default), so on JAX a float64
# layer that uses them is exact only to float32 round-off.
_FLOAT32_INSIDE = ("Keras's JAX backend computes ops.mean, ops.var, ops.tanh and the "
                   "trigonometric ops of float64 tensors in float32")


def float64_atol(atol):
    """`atol` for a float64 comparison with NumPy: as given on TensorFlow, float32 round-off
    (1e-6, for values of order 1) on JAX (see _FLOAT32_INSIDE)."""
    return atol if BACKEND == "tensorflow" else max(atol, 1e-6)


def exact_float64(what="the float64 gradient check"):
    """A pytest mark that runs a float64-exact check on TensorFlow only, with the reason."""
    return pytest.mark.skipif(BACKEND != "tensorflow",
                              reason=f"{what} needs exact float64: {_FLOAT32_INSIDE}")


def tensorflow_only(reason):
    """A pytest mark that skips a test on the other backends, with the reason."""
    return pytest.mark.skipif(BACKEND != "tensorflow", reason=f"TensorFlow only: {reason}")


def fit_steps(make_model, x, y, strategy=None, steps=2, learning_rate=0.1, jit_compile=False):
    """Builds `make_model()` (inside `strategy.scope()` if given), compiles it
    with SGD and MSE, fits `steps` batches of `len(x) // steps` examples in
    order (no shuffling) and returns the model. Used to compare a layer
    trained under a `tf.distribute` strategy with its twin or with one device.
    """
    first = x[0] if isinstance(x, (list, tuple)) else x
    batch = first.shape[0] // steps
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = make_model()
        model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse",
                      jit_compile=jit_compile)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    return model
