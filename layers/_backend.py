"""What the layers need to know about the Keras backend they run on.

The library is backend-agnostic Keras 3 code (`keras.ops`); the few
TensorFlow-only pieces (the recurrent layers' TensorList loop, BatchNorm's
cross-replica statistics under `tf.distribute`) run only where
`is_tensorflow()` is true, and TensorFlow is imported only there.
"""

import keras


def is_tensorflow():
    """True when Keras runs on TensorFlow (the other backends have no tf.distribute)."""
    return keras.backend.backend() == "tensorflow"


def at_least_float32(dtype):
    """The dtype in which a numerically sensitive step (statistics, softmax) runs.

    float16/bfloat16 (and integers) -> float32; float32 and float64 stay.
    `keras.backend.result_type(dtype, "float32")` computes this on TensorFlow,
    but maps float64 to float32 on the other backends (Keras follows JAX's
    default of 32 bits there), which would silently lower a float64 layer's
    precision on JAX even with 64-bit types enabled.
    """
    if keras.backend.standardize_dtype(dtype) == "float64":
        return "float64"
    return keras.backend.result_type(dtype, "float32")
