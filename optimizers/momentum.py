"""Gradient descent with momentum."""

import keras
from keras import ops

from optimizers.keras_form import in_keras_form


@keras.saving.register_keras_serializable(package="dlsuite")
class Momentum(keras.optimizers.Optimizer):
    """Gradient descent with momentum (heavy ball).

    For each weight `w` with gradient `g`, a velocity `v` (zero at the start)
    is kept. With `ewa=True` (the default) the velocity is an exponentially
    weighted average of the gradients, as taught in most courses:

    ```
    v = momentum * v + (1 - momentum) * g
    w = w - learning_rate * v
    ```

    With `ewa=False` the velocity is the plain running sum of Polyak (1964)
    and Sutskever et al. (2013):

    ```
    v = momentum * v + g
    w = w - learning_rate * v
    ```

    For a constant learning rate the `ewa=False` trajectory is the one of
    `keras.optimizers.SGD(momentum=momentum)`, which stores
    `m = momentum * m - learning_rate * g` and does `w = w + m`, that is
    `m = -learning_rate * v`. With a learning-rate schedule the two differ:
    here the current learning rate scales the whole velocity, there each
    gradient is scaled by the learning rate of its own step.

    With `nesterov=True` the step looks ahead along the velocity (Nesterov,
    1983, in the form of Sutskever et al., 2013): the weight moves by the
    velocity the next step would have if the gradient stayed the same,

    ```
    w = w - learning_rate * (momentum * v + (1 - momentum) * g)   # ewa=True
    w = w - learning_rate * (momentum * v + g)                    # ewa=False
    ```

    with `v` already updated; with `ewa=False` this is
    `keras.optimizers.SGD(momentum=momentum, nesterov=True)`.

    The EWA velocity is `1 - momentum` times the sum form's at every step (both
    start at zero), so the same behaviour needs a learning rate
    `1 / (1 - momentum)` times larger (10x for `momentum=0.9`). The optimizer
    uses that identity: its "velocity" variables always hold the sum form `u`,
    and with `ewa=True` it steps `w = w - learning_rate * (1 - momentum) * u`,
    which is exactly `learning_rate * v` at the cost of one scalar multiply.
    With `momentum=0` no velocity is kept (plain gradient descent, as
    `keras.optimizers.SGD()`).

    A config written by `keras.optimizers.SGD` (no `ewa` key) loads with
    `Momentum.from_config` in the sum form, `ewa=False`.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or a
            callable that takes no arguments and returns the value to use.
            Defaults to `0.01`.
        momentum: Float in `[0, 1]`, the decay rate of the velocity (below 1
            when `ewa=True`, where 1 would never take a step). `0` is plain
            gradient descent. Defaults to `0.9`.
        ewa: Boolean. If `True` the velocity is the exponentially weighted
            average `momentum * v + (1 - momentum) * g`; if `False` the sum
            `momentum * v + g`. Defaults to `True`.
        nesterov: Boolean, Nesterov's look-ahead step. Defaults to `False`.
        name: String, the name of the optimizer. Defaults to one made from the
            class name.
        **kwargs: The keyword arguments of `keras.optimizers.Optimizer`:
            `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`,
            `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
            `loss_scale_factor`, `gradient_accumulation_steps`. Clipping,
            weight decay (`w = w - learning_rate * weight_decay * w` before the
            step), EMA and loss scaling are done by the base class.

    References:
        - Polyak, 1964, "Some methods of speeding up the convergence of
          iteration methods".
        - Sutskever et al., 2013, "On the importance of initialization and
          momentum in deep learning".
        - Nesterov, 1983, "A method for solving the convex programming problem
          with convergence rate O(1/k^2)".
    """

    def __init__(
        self, learning_rate=0.01, momentum=0.9, ewa=True, nesterov=False, name=None, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum <= 1.0 or (ewa and momentum == 1.0):
            raise ValueError(
                "`momentum` must be a float between [0, 1] (below 1 with ewa=True). "
                f"Received: momentum={momentum}, ewa={ewa}"
            )
        self.momentum = float(momentum)
        self.ewa = bool(ewa)
        self.nesterov = bool(nesterov)

    def build(self, var_list):
        """Creates one velocity per model variable (zeros); none if momentum is 0."""
        if self.built:
            return
        super().build(var_list)
        self._velocities = []
        if self.momentum != 0:
            self._velocities = [
                self.add_variable_from_reference(var, name="velocity") for var in var_list
            ]

    def update_step(self, gradient, variable, learning_rate):
        """Updates the velocity of `variable`, then `variable` itself."""
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, lr))
            return
        u = self._velocities[self._get_variable_index(variable)]
        # The stored velocity is the sum form u = momentum * u + g; the EWA
        # velocity is v = (1 - momentum) * u at every step, so it is applied as
        # a scaled learning rate (a scalar op, not one more op per weight).
        if self.ewa:
            lr = lr * (1.0 - self.momentum)
        # Python floats take the variable's dtype (no float32 rounding in float64).
        self.assign(u, ops.add(ops.multiply(u, self.momentum), gradient))
        step = u
        if self.nesterov:  # The look-ahead: momentum * u + g, in the same scale.
            step = ops.add(ops.multiply(u, self.momentum), gradient)
        self.assign_sub(variable, ops.multiply(step, lr))

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "ewa": self.ewa, "nesterov": self.nesterov})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Reads our config, or `keras.optimizers.SGD`'s (in the sum form)."""
        return super().from_config(in_keras_form(config, ewa=False), custom_objects)
