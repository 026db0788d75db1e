"""Image classification: the task the shared trainer runs."""


import numpy as np
import tensorflow as tf
from absl import logging

from apps.classification import data as data_lib
from apps.classification import model as model_lib
from apps.core import images as images_lib
from apps.core import metrics as metrics_lib
from apps.core.errors import UserError
from apps.core.image_task import ImageTask
from apps.core.inference import predict_outputs

EVAL_BATCH = 256
MISCLASSIFIED_SHOWN = 24


class ClassificationTask(ImageTask):
    headline_metrics = ("accuracy", "macro_f1")

    def load_data(self):
        data, self.class_names = data_lib.load(self.config)
        self.num_classes = len(self.class_names)
        logging.info("data: %d train, %d val, %d test examples, %d classes",
                     len(data.train), len(data.val), len(data.test), self.num_classes)
        return data

    def build_model(self):
        c = self.config
        model = model_lib.build(c.model.name, c.data.image_size, c.data.channels,
                                self.num_classes, width=c.model.width, dropout=c.model.dropout,
                                freeze_layers=c.transfer.freeze_layers)
        if not model.trainable_weights:
            raise UserError(f"config.transfer.freeze_layers = {c.transfer.freeze_layers}: "
                            f"that freezes every layer of {c.model.name} (it has "
                            f"{len(model.layers) - 1}); expected fewer, so that some train")
        return model

    def per_example_loss(self, labels, logits):
        smoothing = self.config.model.label_smoothing
        one_hot = tf.one_hot(labels, self.num_classes)
        if smoothing:
            one_hot = one_hot * (1 - smoothing) + smoothing / self.num_classes
        return tf.nn.softmax_cross_entropy_with_logits(one_hot, tf.cast(logits, tf.float32))

    # ------------------------------------------------------------ evaluation

    def evaluate(self, model, split):
        logits = predict_outputs(model, split, EVAL_BATCH, self.eval_example)
        k = self.config.eval.top_k
        report = metrics_lib.classification_report(split.targets, logits, self.num_classes, k)
        metrics = {key: report[key] for key in ("accuracy", f"top{k}_accuracy", "macro_f1")}
        for name, p, r, f in zip(self.class_names, report["precision"], report["recall"],
                                 report["f1"], strict=True):
            metrics[f"class_{name}_precision"] = float(p)
            metrics[f"class_{name}_recall"] = float(r)
            metrics[f"class_{name}_f1"] = float(f)
        images = {"confusion_matrix": images_lib.figure_to_image(
            metrics_lib.confusion_matrix_figure(report["confusion_matrix"], self.class_names))}
        predicted = np.argmax(logits, -1)
        wrong = np.flatnonzero(predicted != split.targets)[:MISCLASSIFIED_SHOWN]
        if len(wrong):
            shown = images_lib.to_uint8(self.prepare(split.inputs[wrong]).numpy())
            captions = [f"true {self.class_names[split.targets[i]]}\n"
                        f"predicted {self.class_names[predicted[i]]}" for i in wrong]
            images["misclassified"] = images_lib.grid(images_lib.captioned(shown, captions))
        return metrics, images

    # ---------------------------------------------------------------- export

    def export_endpoints(self, model):
        names = tf.constant(self.class_names)
        k = min(self.config.eval.top_k, self.num_classes)

        def serve(images):
            """uint8 images (batch, height, width, 1 or 3) of any size."""
            probabilities = tf.nn.softmax(model(self.prepare(images), training=False), -1)
            top = tf.math.top_k(probabilities, k=k)
            return {
                "class_id": tf.cast(top.indices[:, 0], tf.int64),
                "class_name": tf.gather(names, top.indices[:, 0]),
                "probability": top.values[:, 0],
                "top_k_ids": tf.cast(top.indices, tf.int64),
                "top_k_names": tf.gather(names, top.indices),
                "top_k_probabilities": top.values,
                "probabilities": probabilities,
            }

        signature = [tf.TensorSpec([None, None, None, None], tf.uint8, name="images")]
        return {"serving_default": (serve, signature)}

    def initialize(self, model):
        """Transfer learning: weights from another run's checkpoint or SavedModel."""
        source = self.config.transfer.init_from
        if source:
            from apps.classification.transfer import load_pretrained

            load_pretrained(model, source, keep_head=self.config.transfer.keep_head)

    # --------------------------------------------------------------- predict

    def read_item(self, file):
        return images_lib.read_image(file, channels=self.config.data.channels)

    def predict_item(self, saved_model, file, image, output):
        """Prints the top-k classes of the image; its record for predictions.json."""
        out = saved_model.signatures["serving_default"](images=tf.constant(image[None]))
        names = [n.decode() for n in out["top_k_names"][0].numpy()]
        probabilities = out["top_k_probabilities"][0].numpy().tolist()
        print(f"{file}: " + ", ".join(f"{n} {p:.3f}" for n, p in zip(names, probabilities,
                                                                     strict=True)))
        return {"file": file, "class_name": names[0], "probability": probabilities[0],
                "top_k": [{"class_name": n, "probability": p}
                          for n, p in zip(names, probabilities, strict=True)]}

