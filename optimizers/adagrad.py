"""AdaGrad."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dlsuite")
class AdaGrad(keras.optimizers.Optimizer):
    """AdaGrad: per-weight learning rates from the sum of squared gradients.

    For each weight `w` with gradient `g`, an accumulator `a` of all squared
    gradients so far is kept (starting at `initial_accumulator_value`), and
    the step is divided by its square root (Duchi et al., 2011), so weights
    that have seen large or frequent gradients move less:

    ```
    a = a + g ** 2
    w = w - learning_rate * g / sqrt(a + epsilon)
    ```

    This is the formula of `keras.optimizers.Adagrad` (same arguments and
    defaults).

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or a
            callable that takes no arguments and returns the value to use.
            Defaults to `0.001`. AdaGrad usually wants larger values (the
            paper's form is `1.0`).
        initial_accumulator_value: Non-negative float, the starting value of
            the accumulators. Defaults to `0.1`.
        epsilon: Small non-negative float added under the square root.
            Defaults to `1e-7`.
        name: String, the name of the optimizer. Defaults to one made from the
            class name.
        **kwargs: The keyword arguments of `keras.optimizers.Optimizer`:
            `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`,
            `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
            `loss_scale_factor`, `gradient_accumulation_steps`. Clipping,
            weight decay, EMA and loss scaling are done by the base class.

    Reference:
        - Duchi et al., 2011, "Adaptive Subgradient Methods for Online Learning
          and Stochastic Optimization", JMLR 12.
    """

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if initial_accumulator_value < 0:
            raise ValueError(
                "`initial_accumulator_value` must be >= 0. "
                f"Received: initial_accumulator_value={initial_accumulator_value}"
            )
        if epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon}")
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def build(self, var_list):
        """Creates one accumulator per model variable."""
        if self.built:
            return
        super().build(var_list)
        value = self.initial_accumulator_value

        def initializer(shape, dtype=None):
            # Filled in the variable's own dtype (Constant rounds through float32).
            return ops.full(shape, value, dtype=dtype)

        self._accumulators = [
            self.add_variable_from_reference(var, name="accumulator", initializer=initializer)
            for var in var_list
        ]

    def update_step(self, gradient, variable, learning_rate):
        """Adds the squared gradient to the accumulator, then updates `variable`."""
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        a = self._accumulators[self._get_variable_index(variable)]
        self.assign_add(a, ops.square(gradient))
        self.assign_sub(
            variable,
            ops.divide(ops.multiply(lr, gradient), ops.sqrt(ops.add(a, self.epsilon))),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon,
            }
        )
        return config
