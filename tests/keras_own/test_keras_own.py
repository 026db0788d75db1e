"""Keras's own unit tests, run against our classes (see runner.py).

Each Keras test file runs with the Keras class swapped for ours in Keras's
form (the flags and defaults that make ours compute what Keras's computes).
DESELECTED lists the tests left out, each with the reason: they test
Keras-private internals a user of the class never meets.
"""

import layers
import optimizers
from tests.keras_own.runner import deselect, keras_form, load

_PRIVATE_SUBLAYERS = ("reads Keras's private projection sublayers (_query_dense, ...); ours "
                      "owns its kernels (Keras's weight order); tests/layers/test_attention.py "
                      "checks the same public behaviour")
DESELECTED = {
    "MultiHeadAttentionTest": {
        "test_causal_only_skipped_for_subclass": "overrides the private _compute_attention hook",
        "test_compute_attention_combines_causal_and_explicit_mask_fused_fallback":
            "calls the private _compute_attention",
        "test_compute_attention_combines_causal_and_explicit_mask_manual_path":
            "calls the private _compute_attention",
        "test_dtype_policy_map": "per-sublayer dtype policies keyed by Keras's sublayer paths "
                                 "(mha/query) and its private _query_dense._kernel",
        "test_initializer": _PRIVATE_SUBLAYERS,
        "test_mha_constraints": _PRIVATE_SUBLAYERS,
        "test_quantize_int8": _PRIVATE_SUBLAYERS + " (int8 is tested against Keras's "
                                                   "quantized layer there)",
        "test_lora": "enable_lora belongs to Keras's EinsumDense sublayers, which ours has not",
        "test_sliding_window_serialization": "reads the private attribute _sliding_window (the "
                                             "config round trip it also checks passes)",
    },
}


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
MultiHeadAttentionTest = _suite(
    "layers/attention/multi_head_attention_test.py",
    {"layers.MultiHeadAttention": layers.MultiHeadAttention},
    "MultiHeadAttentionTest",
)
