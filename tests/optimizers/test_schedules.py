"""Learning-rate schedules against Python transcriptions of their formulas,
eagerly, in tf.function and under XLA (`jax.jit` on JAX), plus their Keras twins
and serialization.
"""

import math

import keras
import numpy as np
import pytest

from optimizers import schedules
from tests import keras_testing as kt

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf
else:
    import jax

STEPS = [
    0,
    1,
    7,
    99,
    100,
    101,
    250,
    299,
    300,
    599,
    600,
    650,
    899,
    900,
    999,
    1000,
    1001,
    3000,
    12345,
]


def step_decay(step, lr0=0.4, boundaries=(30, 60, 90), factor=0.1, steps_per_epoch=10):
    epoch = step // steps_per_epoch
    return lr0 * factor ** sum(epoch >= b for b in boundaries)


def inverse_time(step, lr0=0.5, decay_rate=0.3, steps_per_epoch=100, staircase=True):
    epoch = step // steps_per_epoch if staircase else step / steps_per_epoch
    return lr0 / (1 + decay_rate * epoch)


def exponential(step, lr0=0.1, decay_steps=300, decay_rate=0.5, staircase=False):
    p = step // decay_steps if staircase else step / decay_steps
    return lr0 * decay_rate**p


def warmup_cosine(step, peak=0.3, warmup=100, total=1000, final=0.01):
    if step < warmup:
        return peak * step / warmup
    progress = min((step - warmup) / (total - warmup), 1.0)
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * progress))


def linear(step, lr0=0.2, decay_steps=1000, end=0.02):
    return lr0 + (end - lr0) * min(step / decay_steps, 1.0)


def inverse_sqrt(step, peak=0.002, warmup=100):
    s = step + 1
    return peak * min(s / warmup, math.sqrt(warmup / s))


CASES = [
    ("step_decay", schedules.StepDecay(0.4, (30, 60, 90), 0.1, steps_per_epoch=10), step_decay),
    ("inverse_time", schedules.InverseTimeDecay(0.5, 0.3, steps_per_epoch=100), inverse_time),
    (
        "inverse_time_smooth",
        schedules.InverseTimeDecay(0.5, 0.3, steps_per_epoch=100, staircase=False),
        lambda s: inverse_time(s, staircase=False),
    ),
    ("exponential", schedules.ExponentialDecay(0.1, 300, 0.5), exponential),
    (
        "exponential_staircase",
        schedules.ExponentialDecay(0.1, 300, 0.5, staircase=True),
        lambda s: exponential(s, staircase=True),
    ),
    ("warmup_cosine", schedules.WarmupCosine(0.3, 100, 1000, 0.01), warmup_cosine),
    (
        "warmup_cosine_no_warmup",
        schedules.WarmupCosine(0.3, 0, 1000, 0.01),
        lambda s: warmup_cosine(s, warmup=0),
    ),
    ("linear", schedules.LinearDecay(0.2, 1000, 0.02), linear),
    ("inverse_sqrt", schedules.InverseSqrt(0.002, 100), inverse_sqrt),
]
IDS = [c[0] for c in CASES]


def _expected(formula):
    return np.array([formula(s) for s in STEPS], "float32")


@pytest.mark.parametrize("mode", kt.jax_cases(["eager", "function", "xla"], ["xla"]))
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_formula(case, mode):
    _, schedule, formula = case
    expected = _expected(formula)
    assert len(set(expected.tolist())) > 2  # The schedule really changes.
    if mode == "eager":
        got = np.array([float(schedule(s)) for s in STEPS])
    elif BACKEND != "tensorflow":
        if mode == "function":
            pytest.skip("tf.function without XLA: TensorFlow only (JAX's compiled mode is xla)")
        # Optimizers pass their int64 `iterations` variable.
        got = np.asarray(jax.jit(lambda steps: jax.lax.map(schedule, steps))(
            np.array(STEPS, np.int64)))
    else:
        # Optimizers pass their int64 `iterations` variable.
        fn = tf.function(
            lambda steps: tf.map_fn(schedule, steps, fn_output_signature=tf.float32),
            jit_compile=(mode == "xla"),
        )
        got = fn(tf.constant(STEPS, tf.int64)).numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-9)


def test_step_decay_is_resnet_recipe():
    schedule = schedules.StepDecay(0.1, steps_per_epoch=5)
    # Epoch 29 -> 0.1, 30 -> 0.01, 60 -> 0.001, 90 -> 1e-4.
    got = [float(schedule(epoch * 5 + 4)) for epoch in (29, 30, 59, 60, 90, 200)]
    np.testing.assert_allclose(got, [0.1, 0.01, 0.01, 0.001, 1e-4, 1e-4], rtol=1e-6)


def test_inverse_sqrt_for_transformer():
    d_model, warmup = 512, 4000
    schedule = schedules.InverseSqrt.for_transformer(d_model, warmup)
    for step in (0, 100, 3999, 4000, 50000):
        s = step + 1
        paper = d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)
        np.testing.assert_allclose(float(schedule(step)), paper, rtol=1e-6)


KERAS_TWINS = [
    (
        schedules.ExponentialDecay(0.1, 300, 0.5, staircase=True),
        keras.optimizers.schedules.ExponentialDecay(0.1, 300, 0.5, staircase=True),
    ),
    (
        schedules.InverseTimeDecay(0.5, 0.3, steps_per_epoch=100),
        keras.optimizers.schedules.InverseTimeDecay(0.5, 100, 0.3, staircase=True),
    ),
    (
        schedules.LinearDecay(0.2, 1000, 0.02),
        keras.optimizers.schedules.PolynomialDecay(0.2, 1000, 0.02, power=1.0),
    ),
    (
        schedules.WarmupCosine(0.3, 100, 1000, 0.03),
        keras.optimizers.schedules.CosineDecay(
            0.0, 900, alpha=0.1, warmup_target=0.3, warmup_steps=100
        ),
    ),
]


@pytest.mark.parametrize("pair", KERAS_TWINS, ids=lambda p: type(p).__name__)
def test_matches_keras_twin(pair):
    ours, theirs = pair
    got = [float(ours(s)) for s in STEPS]
    want = [float(theirs(s)) for s in STEPS]
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_serialization_round_trip(case):
    _, schedule, _ = case
    config = schedule.get_config()
    clone = type(schedule).from_config(config)
    assert clone.get_config() == config
    payload = keras.optimizers.schedules.serialize(schedule)
    assert payload["registered_name"] == f"dlsuite>{type(schedule).__name__}"
    restored = keras.optimizers.schedules.deserialize(payload)
    assert type(restored) is type(schedule)
    np.testing.assert_allclose(
        [float(restored(s)) for s in STEPS], [float(schedule(s)) for s in STEPS], rtol=1e-7
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: schedules.StepDecay(0.1, steps_per_epoch=0), "steps_per_epoch"),
        (lambda: schedules.StepDecay(0.1, (60, 30), steps_per_epoch=1), "increasing"),
        (lambda: schedules.InverseTimeDecay(0.1, -1.0, steps_per_epoch=1), "decay_rate"),
        (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), "decay_steps"),
        (lambda: schedules.WarmupCosine(0.1, 100, 100), "total_steps"),
        (lambda: schedules.LinearDecay(0.1, 0), "decay_steps"),
        (lambda: schedules.InverseSqrt(0.1, 0), "warmup_steps"),
    ],
)
def test_bad_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
