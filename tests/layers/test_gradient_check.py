"""Tests for layers.gradient_check: it passes correct gradients and fails wrong ones."""

import keras
import numpy as np
import pytest
from keras import ops

from layers.gradient_check import gradient_check, gradient_check_layer
from tests import keras_testing as kt

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("fn, shape", [
    (lambda x: ops.sum(x ** 3), (3, 2)),
    pytest.param(lambda x: ops.sum(ops.sin(x) * ops.exp(0.3 * x)), (5,),
                 marks=kt.exact_float64("ops.sin")),
    (lambda x: ops.sum(ops.softmax(x) * ops.arange(4, dtype=x.dtype)), (2, 4)),
    (lambda x: ops.log(ops.sum(ops.exp(x))), (7,)),
    (lambda x: ops.det(x), (3, 3)),
])
@kt.jax_subset
def test_correct_gradients_pass(fn, shape):
    x = RNG.normal(size=shape)
    assert gradient_check(fn, x) < 1e-7


def test_list_of_inputs_and_float32_inputs_are_cast():
    seen = []

    def fn(xs):
        seen.append([keras.backend.standardize_dtype(t.dtype) for t in xs])
        w, b, x = xs
        return ops.sum(ops.sigmoid(ops.matmul(x, w) + b) ** 2)

    inputs = [RNG.normal(size=(3, 2)).astype(np.float32),
              ops.convert_to_tensor(RNG.normal(size=(2,)), "float32"),
              RNG.normal(size=(4, 3))]
    assert gradient_check(fn, inputs) < 1e-7
    assert all(d == "float64" for dtypes in seen for d in dtypes)
    # One automatic pass plus two evaluations per coordinate (6 + 2 + 12 = 20).
    assert len(seen) == 1 + 2 * 20


def _wrong_square():
    @ops.custom_gradient
    def square(x):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            return upstream * 2.2 * x  # should be 2 x
        return x * x, grad
    return square


@kt.jax_subset
def test_wrong_gradient_fails():
    square = _wrong_square()
    x = RNG.normal(size=(4,))
    diff = gradient_check(lambda t: ops.sum(square(t)), x)
    assert diff > 1e-3
    # Also when the wrong piece is one input among several.
    diff = gradient_check(lambda ts: ops.sum(square(ts[0])) + ops.sum(ts[1] ** 2),
                          [x, RNG.normal(size=(3,))])
    assert diff > 1e-3


@kt.jax_subset
def test_missing_gradient_fails():
    # stop_gradient hides a dependency: autodiff sees zero, finite differences don't.
    diff = gradient_check(lambda x: ops.sum(ops.stop_gradient(x) * x), RNG.normal(size=(3,)))
    assert diff > 1e-3


def test_zero_gradient_is_zero_difference():
    assert gradient_check(lambda x: ops.convert_to_tensor(1.0, "float64"), np.ones(3)) == 0.0


@pytest.mark.parametrize("inputs, fn, match", [
    ([], lambda x: x, "empty"),
    ((), lambda x: x, "empty"),
    (np.zeros((0, 3)), lambda x: ops.sum(x), "no elements"),
    (np.ones(3), lambda x: x * 2.0, "scalar"),
    (np.ones(3), lambda x: ops.sum(x, keepdims=True), "scalar"),
    (np.ones(3), lambda x: ops.convert_to_tensor(1), "floating"),
])
def test_bad_input_raises(inputs, fn, match):
    with pytest.raises(ValueError, match=match):
        gradient_check(fn, inputs)


def test_bad_epsilon_raises():
    with pytest.raises(ValueError, match="epsilon"):
        gradient_check(lambda x: ops.sum(x), np.ones(2), epsilon=0.0)


def test_layer_weights_pass_and_wrong_layer_fails():
    dense = keras.layers.Dense(3, activation="sigmoid", dtype="float64")
    x = RNG.normal(size=(4, 2))
    assert gradient_check_layer(dense, x) < 1e-7
    assert gradient_check_layer(dense, x, check_inputs=True,
                                loss=lambda y: ops.sum(ops.exp(y))) < 1e-7
    # The check must not modify the layer's weights.
    before = [w.copy() for w in dense.get_weights()]
    gradient_check_layer(dense, x)
    for a, b in zip(before, dense.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    class BadDense(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 2), initializer="glorot_uniform")

        def call(self, x):
            return _wrong_square()(ops.matmul(x, self.w))

    assert gradient_check_layer(BadDense(dtype="float64"), x) > 1e-3


@kt.exact_float64("Keras's BatchNormalization (ops.mean)")
def test_layer_closure_with_non_trainable_state():
    bn = keras.layers.BatchNormalization(dtype="float64")
    x = RNG.normal(size=(6, 3))
    bn(x, training=True)
    assert gradient_check_layer(bn, x, training=True) < 1e-7
    assert gradient_check_layer(bn, x, training=False, check_inputs=True) < 1e-7


def test_layer_float32_and_no_weights_raise():
    with pytest.raises(ValueError, match="float64"):
        gradient_check_layer(keras.layers.Dense(2), np.ones((2, 2)))
    with pytest.raises(ValueError, match="no trainable"):
        gradient_check_layer(keras.layers.ReLU(dtype="float64"), np.ones((2, 2)))


def test_compiled_fn():
    traces = []

    @kt._jit_plain  # tf.function(jit_compile=False) or jax.jit: traced once
    def fn(x):
        traces.append(1)
        return ops.sum(ops.sigmoid(x) ** 3)

    assert gradient_check(fn, RNG.normal(size=(3, 3))) < 1e-7
    assert len(traces) == 1  # one trace for all 2 * 9 + 1 calls
