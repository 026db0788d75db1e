"""Adam."""

import keras
from keras import ops

from optimizers.keras_form import in_keras_form


@keras.saving.register_keras_serializable(package="dlsuite")
class Adam(keras.optimizers.Optimizer):
    """Adam: momentum plus RMSProp scaling, with bias correction.

    For each weight `w` with gradient `g`, running averages of the gradient
    (`m`) and of its square (`v`) are kept, both zero at the start. At step
    `t = 1, 2, ...` (Kingma and Ba, 2014, Algorithm 1):

    ```
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g ** 2
    m_hat = m / (1 - beta_1 ** t)
    v_hat = v / (1 - beta_2 ** t)
    w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)
    ```

    With `epsilon_hat=True` the bias correction is folded into the step size
    and epsilon is added to the uncorrected `sqrt(v)` (the "epsilon hat" of the
    paper, just before its section 2.1), which is what
    `keras.optimizers.Adam(epsilon=epsilon)` and TensorFlow do:

    ```
    alpha = learning_rate * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    w = w - alpha * m / (sqrt(v) + epsilon)
    ```

    The two forms differ only in the effective epsilon: the first equals the
    second with epsilon replaced by `epsilon * sqrt(1 - beta_2 ** t)`, and it is
    computed that way here (the same tensor work as Keras; only scalars
    change). Note Keras's default epsilon is `1e-7`.

    With `amsgrad=True` (Reddi et al., 2018) the step divides by the largest
    second-moment average seen so far, `v_max = max(v_max, v)`, in place of
    `v`, so a weight's step size never grows back after a burst of large
    gradients. A config written by `keras.optimizers.Adam` (no `epsilon_hat`
    key) loads with `Adam.from_config` in Keras's form, `epsilon_hat=True`.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or a
            callable that takes no arguments and returns the value to use.
            Defaults to `0.001`.
        beta_1: Float in `[0, 1)`, the decay rate of the first-moment
            (gradient) average. Defaults to `0.9`.
        beta_2: Float in `[0, 1)`, the decay rate of the second-moment
            (squared gradient) average. Defaults to `0.999`.
        epsilon: Small non-negative float that keeps the division finite.
            Defaults to `1e-8`.
        epsilon_hat: Boolean. `False`: epsilon is added to `sqrt(v_hat)`
            (Algorithm 1 of the paper). `True`: it is added to `sqrt(v)` and the
            bias correction goes into the step size (Keras, TensorFlow).
            Defaults to `False`.
        amsgrad: Boolean, the AMSGrad variant. Defaults to `False`.
        name: String, the name of the optimizer. Defaults to one made from the
            class name.
        **kwargs: The keyword arguments of `keras.optimizers.Optimizer`:
            `weight_decay`, `clipnorm`, `clipvalue`, `global_clipnorm`,
            `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
            `loss_scale_factor`, `gradient_accumulation_steps`. Clipping,
            weight decay, EMA and loss scaling are done by the base class.

    References:
        - Kingma and Ba, 2014, "Adam: A Method for Stochastic Optimization",
          https://arxiv.org/abs/1412.6980.
        - Reddi, Kale and Kumar, 2018, "On the Convergence of Adam and
          Beyond", https://openreview.net/forum?id=ryQu7f-RZ (AMSGrad).
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        epsilon_hat=False,
        amsgrad=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{arg}` must be in [0, 1). Received: {arg}={value}")
        if epsilon < 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.epsilon_hat = bool(epsilon_hat)
        self.amsgrad = bool(amsgrad)

    def build(self, var_list):
        """Creates the first- and second-moment averages of every model variable
        (and, with amsgrad, the running maximum of the second)."""
        if self.built:
            return
        super().build(var_list)
        self._momentums = []
        self._velocities = []
        for var in var_list:
            self._momentums.append(self.add_variable_from_reference(var, name="momentum"))
            self._velocities.append(self.add_variable_from_reference(var, name="velocity"))
        self._velocity_hats = []
        if self.amsgrad:
            self._velocity_hats = [
                self.add_variable_from_reference(var, name="velocity_hat") for var in var_list
            ]

    def update_step(self, gradient, variable, learning_rate):
        """Updates both moment averages of `variable`, then `variable`."""
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        t = ops.cast(self.iterations + 1, variable.dtype)
        # Python floats take the variable's dtype (no float32 rounding in float64).
        beta_1_power = ops.power(self.beta_1, t)
        beta_2_power = ops.power(self.beta_2, t)
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]

        sqrt_correction_2 = ops.sqrt(1 - beta_2_power)
        alpha = lr * sqrt_correction_2 / (1 - beta_1_power)
        if self.epsilon_hat:
            epsilon = self.epsilon
        else:
            epsilon = ops.multiply(self.epsilon, sqrt_correction_2)

        # m + (1 - beta_1) * (g - m) == beta_1 * m + (1 - beta_1) * g, same for v.
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsgrad:
            v_max = self._velocity_hats[index]
            self.assign(v_max, ops.maximum(v_max, v))
            v = v_max
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), epsilon)))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "epsilon_hat": self.epsilon_hat,
                "amsgrad": self.amsgrad,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Reads our config, or `keras.optimizers.Adam`'s (epsilon hat)."""
        return super().from_config(in_keras_form(config, epsilon_hat=True), custom_objects)
