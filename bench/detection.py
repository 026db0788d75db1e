"""Detection benchmarks: our NMS vs TensorFlow's, XLA on/off, and KerasCV's YOLOV8.

1. NMS on the same boxes: our hand-coded `nms.non_max_suppression` against
   `tf.image.non_max_suppression` (one class, the default grid's 12 x 12 x 3
   boxes), and our batched per-class `nms.batched_nms` against
   `tf.image.combined_non_max_suppression` (a batch of 32 images, 10 classes,
   the app's 20 per class and 100 per image); both sides inside tf.function,
   then both exported as signatures of one SavedModel and reloaded (any batch
   size, as the detector's export serves them); the results are checked equal
   before the sides are timed alternately (bench.common.compare, NMS_ROUNDS
   rounds: single calls are short, and the machine may be shared).
2. The peer a user would pick: KerasCV's YOLOV8Detector (no pretrained
   weights, a backbone of about our size) and ours, each trained for the same
   wall time on the same augmented stream of the default data, then both
   scored by our mAP on the test split. Compilation (the first step) is not
   counted. keras-cv is frozen upstream; this part runs only where
   `import keras_cv` works (e.g. `pip install keras-cv==0.9.0`), and is skipped otherwise.

    python -m bench detection        # DLSUITE_BENCH_SECONDS=120 sets part 2's budget

(Training throughput with and without XLA is bench/training.py's, for every app.)
"""

import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from apps.core.trainer import Trainer
from apps.detection import nms
from apps.detection.task import DetectionTask
from bench.common import compare, print_table
from configs.detection import get_config

SECONDS = float(os.environ.get("DLSUITE_BENCH_SECONDS", "120"))


def _boxes(rng, shape):
    xy = rng.uniform(0, 0.8, shape + (2,))
    wh = rng.uniform(0.05, 0.3, shape + (2,))
    return np.concatenate([xy, xy + wh], -1).astype(np.float32)


NMS_ROUNDS = 41


def _saved_model_signatures(functions, signature, folder):
    """{name: function} exported as one SavedModel's signatures, reloaded."""
    module = tf.Module()
    signatures = {name: tf.function(fn, input_signature=signature)
                  for name, fn in functions.items()}
    tf.saved_model.save(module, folder, signatures=signatures)
    loaded = tf.saved_model.load(folder)
    return {name: loaded.signatures[name] for name in functions}


def bench_nms():
    rng = np.random.default_rng(0)
    boxes = tf.constant(_boxes(rng, (432,)))
    scores = tf.constant(rng.uniform(size=432).astype(np.float32))

    def ours_1(b, s):
        return nms.non_max_suppression(b, s, 100, 0.5, 0.01)

    def theirs_1(b, s):
        return tf.image.non_max_suppression(b, s, 100, 0.5, 0.01)

    batch_boxes = tf.constant(_boxes(rng, (32, 432)))
    batch_scores = tf.constant((rng.uniform(size=(32, 432, 10)) ** 4).astype(np.float32))

    def ours_b(b, s):
        out = nms.batched_nms(b, s, max_per_class=20, max_detections=100, iou_threshold=0.5,
                              score_threshold=0.01, pre_nms_top_k=100)
        return {"boxes": out[0], "scores": out[1], "count": out[3]}

    def theirs_b(b, s):
        out = tf.image.combined_non_max_suppression(
            b[:, :, None, :], s, max_output_size_per_class=20, max_total_size=100,
            iou_threshold=0.5, score_threshold=0.01, clip_boxes=False)
        return {"boxes": out.nmsed_boxes, "scores": out.nmsed_scores,
                "count": out.valid_detections}

    def same(ours, theirs):  # every output equal, else no timing
        for a, b in zip(tf.nest.flatten(ours), tf.nest.flatten(theirs), strict=True):
            if not np.array_equal(a.numpy(), b.numpy()):
                raise AssertionError("our NMS and tf.image's give different results")

    rows = []
    single = tf.function(lambda: ours_1(boxes, scores)), tf.function(lambda: theirs_1(boxes, scores))
    same(*(f() for f in single))
    rows.append(compare("nms, 1 class, 432 boxes", *single, xla=False, rounds=NMS_ROUNDS))
    batched = (tf.function(lambda: ours_b(batch_boxes, batch_scores)["boxes"]),
               tf.function(lambda: theirs_b(batch_boxes, batch_scores)["boxes"]))
    same(ours_b(batch_boxes, batch_scores), theirs_b(batch_boxes, batch_scores))
    rows.append(compare("batched nms, 32 x 10 classes", *batched, xla=False, rounds=NMS_ROUNDS))

    with tempfile.TemporaryDirectory() as folder:
        served = _saved_model_signatures(
            {"ours": ours_1, "theirs": theirs_1},
            [tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.float32)],
            os.path.join(folder, "single"))
        single = [lambda f=f: f(b=boxes, s=scores)["output_0"] for f in served.values()]
        same(*(f() for f in single))
        rows.append(compare("nms, 1 class, SavedModel", *single, xla=False,
                            rounds=NMS_ROUNDS))
        served = _saved_model_signatures(
            {"ours": ours_b, "theirs": theirs_b},
            [tf.TensorSpec([None, 432, 4], tf.float32), tf.TensorSpec([None, 432, 10], tf.float32)],
            os.path.join(folder, "batched"))
        same(*(f(b=batch_boxes, s=batch_scores) for f in served.values()))
        batched = [lambda f=f: f(b=batch_boxes, s=batch_scores)["boxes"] for f in served.values()]
        rows.append(compare("batched nms, 32 x 10, SavedModel", *batched, xla=False,
                            rounds=NMS_ROUNDS))
    print_table("detection NMS: ours vs tf.image (the 'keras' column)", rows)
    return rows


