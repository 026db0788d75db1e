"""Hand-coded Keras optimizers and learning-rate schedules.

Each optimizer subclasses `keras.optimizers.Optimizer` (only `build()`,
`update_step()` and `get_config()`; clipping, weight decay, EMA and loss
scaling come from the base class) and is registered for serialization under
the package name "dlsuite".
"""

from optimizers import schedules
from optimizers.adagrad import AdaGrad
from optimizers.adam import Adam
from optimizers.adamw import AdamW
from optimizers.momentum import Momentum
from optimizers.rmsprop import RMSProp

__all__ = ["AdaGrad", "Adam", "AdamW", "Momentum", "RMSProp", "schedules"]
