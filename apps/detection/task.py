"""Object detection (YOLO-style): the task the shared trainer runs."""

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from apps.core import images as images_lib
from apps.core.data import eval_batches
from apps.core.errors import UserError
from apps.core.inference import compiled
from apps.core.task import Task
from apps.detection import anchors as anchors_lib
from apps.detection import data as data_lib
from apps.detection import draw as draw_lib
from apps.detection import encoding, evaluation, nms
from apps.detection import loss as loss_lib
from apps.detection import model as model_lib

EVAL_BATCH = 64


class DetectionTask(Task):
    tflite = True  # a TensorFlow Lite export at the model's input size (apps.core.tflite)
    headline_metrics = ("map50", "map")

    def __init__(self, config):
        super().__init__(config)
        self.grid_size = config.data.image_size // model_lib.stride(config.model.stages)
        self.export_class_names = None  # predict: the SavedModel's, read at its first image

    # ------------------------------------------------------------------ data

    def load_data(self):
        data, self.class_names, self.category_ids = data_lib.load(self.config)
        self.num_classes = len(self.class_names)
        self.anchors = self._choose_anchors(data.train)
        logging.info("data: %d train, %d val, %d test images, %d classes; grid %dx%d, "
                     "anchors (w, h) %s", len(data.train), len(data.val), len(data.test),
                     self.num_classes, self.grid_size, self.grid_size,
                     np.round(self.anchors.astype(np.float64), 4).tolist())
        return data

    def _choose_anchors(self, train):
        """config.model.anchors, or k-means on the training boxes (seeded by config.seed).

        Every run in a workdir (a resume, --mode=eval or export) computes them
        again from the same boxes, so they are the same anchors; the export
        keeps them (its `metadata` signature).
        """
        c = self.config
        if c.model.anchors:
            anchors = np.asarray(c.model.anchors, np.float32)
        else:
            boxes, classes = train.targets["boxes"], train.targets["classes"]
            valid = boxes[classes >= 0]
            wh = np.stack([valid[:, 2] - valid[:, 0], valid[:, 3] - valid[:, 1]], -1)
            if len(wh) < c.model.num_anchors:
                raise UserError(f"the training split has {len(wh)} boxes, fewer than "
                                f"config.model.num_anchors = {c.model.num_anchors}")
            anchors, mean_iou = anchors_lib.kmeans(wh, c.model.num_anchors, seed=c.seed)
            anchors = anchors.astype(np.float32)
            logging.info("k-means anchors: mean IoU %.3f with the training boxes", mean_iou)
        # Rounded to 6 decimals, as the runs of earlier versions did theirs.
        return np.asarray([[round(float(v), 6) for v in a] for a in anchors], np.float32)

    def build_model(self):
        m = self.config.model
        return model_lib.build(self.config.data.image_size, self.config.data.channels,
                               self.num_classes, m.num_anchors, stages=m.stages,
                               width=m.width, head_width=m.head_width)

    # ------------------------------------------------------------- examples

    def prepare(self, image):
        """uint8 image(s) of any size and 1 or 3 channels -> the model's float input."""
        return images_lib.prepare_image(image, self.config.data.image_size,
                                        self.config.data.channels)

    def _targets(self, boxes, classes):
        grid = encoding.encode(boxes, classes, self.anchors, self.grid_size)
        return {"grid": grid, "boxes": tf.cast(boxes, tf.float32),
                "classes": tf.cast(classes, tf.int32)}

    def eval_example(self, image, targets):
        return self.prepare(image), self._targets(targets["boxes"], targets["classes"])

    def train_example(self, image, targets, seed):
        a = self.config.data.augment
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
        image, boxes, classes = data_lib.augment(
            self.prepare(image), targets["boxes"], targets["classes"], seeds[0],
            flip=a.flip, scale=a.scale, translate=a.translate)
        if a.color:
            image = images_lib.augment_image(image, seeds[1], color=a.color)
        return image, self._targets(boxes, classes)

    def loss_terms(self, targets, outputs):
        c = self.config.loss
        return loss_lib.yolo_loss(
            targets["grid"], targets["boxes"], targets["classes"], outputs, self.anchors,
            box_loss=c.box, obj_scale=c.obj_scale, noobj_scale=c.noobj_scale,
            coord_scale=c.coord_scale, class_scale=c.class_scale, ignore_iou=c.ignore_iou)

    def per_example_loss(self, targets, outputs):
        # The terms (objectness, no_object, box, class) each go to tb/train.
        return self.loss_terms(targets, outputs)

    # ------------------------------------------------------------- detection

    def detect(self, outputs, score_threshold):
        """Raw outputs -> (boxes normalized, scores, classes, count) after filtering and NMS.

        Boxes are clipped to the image before NMS.
        """
        d = self.config.decode
        boxes, objectness, probabilities = encoding.decode_predictions(outputs, self.anchors)
        boxes = tf.clip_by_value(boxes, 0.0, 1.0)  # boxes end at the image's border
        return nms.batched_nms(boxes, nms.class_scores(objectness, probabilities),
                               max_per_class=d.max_per_class, max_detections=d.max_detections,
                               iou_threshold=d.iou_threshold, score_threshold=score_threshold,
                               pre_nms_top_k=d.pre_nms_top_k)

    def _eval_step(self, model):
        """(loss terms, detections for mAP, confident detections) of a batch, compiled once."""
        low = self.config.eval.score_threshold
        high = self.config.decode.score_threshold

        def step(images, targets):
            outputs = model(images, training=False)
            return (self.loss_terms(targets, outputs), self.detect(outputs, low),
                    self.detect(outputs, high))

        return compiled(model, "detection_eval", lambda: tf.function(step, autograph=False))

    # ------------------------------------------------------------ evaluation

    def evaluate(self, model, split):
        step = self._eval_step(model)
        terms = {name: 0.0 for name in loss_lib.TERMS}
        detections, shown = [], []
        for images, targets in eval_batches(split, EVAL_BATCH, self.eval_example):
            batch_terms, (boxes, scores, classes, count), confident = step(images, targets)
            for name, value in batch_terms.items():
                terms[name] += float(tf.reduce_sum(value))
            for i, n in enumerate(count.numpy()):
                detections.append({"boxes": boxes[i, :n].numpy(), "scores": scores[i, :n].numpy(),
                                   "classes": classes[i, :n].numpy()})
            if len(shown) < self.config.eval.images:
                shown.extend(zip(*[t.numpy() for t in confident], strict=True))
        truths = [{"boxes": b, "classes": c} for b, c in zip(split.targets["boxes"],
                                                              split.targets["classes"],
                                                              strict=True)]
        report = evaluation.evaluate(detections, truths, self.num_classes,
                                     max_per_image=self.config.decode.max_detections)
        n = max(1, len(split))
        metrics = {"map50": report["map50"], "map": report["map"], "map75": report["map75"],
                   "coco_map50": report["coco_map50"]}
        for name, value in terms.items():
            metrics[f"loss_{name}"] = value / n
        metrics["loss"] = sum(terms.values()) / n
        for c, name in enumerate(self.class_names):
            metrics[f"class_{name}_ap50"] = float(report["ap50"][c])
            metrics[f"class_{name}_ap"] = float(report["ap"][c])
        images = {}
        if report["pr_curves"]:
            images["precision_recall"] = images_lib.figure_to_image(
                evaluation.pr_figure(report["pr_curves"], self.class_names))
        if shown:
            images["detections"] = self._pictures(split, shown[:self.config.eval.images])
        return metrics, images

    def _pictures(self, split, shown):
        """Ground truth (left) beside the detections at decode.score_threshold (right)."""
        size = self.config.data.image_size
        scale = max(1, 192 // size)
        tiles = []
        for i, (boxes, scores, classes, count) in enumerate(shown):
            image = images_lib.to_uint8(self.prepare(split.inputs[i]).numpy())
            truth = draw_lib.draw(image, split.targets["boxes"][i] * size,
                                  split.targets["classes"][i], self.class_names, scale=scale)
            found = draw_lib.draw(image, boxes[:count] * size, classes[:count],
                                  self.class_names, scores=scores[:count], scale=scale)
            tiles += [truth, found]
        return images_lib.grid(np.stack(tiles), columns=4)

    # ---------------------------------------------------------------- export

    def export_endpoints(self, model):
        names = tf.constant(self.class_names + [""])
        category_ids = tf.constant(self.category_ids + [-1], tf.int64)
        threshold = self.config.decode.score_threshold
        anchors = tf.constant(self.anchors)

        def serve(images):
            """uint8 images (batch, height, width, 1 or 3) of any size."""
            shape = tf.shape(images)
            h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
            outputs = model(self.prepare(images), training=False)
            boxes, scores, classes, count = self.detect(outputs, threshold)
            return {
                "boxes": boxes * tf.stack([w, h, w, h]),  # (x1, y1, x2, y2) in input pixels
                "scores": scores,
                "classes": tf.cast(classes, tf.int64),
                "class_names": tf.gather(names, tf.where(classes >= 0, classes, len(names) - 1)),
                # The data set's own ids (COCO's 1..90), for its evaluation tools.
                "category_ids": tf.gather(category_ids,
                                          tf.where(classes >= 0, classes, len(names) - 1)),
                "num_detections": tf.cast(count, tf.int64),
            }

        def metadata():
            """The anchors (w, h, normalized), class names and category ids, input
            size and threshold."""
            return {"anchors": anchors, "class_names": names[:-1],
                    "category_ids": category_ids[:-1],
                    "image_size": tf.constant(self.config.data.image_size),
                    "score_threshold": tf.constant(threshold)}

        signature = [tf.TensorSpec([None, None, None, None], tf.uint8, name="images")]
        return {"serving_default": (serve, signature), "metadata": (metadata, [])}

    # --------------------------------------------------------------- predict

    def read_item(self, file):
        return images_lib.read_image(file, channels=3)

    def predict_item(self, saved_model, file, image, output):
        """Detects in one image: writes OUTPUT.png (the boxes drawn with class and
        score), prints the detections; its record holds them in the file's pixels."""
        if self.export_class_names is None:  # the ids of the export, not of this config's data
            self.export_class_names = [n.decode() for n in saved_model.signatures["metadata"]()[
                "class_names"].numpy()]
        names = self.export_class_names
        out = saved_model.signatures["serving_default"](images=tf.constant(image[None]))
        n = int(out["num_detections"][0])
        boxes, scores, classes, category_ids = (
            out[k][0, :n].numpy() for k in ("boxes", "scores", "classes", "category_ids"))
        found = [{"box": [round(float(v), 2) for v in b], "score": round(float(s), 4),
                  "class_id": int(c), "class_name": names[int(c)], "category_id": int(i)}
                 for b, s, c, i in zip(boxes, scores, classes, category_ids, strict=True)]
        height, width = image.shape[:2]
        picture = draw_lib.draw(image, boxes, classes, names, scores=scores,
                                scale=max(1, 256 // max(width, height)))
        Image.fromarray(picture).save(output + ".png")
        summary = ", ".join(f"{d['class_name']} {d['score']:.2f}" for d in found)
        print(f"{file}: {n} detection(s){': ' + summary if summary else ''}")
        return {"file": file, "width": width, "height": height, "annotated": output + ".png",
                "detections": found}
