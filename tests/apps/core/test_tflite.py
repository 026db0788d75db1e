"""TensorFlow Lite export (apps.core.tflite): both flavours against the SavedModel."""

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.core import export as export_lib
from apps.core import tflite
from apps.core.errors import UserError

# tf.lite.Interpreter warns that LiteRT's (ai_edge_litert) replaces it; TF 2.21 still has it.
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")

SIZE = 8
NAMES = [f"class {i}" for i in range(10)]
SIGNATURE = [tf.TensorSpec([None, None, None, None], tf.uint8, name="images")]


def _model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)  # 6 * 6 * 16 -> 10: 5760 weights, enough to be quantised
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def _serve(model, detour=False):
    """An app-like serving function: any-size uint8 images in, decoded outputs out.

    With `detour`, the images are upsampled and then subsampled: the same size
    in the end, but through an antialiased resize that is not the identity.
    """
    names = tf.constant(NAMES)

    def serve(images):
        x = tf.cast(images[..., :1], tf.float32)
        if detour:
            x = tf.image.resize(x, (2 * SIZE, 2 * SIZE), antialias=True)[:, ::2, ::2]
        x = tf.image.resize(x, (SIZE, SIZE), antialias=True)
        probabilities = tf.nn.softmax(model(x / 255.0, training=False), -1)
        class_id = tf.argmax(probabilities, -1, output_type=tf.int32)
        return {"probabilities": probabilities, "class_id": class_id,
                "class_name": tf.gather(names, class_id)}

    return serve


def _images(n=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 1), dtype=np.uint8)


def _run_tflite(path, images):
    runner = tf.lite.Interpreter(model_path=path).get_signature_runner("serving_default")
    return runner(images=images)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small model's SavedModel and TFLite pair, as Trainer.export writes them."""
    workdir = tmp_path_factory.mktemp("tflite")
    model = _model()
    serve = _serve(model)
    saved = export_lib.write_saved_model(str(workdir / "export"), model,
                                         {"serving_default": (serve, SIGNATURE)})
    sizes = tflite.write_tflite(str(workdir / "export_tflite"), model, serve, SIGNATURE)
    return workdir, saved, sizes


def test_writes_both_flavours_beside_a_pure_saved_model(exported):
    workdir, saved, sizes = exported
    assert sorted(os.listdir(workdir)) == ["export", "export_tflite"]  # no staging left
    assert sorted(os.listdir(workdir / "export_tflite")) == sorted(tflite.FLAVOURS)
    assert not [f for f in os.listdir(saved) if f.endswith(".tflite")]
    for name, size in sizes.items():
        assert os.path.getsize(workdir / "export_tflite" / name) == size
    # int8 weights: the 5760-weight dense layer shrinks to about a quarter.
    assert sizes[tflite.DYNAMIC_RANGE] < 0.6 * sizes[tflite.FLOAT]


def test_the_tflite_models_take_model_sized_uint8_images_with_any_batch(exported):
    workdir, _, _ = exported
    for name in tflite.FLAVOURS:
        runner = tf.lite.Interpreter(
            model_path=str(workdir / "export_tflite" / name)).get_signature_runner()
        detail = runner.get_input_details()["images"]
        assert detail["dtype"] == np.uint8
        assert list(detail["shape_signature"]) == [-1, SIZE, SIZE, 1]
        assert sorted(runner.get_output_details()) == ["class_id", "class_name", "probabilities"]
        for batch in (1, 5):
            assert runner(images=_images(batch))["probabilities"].shape == (batch, 10)


