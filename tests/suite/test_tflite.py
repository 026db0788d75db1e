"""TensorFlow Lite export of the vision apps, run as a user would.

Each vision app trains its tiny config for one epoch with
`--config.export.tflite=true`; then a fresh Python that cannot import the
project runs the SavedModel's serving_default and both TFLite models (with
tf.lite.Interpreter) on the app's test images, resized to the TFLite input
size as a phone app would, and the outputs are compared:

- float32 model: every integer and string output equal, every float output
  within 1e-5 of its largest magnitude (+1e-7): the same function, only the
  kernels differ (XNNPACK against oneDNN);
- dynamic-range model (int8 weights): the decisions agree on at least 95% of
  the images / pixels / detections, and the scores within 0.02 (0.05 in
  embedding distance), the bounds stated in `_check_dynamic_range`.

The detector of the tiny config finds nothing above the default threshold
after one epoch (scores about 0.01), so its run exports with
`decode.score_threshold=0`: the comparison then covers the 100 boxes per
image that survive NMS, not an empty padding.

Minutes in all, so marked `slow` (`make test-slow`).
"""

import importlib
import os
import time

import numpy as np
import pytest

from apps.core import tflite
from tests.apps import cli

pytestmark = pytest.mark.slow

APPS = {
    "classification": ("ClassificationTask", ()),
    "detection": ("DetectionTask", ("--config.decode.score_threshold=0.0",)),
    "segmentation": ("SegmentationTask", ()),
    "face_recognition": ("FaceRecognitionTask", ()),
}

# Runs in a Python that cannot import the project. Arguments: the workdir, the
# test images (.npy, uint8), the .npz to write every output to.
COMPARE = r'''
import json, os, sys, time, warnings
import numpy as np
import tensorflow as tf

warnings.filterwarnings("ignore", ".*tf.lite.Interpreter is deprecated")
workdir, images_path, out_path = sys.argv[1:4]
serving = tf.saved_model.load(os.path.join(workdir, "export")).signatures["serving_default"]
folder = os.path.join(workdir, "export_tflite")
images = np.load(images_path)
outputs, report = {}, {}


def plain(array):  # strings come back as object arrays of bytes; np.savez wants bytes
    return array.astype(bytes) if array.dtype == object else array


for name in sorted(os.listdir(folder)):
    runner = tf.lite.Interpreter(os.path.join(folder, name)).get_signature_runner()
    (key, detail), = runner.get_input_details().items()
    size = tuple(int(d) for d in detail["shape_signature"][1:3])
    assert detail["dtype"] == np.uint8 and detail["shape_signature"][3] == images.shape[3]
    # What a phone app does before calling the model: resize to its input size.
    x = tf.image.resize(images, size, antialias=True)
    x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8).numpy()
    start = time.perf_counter()
    lite = runner(**{key: x})
    seconds = time.perf_counter() - start
    saved = serving(**{key: tf.constant(x)})
    for k in saved:
        outputs[f"saved_model/{name}/{k}"] = plain(saved[k].numpy())
        outputs[f"{name}/{k}"] = plain(lite[k])
    report[name] = {"bytes": os.path.getsize(os.path.join(folder, name)),
                    "input": list(x.shape), "seconds": seconds}
np.savez(out_path, **outputs)
print(json.dumps(report))
'''


def _test_images(app, class_name):
    config = importlib.import_module(f"configs.{app}").get_config("tiny")
    task_cls = getattr(importlib.import_module(f"apps.{app}.task"), class_name)
    return np.asarray(task_cls(config).load_data().test.inputs, np.uint8)


