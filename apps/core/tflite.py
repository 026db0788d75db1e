"""TensorFlow Lite export of the vision apps: float32 and dynamic-range quantised.

With `config.export.tflite: true`, an app whose task has `tflite = True`
(classification, detection, segmentation, face recognition) also writes

    DIR/export_tflite/model_float.tflite          float32 weights and activations
    DIR/export_tflite/model_dynamic_range.tflite  int8 weights, float activations

The folder is swapped in whole (apps.core.export.staged_folder), so a crash
leaves the previous pair or the new pair, never a half-written file, and the
two files always come from the same weights. DIR/export stays a SavedModel.

What the TFLite model is. Each file holds one signature, `serving_default`,
traced from the same function as the SavedModel's `serving_default` and
returning the same outputs (labels and probabilities, boxes after NMS, class
maps, embeddings), but for uint8 images already at the model's input size,
(batch, H, W, C) = (any, *model.input_shape[1:]): a phone app resizes its
camera frame before it calls the model. Why not the SavedModel's
any-size input: its preparation resizes with an antialiased kernel
(`tf.image.resize(..., antialias=True)`, the op ScaleAndTranslate), for which
TFLite has no kernel, builtin or Select TF op; and an unknown channel count
leaves Conv2D without a builtin kernel. A fixed input size removes both and
keeps the model to TFLite's builtin ops, so it runs on any TFLite / LiteRT
runtime (no Select TF ops, no Flex delegate). On images of that size the
outputs equal the SavedModel's: a resize to an image's own size is the
identity, so it is left out of the trace (see `_same_size_resize_is_identity`).
The batch dimension stays dynamic (`Interpreter.resize_tensor_input`, or a
signature runner, which resizes by itself). A model trained with mixed
precision is exported from a float32 copy (`float32_copy`).

Runtime: TF 2.21 still ships `tf.lite.TFLiteConverter` and `tf.lite.Interpreter`
(the interpreter warns that it is deprecated in favour of LiteRT's
`ai_edge_litert.interpreter.Interpreter`, same API), so this needs no new
dependency; the files hold builtin ops only, so LiteRT runs them as they are.

Dynamic-range quantisation (`tf.lite.Optimize.DEFAULT` with no representative
data set) stores the weight tensors of convolutions and dense layers as int8
with float scales, and the kernels quantise their float inputs on the fly;
small tensors (under TFLite's default of 1024 elements: biases, the tiny
configs' first layers) stay float32. Its outputs are close to, not equal to,
the float model's (tests/suite/test_tflite.py states and checks how close).
"""

import contextlib
import os
import re

import keras
import tensorflow as tf

from apps.core import export as export_lib
from apps.core.errors import UserError

FLOAT = "model_float.tflite"
DYNAMIC_RANGE = "model_dynamic_range.tflite"
FLAVOURS = {FLOAT: [], DYNAMIC_RANGE: [tf.lite.Optimize.DEFAULT]}

# tf.image.resize methods whose kernel is 1 at distance 0 and 0 at every other
# whole number of pixels (interpolating kernels): at scale 1 they copy the input.
_INTERPOLATING = {"bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5"}


def input_spec(model, signature):
    """The TFLite input: `signature`'s uint8 images at the model's input size.

    `signature` is the SavedModel's serving_default input signature: one
    uint8 TensorSpec of rank 4 (batch, height, width, channels).
    """
    specs = tf.nest.flatten(signature)
    if len(specs) != 1 or specs[0].dtype != tf.uint8 or specs[0].shape.rank != 4:
        raise UserError("config.export.tflite = True: expected a serving_default signature "
                        f"that takes one uint8 image batch, not {signature}")
    inputs = getattr(model, "inputs", None) or []
    shape = tuple(inputs[0].shape[1:]) if len(inputs) == 1 else None
    if shape is None or len(shape) != 3 or None in shape:
        raise UserError("config.export.tflite = True: the model's input must be one image "
                        f"batch of fixed size (batch, H, W, C), not "
                        f"{[tuple(i.shape) for i in inputs]}")
    return tf.TensorSpec((None, *shape), tf.uint8, name=specs[0].name)


def write_tflite(path, model, serve, signature):
    """Writes both TFLite flavours of `serve` into the folder `path`, atomically.

    `serve` and `signature` are the task's serving_default endpoint (see
    Task.export_endpoints); the TFLite model takes `input_spec(model, signature)`.
    Returns {file name: size in bytes}.
    """
    spec = input_spec(model, signature)
    sizes = {}
    with export_lib.staged_folder(path) as staged:
        saved_model = staged + ".saved_model"
        # Keras's own LiteRT export takes the same road: a SavedModel first,
        # then TFLiteConverter.from_saved_model.
        with _same_size_resize_is_identity():
            export_lib.write_saved_model(saved_model, model, {"serving_default": (serve, [spec])})
        os.makedirs(staged)
        for name, optimizations in FLAVOURS.items():
            converter = tf.lite.TFLiteConverter.from_saved_model(
                saved_model, signature_keys=["serving_default"])
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            converter.optimizations = optimizations
            try:
                flatbuffer = converter.convert()
            except Exception as e:  # noqa: BLE001 - the converter raises several types
                raise UserError("config.export.tflite = True: TensorFlow Lite cannot convert "
                                f"this model: {_first_error(e)}") from None
            with open(os.path.join(staged, name), "wb") as f:
                f.write(flatbuffer)
            sizes[name] = len(flatbuffer)
    return sizes


def float32_copy(model):
    """A copy of `model` that computes in float32, with the same weights.

    Under mixed precision the model computes in float16 or bfloat16, which
    TFLite's builtin kernels do not take; its variables are float32 already,
    so the copy holds exactly the trained weights. The global policy is
    float32 while cloning, so that sublayers a layer builds itself are too.
    """
    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = keras.models.clone_model(model, clone_function=float32_layer)
    finally:
        keras.config.set_dtype_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def _first_error(exception):
    """The converter's message is an MLIR dump; the first op it could not convert says why."""
    text = str(exception)
    op = re.search(r"'(tf\.\w+)' op ([^\n]*)", text)
    if op:
        return f"{op.group(1)} op {op.group(2).strip()}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(exception).__name__)[:300]


@contextlib.contextmanager
def _same_size_resize_is_identity():
    """While tracing, `tf.image.resize` to the size an image already has returns it.

    The result is the same (an interpolating kernel at scale 1 samples the
    pixel centres: out[i, j] = in[i, j]; the method's float32 cast is kept),
    but TFLite has no kernel for the antialiased resize's ScaleAndTranslate
    op, so the op must not be in the graph. Other resizes pass through.
    """
    resize = tf.image.resize

    def resize_unless_same_size(images, size, method="bilinear", preserve_aspect_ratio=False,
                                antialias=False, name=None):
        same = (str(method) in _INTERPOLATING and not preserve_aspect_ratio
                and images.shape.rank in (3, 4)
                and tuple(images.shape[-3:-1]) == _static(size))
        if same:
            return images if str(method) == "nearest" else tf.cast(images, tf.float32)
        return resize(images, size, method=method, preserve_aspect_ratio=preserve_aspect_ratio,
                      antialias=antialias, name=name)

    tf.image.resize = resize_unless_same_size
    try:
        yield
    finally:
        tf.image.resize = resize


def _static(size):
    """(height, width) as Python ints if known while tracing, else None."""
    value = tf.get_static_value(size) if tf.is_tensor(size) else size
    if value is None:
        return None
    return tuple(int(v) for v in value)
