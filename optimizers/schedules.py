"""Learning-rate schedules.

Each schedule is a `keras.optimizers.schedules.LearningRateSchedule`: pass one
as an optimizer's `learning_rate` and the optimizer calls it with its step
counter `optimizer.iterations` (0 before the first update), so the first
update uses `schedule(0)`. Epoch-based schedules take `steps_per_epoch` and use
`epoch = floor(step / steps_per_epoch)`. Everything is computed with `keras.ops`
on the step cast to float32, so the schedules work eagerly, in `tf.function`
and under XLA, and on Keras's JAX backend (`jax.jit`). All are serializable (`get_config`, registered under the
package name "dlsuite").
"""

import math

import keras
from keras import ops

_Schedule = keras.optimizers.schedules.LearningRateSchedule


def _positive(name, value):
    if value is None or value <= 0:
        raise ValueError(f"`{name}` must be > 0. Received: {name}={value}")


def _float_step(step):
    return ops.cast(step, "float32")


@keras.saving.register_keras_serializable(package="dlsuite")
class StepDecay(_Schedule):
    """Piecewise-constant decay by epochs: divide by 1/factor at each boundary.

    ```
    epoch = floor(step / steps_per_epoch)
    lr = initial_learning_rate * factor ** (number of b in boundaries_epochs with epoch >= b)
    ```

    The defaults are ResNet's ImageNet recipe (He et al., 2016): the learning
    rate is divided by 10 at epochs 30, 60 and 90.

    Args:
        initial_learning_rate: Float, the learning rate before the first
            boundary.
        boundaries_epochs: Increasing sequence of epochs at which the learning
            rate is multiplied by `factor`. Defaults to `(30, 60, 90)`.
        factor: Float, the multiplier applied at each boundary. Defaults to
            `0.1`.
        steps_per_epoch: Positive int (keyword only, required), the number of
            optimizer steps in one epoch.
    """

    def __init__(
        self,
        initial_learning_rate,
        boundaries_epochs=(30, 60, 90),
        factor=0.1,
        *,
        steps_per_epoch,
    ):
        _positive("steps_per_epoch", steps_per_epoch)
        boundaries_epochs = [int(b) for b in boundaries_epochs]
        if boundaries_epochs != sorted(boundaries_epochs):
            raise ValueError(
                f"`boundaries_epochs` must be increasing. Received: {boundaries_epochs}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.boundaries_epochs = boundaries_epochs
        self.factor = float(factor)
        self.steps_per_epoch = int(steps_per_epoch)

    def __call__(self, step):
        epoch = ops.floor(_float_step(step) / float(self.steps_per_epoch))
        passed = ops.zeros((), "float32")
        for boundary in self.boundaries_epochs:
            passed = passed + ops.cast(ops.greater_equal(epoch, float(boundary)), "float32")
        return self.initial_learning_rate * ops.power(self.factor, passed)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "boundaries_epochs": list(self.boundaries_epochs),
            "factor": self.factor,
            "steps_per_epoch": self.steps_per_epoch,
        }


@keras.saving.register_keras_serializable(package="dlsuite")
class InverseTimeDecay(_Schedule):
    """Inverse-time decay by epochs.

    ```
    epoch = floor(step / steps_per_epoch)      # step / steps_per_epoch if not staircase
    lr = initial_learning_rate / (1 + decay_rate * epoch)
    ```

    Args:
        initial_learning_rate: Float, the learning rate in the first epoch.
        decay_rate: Non-negative float, how fast it decays. Defaults to `1.0`.
        steps_per_epoch: Positive int (keyword only, required), the number of
            optimizer steps in one epoch.
        staircase: Boolean. If `True` (default) the learning rate changes once
            per epoch; if `False` the epoch count is fractional and it decays
            at every step.
    """

    def __init__(self, initial_learning_rate, decay_rate=1.0, *, steps_per_epoch, staircase=True):
        _positive("steps_per_epoch", steps_per_epoch)
        if decay_rate < 0:
            raise ValueError(f"`decay_rate` must be >= 0. Received: decay_rate={decay_rate}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_rate = float(decay_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.staircase = bool(staircase)

    def __call__(self, step):
        epoch = _float_step(step) / float(self.steps_per_epoch)
        if self.staircase:
            epoch = ops.floor(epoch)
        return self.initial_learning_rate / (1.0 + self.decay_rate * epoch)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_rate": self.decay_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "staircase": self.staircase,
        }