def test_float_model_equals_the_saved_model(exported):
    workdir, saved, _ = exported
    images = _images()
    reference = tf.saved_model.load(saved).signatures["serving_default"](images=images)
    lite = _run_tflite(str(workdir / "export_tflite" / tflite.FLOAT), images)
    np.testing.assert_allclose(lite["probabilities"], reference["probabilities"],
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(lite["class_id"], reference["class_id"])
    np.testing.assert_array_equal(lite["class_name"].astype(bytes),
                                  reference["class_name"].numpy())


def test_dynamic_range_model_is_close_to_the_saved_model(exported):
    workdir, saved, _ = exported
    images = _images(256)
    reference = tf.saved_model.load(saved).signatures["serving_default"](images=images)
    lite = _run_tflite(str(workdir / "export_tflite" / tflite.DYNAMIC_RANGE), images)
    # int8 weights and activations quantised on the fly: probabilities move by
    # well under 0.02 and nearly every decision stays (a near-tie may flip).
    np.testing.assert_allclose(lite["probabilities"], reference["probabilities"], atol=0.02)
    assert np.mean(lite["class_id"] == reference["class_id"].numpy()) >= 0.95
    assert not np.array_equal(lite["probabilities"], reference["probabilities"])  # quantised


def test_a_failed_conversion_keeps_the_previous_pair(exported, tmp_path):
    model = _model()
    path = str(tmp_path / "export_tflite")
    shutil.copytree(exported[0] / "export_tflite", path)
    before = {name: open(os.path.join(path, name), "rb").read() for name in tflite.FLAVOURS}
    # A resize to another size keeps ScaleAndTranslate, which TFLite cannot run.
    with pytest.raises(UserError, match=r"config\.export\.tflite.*ScaleAndTranslate"):
        tflite.write_tflite(path, model, _serve(model, detour=True), SIGNATURE)
    after = {name: open(os.path.join(path, name), "rb").read() for name in tflite.FLAVOURS}
    assert after == before
    assert sorted(os.listdir(tmp_path)) == ["export_tflite"]


def test_recover_removes_a_killed_conversion(exported, tmp_path):
    path = str(tmp_path / "export_tflite")
    shutil.copytree(exported[0] / "export_tflite", path + ".old")  # killed between the renames
    (tmp_path / ".export-killed" / "staged").mkdir(parents=True)
    export_lib.recover(path)
    assert sorted(os.listdir(tmp_path)) == ["export_tflite"]
    assert sorted(os.listdir(path)) == sorted(tflite.FLAVOURS)


def test_a_mixed_precision_model_converts_through_a_float32_copy(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = _model()
    finally:
        keras.config.set_dtype_policy("float32")
    assert mixed.layers[-1].compute_dtype == "bfloat16"
    copy = tflite.float32_copy(mixed)
    assert {layer.compute_dtype for layer in copy.layers} == {"float32"}
    twin = _model()  # built in float32 from the start
    twin.set_weights(mixed.get_weights())
    x = _images(4).astype(np.float32) / 255.0
    np.testing.assert_array_equal(copy(x), twin(x))
    sizes = tflite.write_tflite(str(tmp_path / "export_tflite"), copy, _serve(copy), SIGNATURE)
    assert sorted(sizes) == sorted(tflite.FLAVOURS)


def test_input_spec_needs_a_uint8_image_signature_and_a_fixed_size_model():
    model = _model()
    spec = tflite.input_spec(model, SIGNATURE)
    assert spec.shape.as_list() == [None, SIZE, SIZE, 1] and spec.dtype == tf.uint8
    assert spec.name == "images"
    with pytest.raises(UserError, match=r"config\.export\.tflite.*one uint8 image batch"):
        tflite.input_spec(model, [tf.TensorSpec([None], tf.string, name="text")])
    inputs = keras.Input((None, None, 3))
    any_size = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(UserError, match=r"config\.export\.tflite.*fixed size"):
        tflite.input_spec(any_size, SIGNATURE)


@pytest.mark.parametrize("method,antialias", [("bilinear", True), ("bilinear", False),
                                              ("bicubic", False), ("area", False),
                                              ("lanczos3", True), ("nearest", False)])
def test_a_resize_to_the_same_size_is_the_identity(method, antialias):
    """The claim `_same_size_resize_is_identity` rests on, checked against TensorFlow's
    own resize: an interpolating kernel at scale 1 gives out[i, j] = in[i, j]."""
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 7, 5, 3)), tf.float32)
    resized = tf.image.resize(images, (7, 5), method=method, antialias=antialias)
    np.testing.assert_allclose(resized, images, atol=1e-4)

    @tf.function(input_signature=[tf.TensorSpec([None, 7, 5, 3], tf.float32)])
    def traced(x):
        return tf.image.resize(x, (7, 5), method=method, antialias=antialias)

    resize = tf.image.resize
    with tflite._same_size_resize_is_identity():
        graph = traced.get_concrete_function().graph
    assert not [op for op in graph.get_operations() if "Resize" in op.type
                or op.type == "ScaleAndTranslate"]
    assert tf.image.resize is resize  # put back


def test_other_resizes_pass_through():
    with tflite._same_size_resize_is_identity():
        images = tf.ones((1, 4, 4, 1))
        assert tf.image.resize(images, (2, 2)).shape == (1, 2, 2, 1)
        # mitchellcubic is not interpolating (its kernel is not 0 at distance 1).
        x = tf.constant(np.random.default_rng(0).uniform(0, 1, (1, 4, 4, 1)), tf.float32)
        assert not np.allclose(tf.image.resize(x, (4, 4), method="mitchellcubic"), x)


def test_only_the_vision_apps_accept_export_tflite(tmp_path):
    from apps.classification.task import ClassificationTask
    from apps.translation.task import TranslationTask
    from configs.classification import get_config as classification_config
    from configs.translation import get_config as translation_config
    from tests.apps import cli

    config = translation_config("tiny")
    config.export.tflite = True
    cli.user_error_of(TranslationTask, config, tmp_path / "translation",
                      "config.export.tflite = True", "translation", "set it to false")
    config = classification_config("tiny")
    config.export.tflite = True
    assert ClassificationTask(config).tflite
