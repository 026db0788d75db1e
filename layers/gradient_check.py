"""Gradient checking: automatic gradients against centred finite differences.

For a scalar function f of the inputs theta (all coordinates of all input
tensors, flattened and concatenated), the automatic gradient g = df/dtheta
(from `tf.GradientTape` on the TensorFlow backend, `jax.grad` on JAX) is
compared, coordinate by coordinate, with the centred difference

    g_approx[i] = (f(theta + eps * e_i) - f(theta - eps * e_i)) / (2 * eps)

and the check returns the relative difference

    difference = ||g - g_approx||_2 / (||g||_2 + ||g_approx||_2)

(0 when both gradients are exactly zero). In float64 with eps = 1e-6 a correct
gradient gives a difference well below 1e-7; a wrong one gives something of
order 1e-3 to 1. Functions with kinks (ReLU, max, hinge) must be checked at
points at least a few eps away from every kink.

Two entry points:

* `gradient_check(fn, inputs)` for any function of one or several tensors.
* `gradient_check_layer(layer, x, loss=None)` for the trainable weights of a
  Keras layer (and optionally its input), through `layer.stateless_call`, so
  the weights are passed as plain tensors and nothing is assigned.

A weight check can also be written by hand with a closure, e.g.::

    w = [v.value for v in layer.trainable_variables]
    def fn(ws):
        y, _ = layer.stateless_call(ws, [v.value for v in
                                         layer.non_trainable_variables], x)
        return keras.ops.sum(y ** 2)
    gradient_check(fn, w)

On JAX the check runs in float64 only with 64-bit types enabled
(`JAX_ENABLE_X64=1`, or `jax.config.update("jax_enable_x64", True)` before any
array is made); without them it raises instead of checking in float32.
"""

import keras
import numpy as np
from keras import ops

__all__ = ["gradient_check", "gradient_check_layer"]


def _to_float64_list(inputs):
    """Returns (list of float64 NumPy arrays, whether a single tensor was given)."""
    single = not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    if not items:
        raise ValueError("gradient_check: `inputs` is empty; expected a tensor or a "
                         "non-empty list of tensors.")
    arrays = []
    for i, item in enumerate(items):
        if item is None:
            raise ValueError(f"gradient_check: `inputs[{i}]` is None; expected a tensor.")
        value = item.numpy() if hasattr(item, "numpy") else item
        array = np.array(value, dtype=np.float64)
        if array.size == 0:
            raise ValueError(f"gradient_check: `inputs[{i}]` has no elements "
                             f"(shape {array.shape}); expected a non-empty tensor.")
        arrays.append(array)
    return arrays, single


def _scalar(value):
    """Checks that `value` is a scalar tensor and returns it as a float64 tensor."""
    value = ops.convert_to_tensor(value)
    if len(value.shape) != 0:
        raise ValueError("gradient_check: `fn` must return a scalar (a rank-0 tensor); "
                         f"it returned shape {list(value.shape)}. Reduce it, e.g. "
                         "with keras.ops.sum.")
    if not keras.backend.is_float_dtype(value.dtype):
        raise ValueError(f"gradient_check: `fn` must return a floating scalar; "
                         f"it returned dtype {keras.backend.standardize_dtype(value.dtype)}.")
    return ops.cast(value, "float64")


def _float64_tensors(arrays):
    """The float64 arrays as tensors of the backend (float64 must survive on JAX)."""
    tensors = [ops.convert_to_tensor(a, dtype="float64") for a in arrays]
    if tensors and keras.backend.standardize_dtype(tensors[0].dtype) != "float64":
        raise ValueError("gradient_check: the backend made float32 of the float64 inputs; on "
                         "JAX enable 64-bit types first (JAX_ENABLE_X64=1, or "
                         "jax.config.update('jax_enable_x64', True)).")
    return tensors