@keras.saving.register_keras_serializable(package="dlsuite")
class ExponentialDecay(_Schedule):
    """Exponential decay.

    ```
    p = step / decay_steps                 # floor(step / decay_steps) if staircase
    lr = initial_learning_rate * decay_rate ** p
    ```

    Same formula and arguments as `keras.optimizers.schedules.ExponentialDecay`.

    Args:
        initial_learning_rate: Float, the learning rate at step 0.
        decay_steps: Positive int, the number of steps over which the learning
            rate is multiplied by `decay_rate` once.
        decay_rate: Positive float, the decay factor per `decay_steps`.
        staircase: Boolean. If `True` the learning rate decays in discrete
            jumps every `decay_steps`. Defaults to `False`.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        _positive("decay_steps", decay_steps)
        _positive("decay_rate", decay_rate)
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = _float_step(step) / float(self.decay_steps)
        if self.staircase:
            p = ops.floor(p)
        return self.initial_learning_rate * ops.power(self.decay_rate, p)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
        }


@keras.saving.register_keras_serializable(package="dlsuite")
class WarmupCosine(_Schedule):
    """Linear warm-up to a peak, then cosine decay to a final learning rate.

    ```
    if step < warmup_steps:
        lr = peak_learning_rate * step / warmup_steps
    else:
        progress = min((step - warmup_steps) / (total_steps - warmup_steps), 1)
        lr = final_learning_rate
             + 0.5 * (peak_learning_rate - final_learning_rate) * (1 + cos(pi * progress))
    ```

    The warm-up starts at 0 at step 0 and reaches the peak at `warmup_steps`;
    after `total_steps` the learning rate stays at `final_learning_rate`. This
    equals `keras.optimizers.schedules.CosineDecay(0.0, total_steps -
    warmup_steps, alpha=final_learning_rate / peak_learning_rate,
    warmup_target=peak_learning_rate, warmup_steps=warmup_steps)`.

    Args:
        peak_learning_rate: Float, the learning rate at the end of warm-up.
        warmup_steps: Non-negative int, the length of the linear warm-up
            (0: none).
        total_steps: Int greater than `warmup_steps`, the step at which the
            cosine reaches `final_learning_rate`.
        final_learning_rate: Float, the learning rate at and after
            `total_steps`. Defaults to `0.0`.
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps, final_learning_rate=0.0):
        if warmup_steps < 0:
            raise ValueError(f"`warmup_steps` must be >= 0. Received: warmup_steps={warmup_steps}")
        if total_steps <= warmup_steps:
            raise ValueError(
                "`total_steps` must be greater than `warmup_steps`. Received: "
                f"total_steps={total_steps}, warmup_steps={warmup_steps}"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.final_learning_rate = float(final_learning_rate)

    def __call__(self, step):
        step = _float_step(step)
        peak, final = self.peak_learning_rate, self.final_learning_rate
        warmup = float(self.warmup_steps)
        progress = ops.clip((step - warmup) / float(self.total_steps - self.warmup_steps), 0.0, 1.0)
        cosine = final + 0.5 * (peak - final) * (1.0 + ops.cos(math.pi * progress))
        if self.warmup_steps == 0:
            return cosine
        return ops.where(step < warmup, peak * step / warmup, cosine)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "final_learning_rate": self.final_learning_rate,
        }


@keras.saving.register_keras_serializable(package="dlsuite")
class LinearDecay(_Schedule):
    """Linear decay from an initial to an end learning rate, then constant.

    ```
    lr = initial_learning_rate
         + (end_learning_rate - initial_learning_rate) * min(step / decay_steps, 1)
    ```

    Same as `keras.optimizers.schedules.PolynomialDecay(initial_learning_rate,
    decay_steps, end_learning_rate, power=1.0)`.

    Args:
        initial_learning_rate: Float, the learning rate at step 0.
        decay_steps: Positive int, the step at which `end_learning_rate` is
            reached.
        end_learning_rate: Float, the learning rate at and after
            `decay_steps`. Defaults to `0.0`.
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0):
        _positive("decay_steps", decay_steps)
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.end_learning_rate = float(end_learning_rate)

    def __call__(self, step):
        fraction = ops.minimum(_float_step(step) / float(self.decay_steps), 1.0)
        start, end = self.initial_learning_rate, self.end_learning_rate
        return start + (end - start) * fraction

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
        }


@keras.saving.register_keras_serializable(package="dlsuite")
class InverseSqrt(_Schedule):
    """Linear warm-up, then decay with the inverse square root of the step.

    The shape of the Transformer schedule (Vaswani et al., 2017, section 5.3),
    `d_model ** -0.5 * min(s ** -0.5, s * warmup_steps ** -1.5)`, scaled so that
    its peak (at `s = warmup_steps`) is `peak_learning_rate`:

    ```
    s = step + 1
    lr = peak_learning_rate * min(s / warmup_steps, sqrt(warmup_steps / s))
    ```

    `s` counts updates from 1, so the first update (optimizer step 0) gets
    `peak_learning_rate / warmup_steps` rather than 0 (and never `0 ** -0.5`).
    The paper's schedule is `peak_learning_rate = (d_model * warmup_steps)
    ** -0.5`; `InverseSqrt.for_transformer(d_model, warmup_steps)` makes it.

    Args:
        peak_learning_rate: Float, the learning rate at the end of warm-up.
        warmup_steps: Positive int, the length of the linear warm-up.
            Defaults to `4000`.
    """

    def __init__(self, peak_learning_rate, warmup_steps=4000):
        _positive("warmup_steps", warmup_steps)
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)

    @classmethod
    def for_transformer(cls, d_model, warmup_steps=4000):
        """The schedule of "Attention Is All You Need" for a model width `d_model`."""
        return cls((d_model * warmup_steps) ** -0.5, warmup_steps)

    def __call__(self, step):
        s = _float_step(step) + 1.0
        warmup = float(self.warmup_steps)
        return self.peak_learning_rate * ops.minimum(s / warmup, ops.sqrt(warmup / s))

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
        }
