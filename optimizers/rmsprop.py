"""RMSProp."""

import keras
from keras import ops

from optimizers.keras_form import in_keras_form


@keras.saving.register_keras_serializable(package="dlsuite")
class RMSProp(keras.optimizers.Optimizer):
    """RMSProp: gradient descent scaled by a running RMS of the gradients.

    For each weight `w` with gradient `g`, a running average `s` of the squared
    gradients (zero at the start) is kept, and the step is divided by its
    square root (Hinton, 2012), so that every weight moves at about the same
    speed whatever the scale of its gradient:

    ```
    s = rho * s + (1 - rho) * g ** 2
    w = w - learning_rate * g / (sqrt(s) + epsilon)      # epsilon_inside_sqrt=False
    w = w - learning_rate * g / sqrt(s + epsilon)        # epsilon_inside_sqrt=True
    ```

    With `centered=True` (Graves, 2013) the running mean `a` of the
    gradients is kept too, and `s - a ** 2`, an estimate of the gradients'
    variance rather than of their second moment, takes the place of `s`:

    ```
    a = rho * a + (1 - rho) * g
    w = w - learning_rate * g / (sqrt(s - a ** 2) + epsilon)
    ```

    With `momentum > 0` the steps above are not applied directly but
    accumulated into a velocity `m` (zero at the start), as in Keras and
    TensorFlow:

    ```
    m = momentum * m + learning_rate * g / (sqrt(s) + epsilon)
    w = w - m
    ```

    With `epsilon_inside_sqrt=True` this is exactly
    `keras.optimizers.RMSprop(rho=rho, momentum=momentum, epsilon=epsilon,
    centered=centered)`; note Keras's default epsilon is `1e-7`. A config
    written by `keras.optimizers.RMSprop` (no `epsilon_inside_sqrt` key) loads
    with `RMSProp.from_config` in that form.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or a
            callable that takes no arguments and returns the value to use.
            Defaults to `0.001`.
        rho: Float in `[0, 1)`, the decay rate of the average of squared
            gradients. Defaults to `0.9`.
        momentum: Float in `[0, 1]`, the decay rate of the velocity the steps
            are accumulated in; `0` applies each step directly. Defaults to
            `0`.
        centered: Boolean. If `True`, divide by the running standard deviation
            of the gradients rather than their running RMS. Defaults to
            `False`.
        epsilon: Small non-negative float that keeps the division finite.
            Defaults to `1e-8`.
        epsilon_inside_sqrt: Boolean. Where `epsilon` is added: to `sqrt(s)`
            (`False`, the textbook form) or to `s` under the square root
            (`True`, the Keras and TensorFlow form). Defaults to `False`.
        name: String, the name of the optimizer. Defaults to one made from the
            class name.
        **kwargs: The keyword arguments of `keras.optimizers.Optimizer`:
            `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`,
            `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
            `loss_scale_factor`, `gradient_accumulation_steps`. Clipping,
            weight decay, EMA and loss scaling are done by the base class.

    References:
        - Hinton, 2012, Neural Networks for Machine Learning, lecture 6e.
        - Graves, 2013, "Generating Sequences With Recurrent Neural Networks",
          https://arxiv.org/abs/1308.0850 (the centered form).
    """

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-8,
        centered=False,
        epsilon_inside_sqrt=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"`rho` must be in [0, 1). Received: rho={rho}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(
                f"`momentum` must be a float between [0, 1]. Received: momentum={momentum}"
            )
        if epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon}")
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.centered = bool(centered)
        self.epsilon_inside_sqrt = bool(epsilon_inside_sqrt)

    def build(self, var_list):
        """Creates, per model variable, the average of squared gradients, then
        (if used) the velocity, then the average gradient; all zeros. The names
        and order are Keras's, so optimizer states copy across."""
        if self.built:
            return
        super().build(var_list)

        def one_per_variable(name):
            return [self.add_variable_from_reference(var, name=name) for var in var_list]

        self._velocities = one_per_variable("velocity")
        self._momentums = one_per_variable("momentum") if self.momentum > 0 else []
        self._average_gradients = one_per_variable("average_gradient") if self.centered else []

    def update_step(self, gradient, variable, learning_rate):
        """Updates the average of squared gradients of `variable`, then `variable`."""
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        s = self._velocities[index]
        rho = self.rho
        self.assign(s, ops.add(ops.multiply(rho, s), ops.multiply(1 - rho, ops.square(gradient))))
        second_moment = s
        if self.centered:
            a = self._average_gradients[index]
            self.assign(a, ops.add(ops.multiply(rho, a), ops.multiply(1 - rho, gradient)))
            second_moment = ops.subtract(s, ops.square(a))
        if self.epsilon_inside_sqrt:
            denominator = ops.sqrt(ops.add(second_moment, self.epsilon))
        else:
            denominator = ops.add(ops.sqrt(second_moment), self.epsilon)
        step = ops.divide(ops.multiply(lr, gradient), denominator)
        if self.momentum > 0:
            m = self._momentums[index]
            self.assign(m, ops.add(ops.multiply(self.momentum, m), step))
            step = m
        self.assign_sub(variable, step)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rho": self.rho,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "centered": self.centered,
                "epsilon_inside_sqrt": self.epsilon_inside_sqrt,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Reads our config, or `keras.optimizers.RMSprop`'s (epsilon inside the root)."""
        return super().from_config(in_keras_form(config, epsilon_inside_sqrt=True), custom_objects)
