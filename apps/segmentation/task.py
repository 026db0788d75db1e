"""Semantic segmentation: the task the shared trainer runs.

A U-Net (apps.segmentation.model) maps an image to per-pixel class logits;
the loss is the per-pixel cross-entropy (optionally class-weighted) plus
optionally the soft Dice loss (apps.segmentation.losses); the metrics are
pixel accuracy, mean and per-class IoU and Dice (apps.segmentation.metrics).
The SavedModel's `serving_default` takes uint8 images of any size and
returns the class map at the input size, the probabilities and a colour-coded
mask. `--mode=predict` writes colour-coded masks and overlays of the
images at --input.
"""

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from apps.core import data as core_data
from apps.core import images as images_lib
from apps.core.inference import compiled
from apps.core.task import Task
from apps.segmentation import data as data_lib
from apps.segmentation import losses as losses_lib
from apps.segmentation import metrics as metrics_lib
from apps.segmentation import model as model_lib

EVAL_BATCH = 64
SHOWN = 6  # examples drawn in TensorBoard
OVERLAY_ALPHA = 0.5


def palette(num_classes):
    """A fixed colour per class (uint8 (K, 3)); class 0 is black."""
    base = np.array([
        (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
        (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
        (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200),
        (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
        (128, 128, 128), (255, 255, 255)], np.uint8)
    if num_classes <= len(base):
        return base[:num_classes]
    extra = np.random.default_rng(0).integers(0, 256, (num_classes - len(base), 3))
    return np.concatenate([base, extra.astype(np.uint8)])


def overlay(image, mask_rgb, alpha=OVERLAY_ALPHA):
    """uint8 image (..., H, W, 3) blended with its colour-coded mask (the same shape)."""
    blended = (1 - alpha) * image.astype(np.float32) + alpha * mask_rgb.astype(np.float32)
    return (blended + 0.5).astype(np.uint8)


class SegmentationTask(Task):
    tflite = True  # a TensorFlow Lite export at the model's input size (apps.core.tflite)
    headline_metrics = ("mean_iou", "pixel_accuracy")

    def __init__(self, config):
        super().__init__(config)
        self.size = tuple(config.data.image_size)

    def load_data(self):
        data, self.class_names = data_lib.load(self.config)
        self.num_classes = len(self.class_names)
        self.class_weights = None
        if self.config.loss.class_weights == "balanced":
            self.class_weights = losses_lib.balanced_class_weights(data.train.targets,
                                                                   self.num_classes)
            logging.info("class weights: %s", np.round(self.class_weights, 3).tolist())
        logging.info("data: %d train, %d val, %d test images of %dx%d, %d classes",
                     len(data.train), len(data.val), len(data.test), self.size[1],
                     self.size[0], self.num_classes)
        return data

    def build_model(self):
        m = self.config.model
        return model_lib.unet((*self.size, 3), self.num_classes, n_filters=m.n_filters,
                              depth=m.depth, batch_norm=m.batch_norm, dropout=m.dropout,
                              dropout_blocks=m.dropout_blocks)

    # ------------------------------------------------------------- examples

    def eval_example(self, image, mask):
        return tf.cast(image, tf.float32) / 255.0, tf.cast(mask, tf.int32)

    def train_example(self, image, mask, seed):
        image, mask = self.eval_example(image, mask)
        a = self.config.data.augment
        return augment_pair(image, mask, seed, flip=a.flip, shift=a.shift, color=a.color)

    def per_example_loss(self, masks, logits):
        ignore = self.config.data.ignore_label
        loss = losses_lib.cross_entropy(masks, logits, self.class_weights, ignore_label=ignore)
        if self.config.loss.dice_weight:
            loss += self.config.loss.dice_weight * losses_lib.soft_dice(masks, logits,
                                                                        ignore_label=ignore)
        return loss

    # ------------------------------------------------------------ evaluation

    def evaluate(self, model, split):
        """Pixel accuracy, IoU and Dice from the confusion matrix, accumulated
        batch by batch (a split read from files is never held whole)."""
        infer = compiled(model, "class_map", lambda: tf.function(
            lambda x: tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32),
            autograph=False))
        matrix = np.zeros((self.num_classes, self.num_classes), np.int64)
        shown = []
        for x, masks in core_data.eval_batches(split, EVAL_BATCH, self.eval_example):
            predictions = infer(x).numpy()
            matrix += metrics_lib.confusion_matrix(masks.numpy(), predictions, self.num_classes)
            shown += list(predictions[:SHOWN - len(shown)].astype(np.uint8))
        report = metrics_lib.segmentation_report(matrix)
        metrics = {key: report[key] for key in ("pixel_accuracy", "mean_iou", "dice")}
        for name, iou, dice in zip(self.class_names, report["iou"], report["class_dice"],
                                   strict=True):
            metrics[f"class_{name}_iou"] = float(iou)
            metrics[f"class_{name}_dice"] = float(dice)
        colours = palette(self.num_classes)
        index = np.arange(len(shown))
        inputs, truths = split.inputs[index], np.asarray(split.targets[index])
        panels = np.concatenate([inputs, overlay(inputs, colours[truths]),
                                 overlay(inputs, colours[np.stack(shown)])], axis=2)
        return metrics, {"input_truth_prediction": images_lib.upscale(panels, 128)}

    # ---------------------------------------------------------------- export

    def export_endpoints(self, model):
        names = tf.constant(self.class_names)
        colours = tf.constant(palette(self.num_classes))
        size = self.size

        def serve(images):
            """uint8 images (batch, height, width, 1, 3 or 4) of any size."""
            x = to_rgb(tf.cast(images, tf.float32))
            x = tf.image.resize(x, size, antialias=True) / 255.0
            probabilities = tf.nn.softmax(tf.cast(model(x, training=False), tf.float32), -1)
            probabilities = tf.image.resize(probabilities, tf.shape(images)[1:3],
                                            method="bilinear")
            class_map = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            return {
                "class_map": class_map,
                "probabilities": probabilities,
                "mask_rgb": tf.gather(colours, class_map),
                "class_names": names,
            }

        signature = [tf.TensorSpec([None, None, None, None], tf.uint8, name="images")]
        return {"serving_default": (serve, signature)}

    # --------------------------------------------------------------- predict

    def read_item(self, file):
        return images_lib.read_image(file)

    def predict_item(self, saved_model, file, image, output):
        """Writes OUTPUT_mask.png (colour-coded classes) and OUTPUT_overlay.png of
        one image and prints each class's share of it; its record for predictions.json."""
        out = saved_model.signatures["serving_default"](images=tf.constant(image[None]))
        class_map = out["class_map"][0].numpy()
        names = [n.decode() for n in out["class_names"].numpy()]
        mask_rgb = out["mask_rgb"][0].numpy()
        mask_path, overlay_path = output + "_mask.png", output + "_overlay.png"
        Image.fromarray(mask_rgb).save(mask_path)
        Image.fromarray(overlay(image, mask_rgb)).save(overlay_path)
        shares = np.bincount(class_map.ravel(), minlength=len(names)) / class_map.size
        found = {names[c]: round(float(shares[c]), 4) for c in np.argsort(-shares)
                 if shares[c] > 0}
        print(f"{file}: " + ", ".join(f"{name} {share:.1%}" for name, share in found.items()))
        return {"file": file, "mask": mask_path, "overlay": overlay_path, "class_shares": found}


def to_rgb(images):
    """(B, H, W, C) with C = 1, 3 or 4 (known at run time) -> (B, H, W, 3)."""
    channels = tf.shape(images)[-1]
    rgb = tf.cond(channels >= 3, lambda: images[..., :3],
                  lambda: tf.repeat(images[..., :1], 3, axis=-1))
    return tf.ensure_shape(rgb, [None, None, None, 3])


def augment_pair(image, mask, seed, flip=False, shift=0.0, color=0.0):
    """The same random flip and shift of an image (H, W, 3) and its mask (H, W).

    The shift pads both by reflection and crops them at the same random
    offset (at most `shift` of each side), so no pixel is left without a
    class; `color` jitters the image's brightness and contrast only.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    if flip:
        mirror = tf.random.stateless_uniform([], seeds[0]) < 0.5
        image = tf.where(mirror, image[:, ::-1], image)
        mask = tf.where(mirror, mask[:, ::-1], mask)
    if shift:
        height, width = image.shape[0], image.shape[1]
        py, px = int(round(shift * height)), int(round(shift * width))
        if py or px:
            image = tf.pad(image, [[py, py], [px, px], [0, 0]], mode="REFLECT")
            mask = tf.pad(mask, [[py, py], [px, px]], mode="REFLECT")
            dy = tf.random.stateless_uniform([], seeds[1], 0, 2 * py + 1, dtype=tf.int32)
            dx = tf.random.stateless_uniform([], seeds[2], 0, 2 * px + 1, dtype=tf.int32)
            image = tf.slice(image, [dy, dx, 0], [height, width, 3])
            mask = tf.slice(mask, [dy, dx], [height, width])
    if color:
        image = images_lib.augment_image(image, seeds[3], color=color)
    return image, mask