def _value_and_gradients(fn, tensors, single):
    """(fn(tensors) as a float64 scalar, the gradients wrt tensors; unconnected ones zero)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            value = _scalar(fn(tensors[0] if single else tensors))
        return value, tape.gradient(value, tensors,
                                    unconnected_gradients=tf.UnconnectedGradients.ZERO)
    if backend == "jax":
        import jax

        return jax.value_and_grad(lambda ts: _scalar(fn(ts[0] if single else ts)))(tensors)
    raise NotImplementedError(f"gradient_check: the {backend} backend is not supported "
                              "(TensorFlow and JAX are).")


def gradient_check(fn, inputs, epsilon=1e-6):
    """Relative difference between automatic and numeric gradients of `fn`.

    Args:
      fn: a function mapping the inputs to a scalar (rank-0) floating tensor.
        It is called with one tensor when `inputs` is a single tensor, and with
        a list of tensors when `inputs` is a list or tuple. It is called
        2 * (number of input coordinates) + 1 times, always with tensors of
        the same shapes and dtypes, so wrapping it in `tf.function` (no
        retracing; `jax.jit` on JAX) speeds up checks of larger inputs.
      inputs: a tensor (or array) or a non-empty list/tuple of them. Every input
        is cast to float64 first (so integer and float32 inputs are checked in
        float64 too; `fn` must accept float64 tensors).
      epsilon: the finite-difference step eps.

    Returns:
      A Python float, ||g - g_approx||_2 / (||g||_2 + ||g_approx||_2), where g is
      the automatic gradient (missing gradients count as zero) and
      g_approx[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps). Below 1e-7
      means the gradient is correct.

    Raises:
      ValueError: if `inputs` is empty, or `fn` does not return a floating
        scalar, or `epsilon` is not positive.
    """
    if not epsilon > 0:
        raise ValueError(f"gradient_check: `epsilon` must be positive; got {epsilon}.")
    arrays, single = _to_float64_list(inputs)

    def call(values):
        tensors = _float64_tensors(values)
        return ops.convert_to_numpy(_scalar(fn(tensors[0] if single else tensors)))

    # Automatic gradient.
    _, grads = _value_and_gradients(fn, _float64_tensors(arrays), single)
    g = np.concatenate([np.asarray(ops.convert_to_numpy(gr), np.float64).ravel()
                        for gr in grads])

    # Centred finite differences, one coordinate at a time.
    approx = []
    for k, base in enumerate(arrays):
        for i in range(base.size):
            values = list(arrays)
            plus, minus = base.copy(), base.copy()
            plus.flat[i] += epsilon
            minus.flat[i] -= epsilon
            values[k] = plus
            f_plus = call(values)
            values[k] = minus
            f_minus = call(values)
            approx.append((f_plus - f_minus) / (2.0 * epsilon))
    g_approx = np.asarray(approx, np.float64)

    denominator = np.linalg.norm(g) + np.linalg.norm(g_approx)
    if denominator == 0.0:
        return 0.0
    return float(np.linalg.norm(g - g_approx) / denominator)


def _default_loss(outputs):
    """0.5 * sum of squares of every output tensor, weighted by position.

    The weights (1, 2, 3, ... over the flattened outputs, scaled to mean 1)
    keep the check sensitive to errors that a plain sum would cancel.
    """
    total = ops.convert_to_tensor(0.0, dtype="float64")
    for out in keras.tree.flatten(outputs):
        out = ops.reshape(ops.cast(out, "float64"), (-1,))
        n = out.shape[0]
        weights = ops.arange(1, n + 1, dtype="float64") * (2.0 / (n + 1.0))
        total += 0.5 * ops.sum(weights * out * out)
    return total


def gradient_check_layer(layer, x, loss=None, epsilon=1e-6, check_inputs=False,
                         **call_kwargs):
    """Gradient check of `loss(layer(x))` with respect to the layer's weights.

    The layer must compute in float64: create it with `dtype="float64"` (a
    float32 layer raises a ValueError instead of being checked at too low a
    precision). An unbuilt layer is built by calling it on `x`. Floating `x` is
    cast to float64; integer `x` (token ids) is passed unchanged.

    The weights enter as tensors through `layer.stateless_call`, so the layer's
    variables are never modified. Non-trainable weights (e.g. moving
    statistics) are held fixed. Layers with randomness (dropout) must be called
    deterministically, e.g. `training=False` in `call_kwargs`.

    Args:
      layer: a Keras layer with float64 weights.
      x: the layer's input (a tensor or a nest of tensors).
      loss: a function from the layer's output (nest) to a scalar; defaults to
        a position-weighted 0.5 * sum(y ** 2).
      epsilon: the finite-difference step.
      check_inputs: also check the gradient with respect to `x` (then `x` must
        be a single floating tensor).
      **call_kwargs: passed to the layer call (e.g. `training=False`, `mask=`).

    Returns:
      The relative difference of `gradient_check` over all trainable weights
      (followed by `x` if `check_inputs`).
    """
    def as_float64(t):
        t = ops.convert_to_tensor(t)
        return ops.cast(t, "float64") if keras.backend.is_float_dtype(t.dtype) else t

    x = keras.tree.map_structure(as_float64, x)
    if not layer.built:
        layer(x, **call_kwargs)
    variables = layer.trainable_variables
    for v in variables:
        if v.dtype != "float64":
            raise ValueError(f"gradient_check_layer: layer {layer.name!r} has weight "
                             f"{v.path!r} of dtype {v.dtype}; create the layer with "
                             "dtype='float64' to check its gradients.")
    if not variables and not check_inputs:
        raise ValueError(f"gradient_check_layer: layer {layer.name!r} has no trainable "
                         "weights; pass check_inputs=True to check the input gradient.")
    loss = loss or _default_loss
    non_trainable = [v.value for v in layer.non_trainable_variables]
    n_weights = len(variables)

    def fn(values):
        inputs = values[n_weights] if check_inputs else x
        outputs, _ = layer.stateless_call(list(values[:n_weights]), non_trainable, inputs,
                                          **call_kwargs)
        return loss(outputs)

    values = [v.value for v in variables]
    if check_inputs:
        if not (ops.is_tensor(x) and keras.backend.is_float_dtype(x.dtype)):
            raise ValueError("gradient_check_layer: check_inputs=True needs `x` to be a "
                             "single floating tensor.")
        values.append(x)
    return gradient_check(fn, values, epsilon=epsilon)