@pytest.mark.parametrize("app", sorted(APPS))
def test_tflite_models_match_the_saved_model(app, tmp_path):
    class_name, flags = APPS[app]
    workdir = tmp_path / "run"
    start = time.perf_counter()
    cli.run_app(app, workdir, "--config.train.epochs=1", "--config.export.tflite=true", *flags)
    trained = time.perf_counter() - start
    assert sorted(os.listdir(workdir / "export_tflite")) == sorted(tflite.FLAVOURS)
    assert os.path.exists(workdir / "export" / "saved_model.pb")
    assert not [f for f in os.listdir(workdir / "export") if f.endswith(".tflite")]
    assert not [f for f in os.listdir(workdir) if f.startswith(".export-")]

    images = tmp_path / "images.npy"
    np.save(images, _test_images(app, class_name))
    report = cli.run_isolated(COMPARE, workdir, images, tmp_path / "outputs.npz")
    outputs = np.load(tmp_path / "outputs.npz")

    def pair(flavour):
        keys = [k.split("/")[-1] for k in outputs.files if k.startswith(flavour + "/")]
        return ({k: outputs[f"saved_model/{flavour}/{k}"] for k in keys},
                {k: outputs[f"{flavour}/{k}"] for k in keys})

    float_gap = _check_float(*pair(tflite.FLOAT))
    measured = _check_dynamic_range(app, *pair(tflite.DYNAMIC_RANGE))
    sizes = {name: f"{r['bytes'] / 1024:.1f} KiB" for name, r in report.items()}
    print(f"\n{app}: train+export {trained:.1f} s, input {report[tflite.FLOAT]['input']}, "
          f"sizes {sizes}, float max |diff| {float_gap}, dynamic range {measured}")


def _check_float(reference, lite):
    """Every output of the float model against the SavedModel's; returns the
    largest difference of each float output."""
    gaps = {}
    for key, want in reference.items():
        got = lite[key]
        assert got.shape == want.shape, key
        if want.dtype.kind == "f":
            tolerance = 1e-5 * np.max(np.abs(want), initial=0.0) + 1e-7
            gaps[key] = float(np.max(np.abs(got - want), initial=0.0))
            assert gaps[key] <= tolerance, (key, gaps[key], tolerance)
        else:
            np.testing.assert_array_equal(got, want, err_msg=key)
    return {k: f"{v:.1e}" for k, v in gaps.items()}


def _check_dynamic_range(app, reference, lite):
    """The dynamic-range model's headline outputs against the SavedModel's;
    returns the measured agreement."""
    if app == "classification":
        agree = np.mean(lite["class_id"] == reference["class_id"])
        gap = np.max(np.abs(lite["probabilities"] - reference["probabilities"]))
        assert agree >= 0.95 and gap <= 0.02, (agree, gap)
        return {"same class": f"{agree:.1%}", "max |diff| probability": f"{gap:.1e}"}
    if app == "segmentation":
        agree = np.mean(lite["class_map"] == reference["class_map"])
        gap = np.max(np.abs(lite["probabilities"] - reference["probabilities"]))
        assert agree >= 0.95 and gap <= 0.02, (agree, gap)
        return {"same class per pixel": f"{agree:.1%}", "max |diff| probability": f"{gap:.1e}"}
    if app == "face_recognition":
        # Unit-length embeddings: the distance between an image's two embeddings
        # is what moves a verification decision.
        shift = np.linalg.norm(lite["embeddings"] - reference["embeddings"], axis=-1)
        np.testing.assert_array_equal(lite["threshold"], reference["threshold"])
        assert np.max(shift) <= 0.05, np.max(shift)
        return {"max embedding shift": f"{np.max(shift):.1e}",
                "threshold": f"{reference['threshold'][0]:.3f}"}
    # detection: NMS may order near-tied scores differently, so boxes are matched
    # as sets: each SavedModel detection needs a TFLite one of its class with IoU >= 0.5.
    from apps.detection.boxes import pairwise_iou

    np.testing.assert_array_equal(lite["num_detections"], reference["num_detections"])
    matched = total = 0
    for i, count in enumerate(reference["num_detections"]):
        same_class = reference["classes"][i, :count, None] == lite["classes"][i, None, :count]
        overlap = pairwise_iou(reference["boxes"][i, :count],
                               lite["boxes"][i, :count]).numpy() >= 0.5
        matched += np.sum(np.any(same_class & overlap, axis=1))
        total += count
    gap = np.max(np.abs(np.sort(lite["scores"], 1) - np.sort(reference["scores"], 1)))
    assert total > 0 and matched >= 0.95 * total and gap <= 0.02, (matched, total, gap)
    return {"matched detections": f"{matched / total:.1%} of {total}",
            "max |diff| sorted scores": f"{gap:.1e}"}

