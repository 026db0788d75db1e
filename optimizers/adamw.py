"""AdamW."""

import keras

from optimizers.adam import Adam


@keras.saving.register_keras_serializable(package="dlsuite")
class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay.

    Loshchilov and Hutter (2019) take the weight decay out of the gradient
    (where Adam's per-weight scaling would distort it) and apply it to the
    weights directly, scaled by the learning rate. With `m_hat` and `v_hat` the
    bias-corrected moment averages of `optimizers.Adam`:

    ```
    w = w - learning_rate * (m_hat / (sqrt(v_hat) + epsilon) + weight_decay * w)
    ```

    The decay term is applied by Keras's base optimizer
    (`w = w - learning_rate * weight_decay * w`, before the Adam step, which
    does not depend on `w`, so the order does not matter), and the Adam step is
    the one of `optimizers.Adam`. With `epsilon_hat=True` this is exactly
    `keras.optimizers.AdamW(weight_decay=weight_decay, epsilon=epsilon)`.
    Variables can be kept out of the decay (biases, norms) with
    `exclude_from_weight_decay(var_list=..., var_names=...)` before building.
    A config written by `keras.optimizers.AdamW` loads with `AdamW.from_config`
    in Keras's form, as for `optimizers.Adam`.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or a
            callable that takes no arguments and returns the value to use.
            Defaults to `0.001`.
        weight_decay: Float, the decoupled weight-decay rate (multiplied by
            the learning rate). Must not be `None`. Defaults to `0.004`.
        beta_1: Float in `[0, 1)`, the decay rate of the first-moment
            average. Defaults to `0.9`.
        beta_2: Float in `[0, 1)`, the decay rate of the second-moment
            average. Defaults to `0.999`.
        epsilon: Small non-negative float that keeps the division finite.
            Defaults to `1e-8`.
        epsilon_hat: Boolean, where epsilon goes; see `optimizers.Adam`.
            Defaults to `False`.
        amsgrad: Boolean, the AMSGrad variant; see `optimizers.Adam`.
            Defaults to `False`.
        name: String, the name of the optimizer. Defaults to one made from the
            class name.
        **kwargs: The other keyword arguments of `keras.optimizers.Optimizer`:
            `clipnorm`, `clipvalue`, `global_clipnorm`, `use_ema`,
            `ema_momentum`, `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`.

    Reference:
        - Loshchilov and Hutter, 2019, "Decoupled Weight Decay Regularization",
          https://arxiv.org/abs/1711.05101.
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        epsilon_hat=False,
        amsgrad=False,
        name=None,
        **kwargs,
    ):
        if weight_decay is None:
            raise ValueError(
                "Argument `weight_decay` must be a float. Received: weight_decay=None"
            )
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            epsilon_hat=epsilon_hat,
            amsgrad=amsgrad,
            name=name,
            weight_decay=weight_decay,
            **kwargs,
        )
