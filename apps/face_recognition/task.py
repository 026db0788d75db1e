"""Face recognition: the task the shared trainer runs.

Training (FaceNet, as in the notes): the embedding network maps each face to
a point on the unit sphere, trained with `layers.losses.TripletLoss`

    l(A, P, N) = max(d(A, P) - d(A, N) + alpha, 0),    alpha = 0.2

with triplets mined online in each batch (semi-hard by default; batch-all
and batch-hard as options) from batches of P people x K images, so every
batch holds positives (apps.face_recognition.batches). The verification
threshold is the distance that maximises verification accuracy on the
validation people (the notes' 0.7 is the starting value, used to break
ties); it is saved in metrics.json and in the SavedModel.

Beside the shared modes, enroll, verify and identify run the exported
SavedModel against a gallery of enrolled people (apps.face_recognition.modes);
predict identifies each face when a gallery exists, else prints its embedding.
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core import images as images_lib
from apps.core import workdir as workdir_lib
from apps.core.errors import UserError
from apps.core.image_task import ImageTask
from apps.core.inference import predict_outputs
from apps.face_recognition import gallery as gallery_lib
from apps.face_recognition import metrics as metrics_lib
from apps.face_recognition import model as model_lib
from apps.face_recognition import modes
from apps.face_recognition.batches import global_batch, pk_order
from apps.face_recognition.data import load as load_faces
from apps.face_recognition.projector import write_projector
from layers.losses import TripletLoss

THUMBNAILS_SHOWN = 16


class FaceRecognitionTask(ImageTask):
    extra_modes = {"enroll": modes.enroll, "verify": modes.verify, "identify": modes.identify}
    input_modes = ("verify", "identify")
    flags = {"gallery": (("enroll",), "a folder with one sub-folder (or one image) per person"),
             "identity": (("verify",), "the enrolled person's name")}
    input_kind = "a face image or a folder of them"
    headline_metrics = ("verification_accuracy", "roc_auc", "rank1")
    # Chosen on the validation people (the threshold) or of raw pixels: not the model's test.
    unprefixed_metrics = ("threshold", "pixel_baseline_verification_accuracy")

    def __init__(self, config):
        super().__init__(config)
        self.loss_fn = TripletLoss(margin=config.loss.margin, mining=config.loss.mining,
                                   distance=config.loss.distance)
        self.data = None
        self._cache = {}
        #: where predict finds the enrolled people (set by modes.predict)

    # ------------------------------------------------------------------ data

    def load_data(self):
        c = self.config
        self.data, self.names = load_faces(c)
        people = len(np.unique(self.data.train.targets))
        wanted = c.train.batch_size // c.train.images_per_identity
        if people < wanted:
            raise UserError(
                f"the training split has {people} people, fewer than the {wanted} per "
                f"batch (config.train.batch_size / config.train.images_per_identity)")
        logging.info("data: %d people / %d images train, %d / %d validation, %d / %d test",
                     *(x for s in (self.data.train, self.data.val, self.data.test)
                       for x in (len(np.unique(s.targets)), len(s))))
        return self.data

    def epoch_order(self):
        """P people x K images per batch (see `pk_order`)."""
        c = self.config
        k = c.train.images_per_identity
        steps = len(self.data.train) // c.train.batch_size
        order = pk_order(self.data.train.targets, c.train.batch_size // k, k, steps)
        return order, steps * c.train.batch_size

    def build_model(self):
        m, d = self.config.model, self.config.data
        return model_lib.build(m.backbone, d.image_size, d.channels, m.embedding_dim,
                               width=m.width, blocks=tuple(m.blocks), dropout=m.dropout)

    def per_example_loss(self, labels, embeddings):
        """The mined triplet loss is one number per batch; every example carries it.

        Mining needs the whole global batch (a replica's slice holds only some
        of its P identities), so with several replicas each one computes the
        loss L of the global batch (`global_batch`). The trainer sums
        per-example losses over replicas and divides by the global batch, so
        each replica's slice carries L and the total is L; the all-gather's
        gradient sums the replicas' gradients and hands each its own rows, so
        the weights get dL/dtheta exactly as on one replica.
        """
        loss = self.loss_fn(*global_batch(labels, embeddings))
        return tf.fill(tf.shape(labels)[:1], loss)

    # ------------------------------------------------------------ evaluation

    def embed(self, model, split):
        return predict_outputs(model, split, self.config.eval.batch_size, self.eval_example)

    def _pairs(self, split):
        key = ("pairs", id(split))
        if key not in self._cache:
            self._cache[key] = metrics_lib.pair_indices(split.targets, self.config.eval.pairs,
                                                        self.config.seed)
        return self._cache[key]

    def _distances(self, vectors, split):
        same, different = self._pairs(split)
        return (metrics_lib.pair_distances(vectors, same),
                metrics_lib.pair_distances(vectors, different))

    def validation_threshold(self, model, embeddings=None):
        """The distance threshold of best verification accuracy on the validation people."""
        if embeddings is None:
            embeddings = self.embed(model, self.data.val)
        same_d, diff_d = self._distances(embeddings, self.data.val)
        threshold, _ = metrics_lib.best_threshold(same_d, diff_d,
                                                  self.config.eval.initial_threshold)
        return threshold

    def pixel_baseline(self, split):
        """Verification accuracy of the raw pixel distance (threshold from validation)."""
        key = ("pixels", id(split))
        if key not in self._cache:
            def pixels(s):
                prepared = self.prepare(s.inputs).numpy()
                return prepared.reshape(len(prepared), -1) / np.sqrt(prepared[0].size)

            threshold, _ = metrics_lib.best_threshold(
                *self._distances(pixels(self.data.val), self.data.val), np.inf)
            self._cache[key] = metrics_lib.accuracy_at(
                *self._distances(pixels(split), split), threshold)
        return self._cache[key]

    def evaluate(self, model, split):
        embeddings = self.embed(model, split)
        is_val = split is self.data.val
        threshold = self.validation_threshold(model, embeddings if is_val else None)
        same_d, diff_d = self._distances(embeddings, split)
        far = self.config.eval.far
        tar, _ = metrics_lib.tar_at_far(same_d, diff_d, far)
        metrics = {
            "verification_accuracy": metrics_lib.accuracy_at(same_d, diff_d, threshold),
            "roc_auc": metrics_lib.roc_auc(same_d, diff_d),
            f"tar_at_far_{far:.0e}".replace("e-0", "e-"): tar,
            "rank1": metrics_lib.rank1_accuracy(embeddings, split.targets, self.config.seed),
            "threshold": threshold,
            "pixel_baseline_verification_accuracy": self.pixel_baseline(split),
            "mean_same_distance": float(np.mean(same_d)) if len(same_d) else float("nan"),
            "mean_different_distance": float(np.mean(diff_d)) if len(diff_d) else float("nan"),
        }
        if is_val:
            metrics["active_triplets"] = self.active_triplets(model)
        self._last_distances = (same_d, diff_d)
        images = {
            "roc_curve": images_lib.figure_to_image(
                metrics_lib.roc_figure(same_d, diff_d, threshold)),
            "distance_histograms": images_lib.figure_to_image(
                metrics_lib.histogram_figure(same_d, diff_d, threshold)),
            "hardest_pairs": self._hardest_pairs(split, same_d, diff_d),
        }
        return metrics, images

    def write_summaries(self, prefix):
        """TensorBoard histograms of the last evaluation's pair distances."""
        same_d, diff_d = getattr(self, "_last_distances", (None, None))
        if same_d is not None:
            tf.summary.histogram(f"{prefix}same_person_distance", same_d)
            tf.summary.histogram(f"{prefix}different_person_distance", diff_d)

    def active_triplets(self, model, batches=4):
        """Share of a few fixed training batches' valid triplets with a positive loss."""
        c = self.config
        k = c.train.images_per_identity
        order = pk_order(self.data.train.targets, c.train.batch_size // k, k, batches)
        index = order(tf.constant([c.seed, -1], tf.int64)).numpy()
        batch = self.data.train.take(index)
        embeddings = self.embed(model, batch).reshape(batches, c.train.batch_size, -1)
        labels = batch.targets.reshape(batches, -1)
        return float(np.mean([metrics_lib.active_triplet_fraction(
            labels[b], embeddings[b], c.loss.margin, squared=c.loss.distance == "squared_l2")
            for b in range(batches)]))

    def _hardest_pairs(self, split, same_d, diff_d):
        """Thumbnails: the farthest same-person pairs, then the closest different ones."""
        same, different = self._pairs(split)
        rows = [same[np.argsort(-same_d)[:THUMBNAILS_SHOWN // 2]],
                different[np.argsort(diff_d)[:THUMBNAILS_SHOWN // 2]]]
        index = np.concatenate(rows).reshape(-1)
        shown = images_lib.to_uint8(self.prepare(split.inputs[index]).numpy())
        return images_lib.grid(images_lib.upscale(shown), columns=8)

    # ---------------------------------------------------------------- export

    def export_endpoints(self, model):
        threshold = tf.constant(self.validation_threshold(model), tf.float32)

        def serve(images):
            """uint8 face images (batch, height, width, 1 or 3) of any size."""
            embeddings = model(self.prepare(images), training=False)
            return {"embeddings": embeddings,
                    "threshold": tf.fill(tf.shape(embeddings)[:1], threshold)}

        def verify(images, references):
            """Same person? Each image against the reference image in the same row."""
            a = model(self.prepare(images), training=False)
            b = model(self.prepare(references), training=False)
            distance = tf.norm(a - b, axis=-1)
            return {"distance": distance, "same": distance < threshold}

        spec = tf.TensorSpec([None, None, None, None], tf.uint8)
        return {"serving_default": (serve, [tf.TensorSpec.from_spec(spec, name="images")]),
                "verify": (verify, [tf.TensorSpec.from_spec(spec, name="images"),
                                    tf.TensorSpec.from_spec(spec, name="references")])}

    def write_beside_export(self, model, workdir):
        """TensorBoard's projector of config.eval.projector_images test faces, named."""
        n = min(len(self.data.test), self.config.eval.projector_images)
        if not n:
            return {}
        split = self.data.test.take(np.arange(n))
        logdir = os.path.join(os.path.dirname(workdir_lib.paths(workdir)["tb_train"]),
                              "projector")
        write_projector(logdir, self.embed(model, split),
                        [self.names[label] for label in split.targets],
                        images_lib.to_uint8(self.prepare(split.inputs).numpy()),
                        len(np.unique(split.targets)))
        return {"Projector": logdir}

    # --------------------------------------------------------------- predict

    def load_export(self, workdir):
        """The SavedModel and the people enrolled in WORKDIR (maybe none)."""
        from apps.core.modes import load_saved_model

        gallery = gallery_lib.Gallery.load(modes.gallery_path(workdir),
                                           self.config.model.embedding_dim)
        return load_saved_model(workdir), gallery

    def read_item(self, file):
        """One face image file, uint8 at the model's size (gallery_lib.read_face)."""
        d = self.config.data
        return gallery_lib.read_face(file, d.image_size, d.channels, d.crop)

    def predict_item(self, export, file, face, output):
        """Identifies the face when people are enrolled, else prints its embedding."""
        saved_model, gallery = export
        embeddings, thresholds = modes.embed(self, saved_model, face[None])
        if len(gallery):
            return modes.identified(file, gallery, embeddings[0], thresholds[0])
        shown = ", ".join(f"{v:.3f}" for v in embeddings[0][:4])
        print(f"{file}: embedding [{shown}, ...] ({len(embeddings[0])}-d)")
        return {"file": file, "embedding": embeddings[0].tolist()}
