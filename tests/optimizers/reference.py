"""NumPy transcriptions of the optimizer formulas, and shared test fixtures.

Each `*_step(w, g, state, lr, t, **hyper)` function returns the new weight and
updates `state` (a dict, empty before the first step) in place; `t` is the
1-based step number. They are written straight from the formulas in the
optimizers' docstrings, not from the implementation.
"""

import keras
import numpy as np

import optimizers


def momentum_step(w, g, state, lr, t, momentum=0.9, ewa=True, nesterov=False):
    v = state.get("v", np.zeros_like(w))
    new = (1 - momentum) * g if ewa else g
    v = momentum * v + new
    state["v"] = v
    if nesterov:
        return w - lr * (momentum * v + new)
    return w - lr * v


def rmsprop_step(
    w, g, state, lr, t, rho=0.9, momentum=0.0, epsilon=1e-8, centered=False,
    epsilon_inside_sqrt=False,
):
    s = rho * state.get("s", np.zeros_like(w)) + (1 - rho) * g**2
    a = rho * state.get("a", np.zeros_like(w)) + (1 - rho) * g
    state["s"], state["a"] = s, a
    second_moment = s - a**2 if centered else s
    if epsilon_inside_sqrt:
        step = lr * g / np.sqrt(second_moment + epsilon)
    else:
        step = lr * g / (np.sqrt(second_moment) + epsilon)
    if momentum > 0:
        step = momentum * state.get("m", np.zeros_like(w)) + step
        state["m"] = step
    return w - step


def adagrad_step(w, g, state, lr, t, initial_accumulator_value=0.1, epsilon=1e-7):
    a = state.get("a", np.full_like(w, initial_accumulator_value))
    a = a + g**2
    state["a"] = a
    return w - lr * g / np.sqrt(a + epsilon)


def adam_step(
    w, g, state, lr, t, beta_1=0.9, beta_2=0.999, epsilon=1e-8, epsilon_hat=False,
    amsgrad=False, weight_decay=0.0,
):
    m = beta_1 * state.get("m", np.zeros_like(w)) + (1 - beta_1) * g
    v = beta_2 * state.get("v", np.zeros_like(w)) + (1 - beta_2) * g**2
    state["m"], state["v"] = m, v
    if amsgrad:  # The largest second moment so far takes v's place.
        v = np.maximum(state.get("v_max", np.zeros_like(w)), v)
        state["v_max"] = v
    if epsilon_hat:
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        return w - alpha * m / (np.sqrt(v) + epsilon) - lr * weight_decay * w
    m_hat = m / (1 - beta_1**t)
    v_hat = v / (1 - beta_2**t)
    return w - lr * (m_hat / (np.sqrt(v_hat) + epsilon) + weight_decay * w)


def adamw_step(w, g, state, lr, t, weight_decay=0.004, **hyper):
    # Keras's base class (which applies the decay) casts weight_decay to the
    # variable's dtype: through float32 on TensorFlow, exactly on JAX.
    if keras.backend.backend() == "tensorflow":
        weight_decay = float(np.float32(weight_decay))
    return adam_step(w, g, state, lr, t, weight_decay=weight_decay, **hyper)


# (id, optimizer class, hyperparameters, NumPy step). Hyperparameters are
# chosen away from the defaults where that makes a mistake visible.
CASES = [
    ("momentum_ewa", optimizers.Momentum, dict(momentum=0.8, ewa=True), momentum_step),
    ("momentum_sum", optimizers.Momentum, dict(momentum=0.8, ewa=False), momentum_step),
    (
        "momentum_nesterov",
        optimizers.Momentum,
        dict(momentum=0.8, nesterov=True),
        momentum_step,
    ),
    (
        "momentum_sum_nesterov",
        optimizers.Momentum,
        dict(momentum=0.8, ewa=False, nesterov=True),
        momentum_step,
    ),
    ("gradient_descent", optimizers.Momentum, dict(momentum=0.0), momentum_step),
    ("rmsprop", optimizers.RMSProp, dict(rho=0.8, epsilon=1e-3), rmsprop_step),
    (
        "rmsprop_inside",
        optimizers.RMSProp,
        dict(rho=0.8, epsilon=1e-3, epsilon_inside_sqrt=True),
        rmsprop_step,
    ),
    (
        "rmsprop_centered_momentum",
        optimizers.RMSProp,
        dict(rho=0.8, momentum=0.7, epsilon=1e-3, centered=True),
        rmsprop_step,
    ),
    (
        "rmsprop_inside_centered_momentum",
        optimizers.RMSProp,
        dict(rho=0.8, momentum=0.7, epsilon=1e-3, centered=True, epsilon_inside_sqrt=True),
        rmsprop_step,
    ),
    (
        "adagrad",
        optimizers.AdaGrad,
        dict(initial_accumulator_value=0.3, epsilon=1e-3),
        adagrad_step,
    ),
    ("adam", optimizers.Adam, dict(beta_1=0.8, beta_2=0.9, epsilon=1e-3), adam_step),
    (
        "adam_amsgrad",
        optimizers.Adam,
        dict(beta_1=0.8, beta_2=0.9, epsilon=1e-3, amsgrad=True),
        adam_step,
    ),
    (
        "adam_hat",
        optimizers.Adam,
        dict(beta_1=0.8, beta_2=0.9, epsilon=1e-3, epsilon_hat=True),
        adam_step,
    ),
    (
        "adamw",
        optimizers.AdamW,
        dict(weight_decay=0.3, beta_1=0.8, beta_2=0.9, epsilon=1e-3),
        adamw_step,
    ),
    (
        "adamw_hat",
        optimizers.AdamW,
        dict(weight_decay=0.3, beta_1=0.8, beta_2=0.9, epsilon=1e-3, epsilon_hat=True),
        adamw_step,
    ),
    (
        "adamw_hat_amsgrad",
        optimizers.AdamW,
        dict(
            weight_decay=0.3, beta_1=0.8, beta_2=0.9, epsilon=1e-3, epsilon_hat=True,
            amsgrad=True,
        ),
        adamw_step,
    ),
]
CASE_IDS = [case[0] for case in CASES]


def numpy_run(step, weights, grads_per_step, lrs, **hyper):
    """Runs `step` over `grads_per_step` (a list of lists of arrays).

    `lrs[t - 1]` is the learning rate of step t. Returns the final weights.
    """
    weights = [np.array(w, dtype=np.float64) for w in weights]
    states = [{} for _ in weights]
    for t, grads in enumerate(grads_per_step, start=1):
        weights = [
            step(w, np.asarray(g, np.float64), s, lrs[t - 1], t, **hyper)
            for w, g, s in zip(weights, grads, states, strict=True)
        ]
    return weights