def _trainer(xla, workdir):
    config = get_config()
    config.xla = xla
    trainer = Trainer(DetectionTask(config), workdir)
    return trainer, trainer.train_step_function(), iter(trainer.train_dataset(0))


def _train_ours(seconds, workdir):
    trainer, step, iterator = _trainer(False, workdir)
    float(step(iterator))  # compile
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds and steps < trainer.total_steps:
        loss = step(iterator)
        steps += 1
    float(loss)
    elapsed = time.perf_counter() - start
    metrics, _ = trainer.task.evaluate(trainer.model, trainer.data.test)
    return {"map50": metrics["map50"], "map": metrics["map"], "steps": steps,
            "examples_per_sec": steps * trainer.global_batch / elapsed,
            "params": trainer.model.count_params()}, trainer


def _train_keras_cv(seconds, trainer):
    import keras
    import keras_cv

    from apps.core import data as data_lib
    from apps.detection import evaluation

    task, config = trainer.task, trainer.config
    size = config.data.image_size
    backbone = keras_cv.models.YOLOV8Backbone(
        stackwise_channels=[16, 32, 64, 128], stackwise_depth=[1, 1, 1, 1],
        include_rescaling=True, input_shape=(size, size, config.data.channels))
    model = keras_cv.models.YOLOV8Detector(
        num_classes=task.num_classes, bounding_box_format="xyxy", backbone=backbone, fpn_depth=1,
        prediction_decoder=keras_cv.layers.NonMaxSuppression(
            bounding_box_format="xyxy", from_logits=True, confidence_threshold=0.01,
            iou_threshold=0.5, max_detections=100))
    model.compile(optimizer=keras.optimizers.Adam(2e-3, global_clipnorm=10.0),
                  classification_loss="binary_crossentropy", box_loss="ciou")

    def to_keras_cv(image, targets):
        return image * 255.0, {"boxes": targets["boxes"] * size,
                               "classes": tf.cast(targets["classes"], tf.float32)}

    stream = data_lib.train_stream(trainer.data.train, config.train.batch_size, config.seed,
                                   augment=task.train_example).map(to_keras_cv)

    class Budget(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self.start = time.perf_counter()  # after compiling
            elif time.perf_counter() - self.start >= seconds:
                self.model.stop_training = True
            self.steps = batch

    budget = Budget()
    model.fit(stream, epochs=1, steps_per_epoch=10**6, verbose=0, callbacks=[budget])
    elapsed = time.perf_counter() - budget.start
    test = trainer.data.test
    out = model.predict(test.inputs.astype(np.float32), batch_size=64, verbose=0)
    detections = [{"boxes": out["boxes"][i, :n] / size, "scores": out["confidence"][i, :n],
                   "classes": out["classes"][i, :n]} for i, n in enumerate(out["num_detections"])]
    truths = [{"boxes": b, "classes": c} for b, c in zip(test.targets["boxes"],
                                                          test.targets["classes"], strict=True)]
    report = evaluation.evaluate(detections, truths, task.num_classes)
    return {"map50": report["map50"], "map": report["map"], "steps": budget.steps,
            "examples_per_sec": budget.steps * config.train.batch_size / elapsed,
            "params": model.count_params()}


def bench_keras_cv(seconds=SECONDS):
    try:
        import keras_cv  # noqa: F401
    except Exception as e:  # noqa: BLE001 - not installed, or broken with this Keras
        print(f"\nKerasCV YOLOV8 comparison skipped (import keras_cv failed: {e})")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        ours, trainer = _train_ours(seconds, tmp)
        theirs = _train_keras_cv(seconds, trainer)
    print(f"\ndetection, {seconds:.0f} s of training each on the default data (test split)")
    print(f"{'':<18}{'mAP@0.5':>9}{'mAP':>8}{'examples/s':>12}{'steps':>8}{'params':>10}")
    for name, row in (("ours (YOLO)", ours), ("KerasCV YOLOV8", theirs)):
        print(f"{name:<18}{row['map50']:>9.3f}{row['map']:>8.3f}{row['examples_per_sec']:>12.0f}"
              f"{row['steps']:>8}{row['params']:>10}")
    return {"seconds": seconds, "ours": ours, "keras_cv_yolov8": theirs}


def main():
    from bench import peers

    peers.detection()


if __name__ == "__main__":
    main()
