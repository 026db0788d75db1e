"""Every optimizer against a NumPy transcription of its formula.

Gradients are fed directly through `optimizer.apply(grads, variables)`; the
learning rate is rounded to float32 in the reference, as Keras stores it in a
float32 variable.
"""

import keras
import numpy as np
import pytest

import optimizers
from tests import keras_testing as kt
from tests.optimizers.reference import (
    CASE_IDS,
    CASES,
    adam_step,
    momentum_step,
    numpy_run,
)

SHAPES = [(3, 4), (5,)]
STEPS = 6
TOLERANCE = {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-11, atol=1e-12)}


def _problem(seed=0, grad_scale=1.0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s) for s in SHAPES]
    grads = [[grad_scale * rng.normal(size=s) for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


def _keras_run(optimizer, weights, grads, dtype):
    variables = [keras.Variable(w.astype(dtype), dtype=dtype) for w in weights]
    for step_grads in grads:
        optimizer.apply([g.astype(dtype) for g in step_grads], variables)
    return [v.numpy() for v in variables]


def _assert_close(got, want, dtype):
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, **TOLERANCE[dtype])


def _moved(got, start):
    return max(np.abs(g - s).max() for g, s in zip(got, start, strict=True))


@pytest.mark.parametrize("dtype", kt.jax_cases(["float32", "float64"], ["float64"]))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_numpy_formula(case, dtype):
    _, cls, hyper, step = case
    lr = 0.05
    weights, grads = _problem()
    got = _keras_run(cls(learning_rate=lr, **hyper), weights, grads, dtype)
    want = numpy_run(step, weights, grads, [float(np.float32(lr))] * STEPS, **hyper)
    assert _moved(want, weights) > 1e-3
    _assert_close(got, want, dtype)


def test_variants_really_differ():
    """The switches (ewa, nesterov, epsilon placement, centered, momentum,
    amsgrad) change the trajectory."""
    weights, grads = _problem()
    pairs = [
        (optimizers.Momentum(0.05, ewa=True), optimizers.Momentum(0.05, ewa=False)),
        (
            optimizers.RMSProp(0.05, epsilon=0.1),
            optimizers.RMSProp(0.05, epsilon=0.1, epsilon_inside_sqrt=True),
        ),
        (optimizers.Adam(0.05, epsilon=0.1), optimizers.Adam(0.05, epsilon=0.1, epsilon_hat=True)),
        (optimizers.Momentum(0.05), optimizers.Momentum(0.05, nesterov=True)),
        (optimizers.RMSProp(0.05), optimizers.RMSProp(0.05, centered=True)),
        (optimizers.RMSProp(0.05), optimizers.RMSProp(0.05, momentum=0.5)),
        # AMSGrad differs once v falls, which a short memory makes happen early.
        (optimizers.Adam(0.05, beta_2=0.5), optimizers.Adam(0.05, beta_2=0.5, amsgrad=True)),
    ]
    for a, b in pairs:
        wa = _keras_run(a, weights, grads, "float64")
        wb = _keras_run(b, weights, grads, "float64")
        assert _moved(wa, wb) > 1e-4, type(a).__name__


def test_clipnorm_clips_each_gradient():
    weights, grads = _problem(grad_scale=10.0)
    clip = 1.0
    assert min(np.linalg.norm(g) for gs in grads for g in gs) > clip
    clipped = [[g * clip / max(np.linalg.norm(g), clip) for g in gs] for gs in grads]
    got = _keras_run(optimizers.Momentum(0.05, clipnorm=clip), weights, grads, "float64")
    want = numpy_run(momentum_step, weights, clipped, [float(np.float32(0.05))] * STEPS)
    _assert_close(got, want, "float64")


def test_global_clipnorm_clips_all_gradients_together():
    weights, grads = _problem(grad_scale=10.0)
    clip = 2.0
    clipped = []
    for gs in grads:
        norm = np.sqrt(sum(np.sum(g**2) for g in gs))
        assert norm > clip
        clipped.append([g * clip / max(norm, clip) for g in gs])
    got = _keras_run(optimizers.Adam(0.05, global_clipnorm=clip), weights, grads, "float64")
    want = numpy_run(adam_step, weights, clipped, [float(np.float32(0.05))] * STEPS)
    _assert_close(got, want, "float64")


def test_schedule_as_learning_rate():
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    weights, grads = _problem()
    # The optimizer calls the schedule with iterations = t - 1 at step t.
    lrs = [float(np.float32(0.1 * 0.5 ** ((t - 1) / 2))) for t in range(1, STEPS + 1)]
    got = _keras_run(optimizers.Momentum(schedule, ewa=False), weights, grads, "float64")
    want = numpy_run(momentum_step, weights, grads, lrs, ewa=False)
    constant = numpy_run(momentum_step, weights, grads, [0.1] * STEPS, ewa=False)
    assert _moved(want, constant) > 1e-3
    _assert_close(got, want, "float64")


def test_weight_decay_is_decoupled():
    """Base-class weight decay: w = w - lr * wd * w, then the optimizer's step."""
    weights, grads = _problem()
    lr, wd = float(np.float32(0.05)), 0.5

    def decayed_momentum(w, g, state, lr, t):
        return momentum_step(w - lr * wd * w, g, state, lr, t)

    got = _keras_run(optimizers.Momentum(0.05, weight_decay=wd), weights, grads, "float64")
    want = numpy_run(decayed_momentum, weights, grads, [lr] * STEPS)
    _assert_close(got, want, "float64")


def test_ema_of_weights():
    """use_ema keeps an average of the weights; finalize swaps it in."""
    weights, grads = _problem()
    ema = 0.7
    optimizer = optimizers.Adam(0.05, use_ema=True, ema_momentum=ema)
    variables = [keras.Variable(w, dtype="float64") for w in weights]
    lr = float(np.float32(0.05))
    states = [{} for _ in weights]
    current = [w.copy() for w in weights]
    average = None
    for t, step_grads in enumerate(grads, start=1):
        optimizer.apply(step_grads, variables)
        current = [
            adam_step(w, g, s, lr, t) for w, g, s in zip(current, step_grads, states, strict=True)
        ]
        if average is None:  # Keras starts the average at the first new weights.
            average = [c.copy() for c in current]
        else:
            average = [ema * a + (1 - ema) * c for a, c in zip(average, current, strict=True)]
    _assert_close([v.numpy() for v in variables], current, "float64")
    optimizer.finalize_variable_values(variables)
    _assert_close([v.numpy() for v in variables], average, "float64")
    assert _moved(average, current) > 1e-3


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: optimizers.Momentum(momentum=1.0), "momentum"),
        (lambda: optimizers.Momentum(momentum=1.5, ewa=False), "momentum"),
        (lambda: optimizers.RMSProp(momentum=-0.5), "momentum"),
        (lambda: optimizers.RMSProp(rho=-0.1), "rho"),
        (lambda: optimizers.Adam(beta_2=1.5), "beta_2"),
        (lambda: optimizers.AdaGrad(initial_accumulator_value=-1.0), "initial_accumulator"),
        (lambda: optimizers.AdamW(weight_decay=None), "weight_decay"),
        (lambda: optimizers.Adam(epsilon=-1.0), "epsilon"),
    ],
)
def test_bad_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
