"""The optimizer and learning-rate schedule an app's config asks for.

    config.optimizer.name          momentum | rmsprop | adam | adamw | adagrad
    config.optimizer.learning_rate peak learning rate
    config.optimizer.schedule      constant | step | inverse_time | exponential |
                                   warmup_cosine | linear | inverse_sqrt
    config.optimizer.momentum      the velocity's decay (momentum)
    config.optimizer.beta_1/beta_2 the moment averages' decays (adam, adamw)
    config.optimizer.weight_decay  decoupled weight decay (adamw)
    config.optimizer.clipnorm      global gradient-norm clipping (0 = off)

All come from this project's `optimizers` package.
"""

import ml_collections

import optimizers
from apps.core.config import Rule, non_negative_float, one_of, positive_float
from apps.core.errors import UserError
from optimizers import schedules

OPTIMIZERS = ("momentum", "rmsprop", "adam", "adamw", "adagrad")
SCHEDULES = ("constant", "step", "inverse_time", "exponential", "warmup_cosine", "linear",
             "inverse_sqrt")


def optimizer_config(name="adam", learning_rate=1e-3, schedule="constant"):
    config = ml_collections.ConfigDict()
    config.name = name
    config.learning_rate = learning_rate
    config.schedule = schedule
    config.warmup_epochs = 0.0  # warmup_cosine, inverse_sqrt
    config.decay_epochs = (30, 60, 90)  # step: divide by 10 at these epochs
    config.decay_rate = 0.1  # inverse_time, exponential (per epoch)
    config.momentum = 0.9  # momentum
    config.beta_1 = 0.9  # adam, adamw
    config.beta_2 = 0.999  # adam, adamw
    config.weight_decay = 0.0  # adamw
    config.clipnorm = 0.0  # global norm; 0 = off
    return config


RULES = {
    "optimizer.name": one_of(*OPTIMIZERS),
    "optimizer.learning_rate": positive_float,
    "optimizer.schedule": one_of(*SCHEDULES),
    "optimizer.warmup_epochs": non_negative_float,
    "optimizer.decay_rate": non_negative_float,
    "optimizer.momentum": Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "optimizer.beta_1": Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "optimizer.beta_2": Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "optimizer.weight_decay": non_negative_float,
    "optimizer.clipnorm": non_negative_float,
}


def make_schedule(config, steps_per_epoch, total_steps):
    lr = config.learning_rate
    warmup = int(config.warmup_epochs * steps_per_epoch)
    name = config.schedule
    if name == "warmup_cosine" and warmup >= total_steps:
        raise UserError(f"config.optimizer.warmup_epochs = {config.warmup_epochs} leaves no "
                        f"steps after the warm-up ({total_steps} steps in all); lower it or "
                        "raise config.train.epochs")
    if name == "constant":
        return lr
    if name == "step":
        return schedules.StepDecay(lr, boundaries_epochs=tuple(config.decay_epochs),
                                   factor=0.1, steps_per_epoch=steps_per_epoch)
    if name == "inverse_time":
        return schedules.InverseTimeDecay(lr, decay_rate=config.decay_rate,
                                          steps_per_epoch=steps_per_epoch)
    if name == "exponential":
        return schedules.ExponentialDecay(lr, decay_steps=steps_per_epoch,
                                          decay_rate=config.decay_rate)
    if name == "warmup_cosine":
        return schedules.WarmupCosine(lr, warmup_steps=warmup, total_steps=total_steps)
    if name == "linear":
        return schedules.LinearDecay(lr, decay_steps=total_steps)
    if name == "inverse_sqrt":
        return schedules.InverseSqrt(lr, warmup_steps=max(1, warmup))
    raise ValueError(name)


def make_optimizer(config, steps_per_epoch, total_steps, clip=False):
    """The optimizer; it clips gradients itself only when `clip` is True.

    The trainer clips the all-reduced gradients itself, since Keras's base
    optimizer clips each replica's gradients before they are summed.
    """
    lr = make_schedule(config, steps_per_epoch, total_steps)
    common = {"global_clipnorm": (config.clipnorm or None) if clip else None}
    name = config.name
    if name == "momentum":
        return optimizers.Momentum(lr, momentum=config.momentum, **common)
    if name == "rmsprop":
        return optimizers.RMSProp(lr, **common)
    if name == "adam":
        return optimizers.Adam(lr, beta_1=config.beta_1, beta_2=config.beta_2, **common)
    if name == "adamw":
        return optimizers.AdamW(lr, weight_decay=config.weight_decay, beta_1=config.beta_1,
                                beta_2=config.beta_2, **common)
    if name == "adagrad":
        return optimizers.AdaGrad(lr, **common)
    raise ValueError(name)
