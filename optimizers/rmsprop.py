"""RMSProp."""

import keras
from keras import ops


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

    With `epsilon_inside_sqrt=True` this is exactly
    `keras.optimizers.RMSprop(rho=rho, epsilon=epsilon)` (whose `momentum` is 0
    and `centered` False); note Keras's default epsilon is `1e-7`.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or a
            callable that takes no arguments and returns the value to use.
            Defaults to `0.001`.
        rho: Float in `[0, 1)`, the decay rate of the average of squared
            gradients. Defaults to `0.9`.
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

    Reference:
        - Hinton, 2012, Neural Networks for Machine Learning, lecture 6e.
    """

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        epsilon=1e-8,
        epsilon_inside_sqrt=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"`rho` must be in [0, 1). Received: rho={rho}")
        if epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon}")
        self.rho = float(rho)
        self.epsilon = float(epsilon)
        self.epsilon_inside_sqrt = bool(epsilon_inside_sqrt)

    def build(self, var_list):
        """Creates one average of squared gradients per model variable (zeros)."""
        if self.built:
            return
        super().build(var_list)
        self._velocities = [
            self.add_variable_from_reference(var, name="velocity") for var in var_list
        ]

    def update_step(self, gradient, variable, learning_rate):
        """Updates the average of squared gradients of `variable`, then `variable`."""
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        s = self._velocities[self._get_variable_index(variable)]
        rho = self.rho
        self.assign(s, ops.add(ops.multiply(rho, s), ops.multiply(1 - rho, ops.square(gradient))))
        if self.epsilon_inside_sqrt:
            denominator = ops.sqrt(ops.add(s, self.epsilon))
        else:
            denominator = ops.add(ops.sqrt(s), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(lr, gradient), denominator))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rho": self.rho,
                "epsilon": self.epsilon,
                "epsilon_inside_sqrt": self.epsilon_inside_sqrt,
            }
        )
        return config
