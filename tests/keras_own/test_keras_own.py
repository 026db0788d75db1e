"""Keras's own unit tests, run against our classes (see runner.py).

Each Keras test file runs with the Keras class swapped for ours in Keras's
form (the flags and defaults that make ours compute what Keras's computes).
DESELECTED lists the tests left out, each with the reason: they test
Keras-private internals a user of the class never meets.
"""

import layers
import optimizers
from tests.keras_own.runner import deselect, keras_form, load

DESELECTED = {}


def _suite(relative_path, swaps, test_case):
    module = load(relative_path, swaps)
    case = getattr(module, test_case)
    return deselect(case, DESELECTED.get(test_case, {}))


SGDTest = _suite(
    "optimizers/sgd_test.py",
    {"SGD": keras_form(optimizers.Momentum, learning_rate=0.01, momentum=0.0, ewa=False)},
    "SGDTest",
)
RMSpropTest = _suite(
    "optimizers/rmsprop_test.py",
    {"RMSprop": keras_form(optimizers.RMSProp, epsilon=1e-7, epsilon_inside_sqrt=True)},
    "RMSpropTest",
)
AdamTest = _suite(
    "optimizers/adam_test.py",
    {"Adam": keras_form(optimizers.Adam, epsilon=1e-7, epsilon_hat=True)},
    "AdamTest",
)
AdamWTest = _suite(
    "optimizers/adamw_test.py",
    {"AdamW": keras_form(optimizers.AdamW, epsilon=1e-7, epsilon_hat=True)},
    "AdamWTest",
)
AdagradTest = _suite("optimizers/adagrad_test.py", {"Adagrad": optimizers.AdaGrad}, "AdagradTest")
BatchNormalizationTest = _suite(
    "layers/normalization/batch_normalization_test.py",
    {"layers.BatchNormalization": layers.BatchNorm},
    "BatchNormalizationTest",
)
LayerNormalizationTest = _suite(
    "layers/normalization/layer_normalization_test.py",
    {"layers.LayerNormalization": layers.LayerNorm},
    "LayerNormalizationTest",
)
