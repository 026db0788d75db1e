"""Face recognition: the task the shared trainer runs, and the recognition modes.

Training (FaceNet, as in the notes): the embedding network maps each face to
a point on the unit sphere, trained with `layers.losses.TripletLoss`

    l(A, P, N) = max(d(A, P) - d(A, N) + alpha, 0),    alpha = 0.2

with triplets mined online in each batch (semi-hard by default; batch-all
and batch-hard as options) from batches of P people x K images, so every
batch holds positives. The verification threshold is the distance that
maximises verification accuracy on the validation people (the notes' 0.7 is
the starting value, used to break ties); it is saved in metrics.json and in
the SavedModel.

Modes beyond the shared ones (all but train and eval read the exported
SavedModel, so they need only DIR/export):

    --mode=enroll   --gallery=DIR              embeds one sub-folder or one image per
                                               person into DIR/gallery.npz (updating it)
    --mode=verify   --input=IMG --identity=NAME  distance to NAME; accept or reject
    --mode=identify --input=IMG_OR_DIR         the closest enrolled person, or
                                               "not in the database" (who_is_it)
    --mode=predict  --input=IMG_OR_DIR         identify when a gallery exists, else
                                               print each face's embedding
"""

import os

import numpy as np
import tensorflow as tf
from absl import flags, logging

from apps.core import images as images_lib
from apps.core import workdir as workdir_lib
from apps.core.config import (
    Rule,
    boolean,
    fractions_summing_to_one,
    int_in,
    non_negative_int,
    one_of,
    positive_int,
)
from apps.core.errors import UserError
from apps.core.image_task import ImageTask
from apps.core.main import flag_value
from apps.core.trainer import predict_outputs
from apps.face_recognition import data as data_lib
from apps.face_recognition import gallery as gallery_lib
from apps.face_recognition import metrics as metrics_lib
from apps.face_recognition import model as model_lib
from layers.losses import MINING_MODES, TripletLoss

_GALLERY = flags.DEFINE_string(
    "gallery", None, "face_recognition --mode=enroll: a folder with one sub-folder (or one "
    "image) per person.")
_IDENTITY = flags.DEFINE_string(
    "identity", None, "face_recognition --mode=verify: the enrolled person's name.")

#: metrics.json keys that are not about the test split (the trainer prefixes all with test_)
UNPREFIXED = ("threshold", "pixel_baseline_verification_accuracy")
THUMBNAILS_SHOWN = 16


def _fraction(low, high):
    return Rule(lambda v: isinstance(v, (int, float)) and low < v <= high,
                f"a number in ({low}, {high}]")


class FaceRecognitionTask(ImageTask):
    rules = {
        "data.source": one_of("synthetic", "tfds", "folder"),
        "data.split": fractions_summing_to_one,
        "data.image_size": int_in(8, 512),
        "data.channels": one_of(1, 3),
        "data.crop": _fraction(0, 1),
        "data.min_images": int_in(2, 1_000_000),
        "data.max_examples": non_negative_int,
        "data.synthetic.num_identities": int_in(6, 1_000_000),
        "data.synthetic.images_per_identity": int_in(2, 10_000),
        "data.synthetic.seed": non_negative_int,
        "data.synthetic.variation": Rule(lambda v: 0 <= v <= 2, "a number in [0, 2]"),
        "data.augment.flip": boolean,
        "data.augment.shift": Rule(lambda v: 0 <= v < 0.5, "a fraction in [0, 0.5)"),
        "data.augment.rotation": Rule(lambda v: 0 <= v <= 180, "degrees in [0, 180]"),
        "data.augment.color": Rule(lambda v: 0 <= v <= 1, "a strength in [0, 1]"),
        "model.backbone": one_of(*model_lib.BACKBONES),
        "model.width": int_in(2, 512),
        "model.blocks": Rule(lambda v: len(v) >= 1 and all(isinstance(b, int) and b >= 1
                                                           for b in v),
                             "a tuple of block counts >= 1, one per stage"),
        "model.embedding_dim": int_in(2, 4096),
        "model.dropout": Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "loss.margin": Rule(lambda v: isinstance(v, (int, float)) and 0 <= v <= 4,
                            "a number in [0, 4]"),
        "loss.mining": one_of(*MINING_MODES),
        "loss.distance": one_of("squared_l2", "l2"),
        "train.images_per_identity": int_in(2, 1024),
        "eval.pairs": positive_int,
        "eval.initial_threshold": _fraction(0, 2),
        "eval.far": _fraction(0, 1),
        "eval.batch_size": positive_int,
        "eval.projector_images": non_negative_int,
    }
    extra_modes = ("train", "eval", "predict", "enroll", "verify", "identify")

    def __init__(self, config):
        super().__init__(config)
        self.loss_fn = TripletLoss(margin=config.loss.margin, mining=config.loss.mining,
                                   distance=config.loss.distance)
        self.data = None
        self._cache = {}

    # ------------------------------------------------------------------ data

    def load_data(self):
        c = self.config
        k, batch = c.train.images_per_identity, c.train.batch_size
        if batch % k:
            raise UserError(f"config.train.batch_size = {batch} must be a multiple of "
                            f"config.train.images_per_identity = {k} (P people x K images)")
        self.data, self.names = data_lib.load(c)
        people = len(np.unique(self.data.train.targets))
        if people < batch // k:
            raise UserError(
                f"the training split has {people} people, fewer than the {batch // k} per "
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

    # ------------------------------------------------------------- examples

    def per_example_loss(self, labels, embeddings):
        """The mined triplet loss is one number per batch; every example carries it.

        Mining needs the whole global batch (a replica's slice holds only some
        of its P identities), so with several replicas the embeddings and
        labels of every replica are all-gathered and each replica computes the
        loss L of the global batch. The trainer sums per-example losses over
        replicas and divides by the global batch, so each replica's slice
        carries L and the total is L; all_gather's gradient sums the replicas'
        gradients and hands each its own rows, so the weights get dL/dtheta
        exactly as on one replica.
        """
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            loss = self.loss_fn(tf.cast(_gather(context, tf.cast(labels, tf.float32)),
                                        labels.dtype),
                                _gather(context, embeddings))
        else:
            loss = self.loss_fn(labels, embeddings)
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
            "mean_same_distance": float(np.mean(same_d)),
            "mean_different_distance": float(np.mean(diff_d)),
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
        return images_lib.grid(_upscale(shown), columns=8)

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

    # ------------------------------------------------------------ the modes

    def run_mode(self, mode, workdir, input_path, gallery=None, identity=None):
        """Runs `mode`; `gallery` and `identity` default to the --gallery / --identity flags.

        The recognition modes check the user's paths and names, and read their
        images, before the SavedModel is loaded, so a mistake is reported at once.
        """
        gallery_root = gallery if gallery is not None else flag_value(_GALLERY)
        identity = identity if identity is not None else flag_value(_IDENTITY)
        if gallery_root is not None and mode != "enroll":
            raise UserError(f"--gallery={gallery_root} is for --mode=enroll; --mode={mode} "
                            f"uses the people already enrolled in {workdir}")
        if identity is not None and mode != "verify":
            raise UserError(f"--identity={identity} is for --mode=verify; --mode={mode} "
                            "compares with everyone enrolled")
        if mode in ("train", "eval"):
            return self._train_or_eval(mode, workdir)
        serving = _Serving(workdir)
        gallery_path = os.path.join(workdir, gallery_lib.FILENAME)
        if mode == "enroll":
            return self.enroll(serving, gallery_root, gallery_path)
        files = _input_files(input_path, single=(mode == "verify"))
        if mode == "verify" and not identity:
            raise UserError("--mode=verify needs --identity=NAME (an enrolled person)")
        gallery = gallery_lib.Gallery.load(gallery_path, self.config.model.embedding_dim)
        if mode != "predict" and not len(gallery):
            raise UserError(f"no gallery in {gallery_path}; enroll people first "
                            f"(--mode=enroll --gallery=DIR --workdir={workdir})")
        if mode == "verify":
            gallery.require(identity)
        images, files = self._read_inputs(files, input_path)
        embeddings, thresholds = self._embed(serving, images)
        for file, embedding, threshold in zip(files, embeddings, thresholds, strict=True):
            if not len(gallery):  # predict with nobody enrolled
                shown = ", ".join(f"{v:.3f}" for v in embedding[:4])
                print(f"{file}: embedding [{shown}, ...] ({len(embedding)}-d)")
            elif mode == "verify":
                distance, accepted = gallery.verify(embedding, identity, threshold)
                verdict = f"accept: it's {identity}" if accepted else f"reject: not {identity}"
                print(f"{file}: distance {distance:.3f} to {identity} (threshold "
                      f"{threshold:.3f}): {verdict}")
            else:
                name, distance, closest = gallery.identify(embedding, threshold)
                if name is None:
                    print(f"{file}: not in the database (closest {closest} at distance "
                          f"{distance:.3f}, threshold {threshold:.3f})")
                else:
                    print(f"{file}: {name} (distance {distance:.3f}, threshold "
                          f"{threshold:.3f})")
        return None

    def _train_or_eval(self, mode, workdir):
        from apps.core.trainer import Trainer

        trainer = Trainer(self, workdir)
        if mode == "eval":
            return rename_metrics(trainer.evaluate())
        finished_before = workdir_lib.read_metrics(workdir) is not None
        metrics = rename_metrics(trainer.train())
        if trainer.chief:
            if workdir_lib.read_metrics(workdir) != metrics:
                workdir_lib.write_metrics(workdir, metrics)
            projector = os.path.join(workdir, "tb", "projector")
            if self.config.eval.projector_images and not (
                    finished_before and os.path.exists(projector)):
                write_projector(projector, self, trainer.model)
            paths = trainer.paths
            print(f"TensorBoard: tensorboard --logdir {os.path.dirname(paths['tb_train'])}")
            print(f"Metrics:     {paths['metrics']}")
            print(f"SavedModel:  {paths['export']}")
        return metrics

    def _read_inputs(self, files, input_path):
        """(uint8 faces, their files) of --input.

        One file must be a readable face image; in a folder, unreadable files
        are skipped, each named in a warning, and counted.
        """
        d = self.config.data
        if files == [input_path]:
            try:
                face = gallery_lib.read_face(input_path, d.image_size, d.channels, d.crop)
            except UserError as e:
                raise UserError(f"--input={e}") from None
            return face[None], files
        images, kept, skipped = gallery_lib.read_faces(files, d.image_size, d.channels, d.crop)
        if not kept:
            raise UserError(f"--input={input_path}: none of its {len(files)} image files is a "
                            f"readable face image (first: {skipped[0]})")
        if skipped:
            logging.warning("skipped %d of the %d image files in --input=%s (named above)",
                            len(skipped), len(files), input_path)
        return images, kept

    def _embed(self, serving, images):
        """(embeddings (N, D), thresholds (N,)) of uint8 faces from the serving signature."""
        embeddings, thresholds = [], []
        for i in range(0, len(images), self.config.eval.batch_size):
            out = serving(images=tf.constant(images[i:i + self.config.eval.batch_size]))
            embeddings.append(out["embeddings"].numpy())
            thresholds.append(out["threshold"].numpy().astype(float))
        return np.concatenate(embeddings), np.concatenate(thresholds)

    def enroll(self, serving, root, gallery_path):
        """Embeds the people in `root` into the gallery (replacing those enrolled again).

        Unreadable images are skipped, each named in a warning, and counted.
        """
        people = gallery_lib.gallery_files(root)
        gallery = gallery_lib.Gallery.load(gallery_path, self.config.model.embedding_dim)
        d = self.config.data
        names, faces, files, skipped = [], [], [], []
        for person, paths in people.items():
            images, kept, unreadable = gallery_lib.read_faces(paths, d.image_size, d.channels,
                                                              d.crop)
            skipped += unreadable
            if not kept:
                logging.warning("skipped %s: no readable face image", person)
                continue
            names += [person] * len(kept)
            faces.append(images)
            files += kept
        if not names:
            raise UserError(f"--gallery={root}: none of its {len(skipped)} image files is a "
                            f"readable face image (first: {skipped[0]})")
        embeddings, _ = self._embed(serving, np.concatenate(faces))
        gallery.enroll(names, embeddings, files)
        gallery.save(gallery_path)
        print(f"enrolled {len(set(names))} people ({len(files)} images) into {gallery_path}; "
              f"the gallery holds {len(gallery.people)} people"
              + (f"; skipped {len(skipped)} image file(s), unreadable or too small (named "
                 "above)" if skipped else ""))
        return None


def pk_order(labels, people_per_batch, images_per_person, steps):
    """The epoch order of P people x K images per batch, as a graph function.

    For each of `steps` batches, P distinct people are drawn at random, and K
    of each one's images (without repetition; a person with fewer than K
    images repeats them in turn). A batch is laid out person by person, so
    the slice a replica takes still holds whole groups of K when its share is
    a multiple of K.

    Returns order(epoch_seed[2]) -> int64 indices of length steps * P * K.
    """
    labels = np.asarray(labels)
    people, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    width = max(int(counts.max()), images_per_person)
    table = np.zeros((len(people), width), np.int64)
    for person in range(len(people)):
        members = np.flatnonzero(inverse == person)
        table[person, :len(members)] = members
    table, counts = tf.constant(table), tf.constant(counts, tf.int32)
    p, k = people_per_batch, images_per_person

    def order(epoch_seed):
        seeds = tf.random.experimental.stateless_split(tf.cast(epoch_seed, tf.int64), num=2)
        keys = tf.random.stateless_uniform([steps, len(people)], seeds[0])
        chosen = tf.argsort(keys, axis=1, stable=True)[:, :p]  # (steps, P)
        have = tf.gather(counts, chosen)  # (steps, P)
        keys = tf.random.stateless_uniform([steps, p, width], seeds[1])
        keys = tf.where(tf.range(width)[None, None] < have[..., None], keys, 2.0)
        ranked = tf.argsort(keys, axis=-1, stable=True)  # the valid slots first
        picks = tf.gather(ranked, tf.range(k)[None, None] % have[..., None], batch_dims=2)
        person = tf.broadcast_to(chosen[..., None], tf.shape(picks))
        index = tf.gather_nd(table, tf.stack([person, picks], axis=-1))
        return tf.reshape(index, [-1])

    return order


def rename_metrics(metrics):
    """The trainer's test_-prefixed metrics, with `threshold` and the baseline unprefixed."""
    out = dict(metrics)
    for key in UNPREFIXED:
        if f"test_{key}" in out:
            out[key] = out.pop(f"test_{key}")
    return out


def write_projector(logdir, task, model):
    """The embedding projector (test faces, named, with thumbnails) under `logdir`."""
    from PIL import Image
    from tensorboard.plugins import projector

    split = task.data.test
    n = min(len(split), task.config.eval.projector_images)
    split = split.take(np.arange(n))
    embeddings = task.embed(model, split)
    os.makedirs(logdir, exist_ok=True)
    with open(os.path.join(logdir, "metadata.tsv"), "w") as f:
        f.writelines(f"{task.names[label]}\n" for label in split.targets)
    thumbs = images_lib.to_uint8(task.prepare(split.inputs).numpy())
    if thumbs.shape[-1] == 1:
        thumbs = np.repeat(thumbs, 3, axis=-1)
    size = thumbs.shape[1]
    columns = int(np.ceil(np.sqrt(n)))
    sprite = images_lib.grid(thumbs, columns=columns)[0]
    Image.fromarray(sprite).save(os.path.join(logdir, "sprite.png"))
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(embeddings, name="embedding"))
    checkpoint.save(os.path.join(logdir, "embedding.ckpt"))
    config = projector.ProjectorConfig()
    entry = config.embeddings.add()
    entry.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    entry.metadata_path = "metadata.tsv"
    entry.sprite.image_path = "sprite.png"
    entry.sprite.single_image_dim.extend([size, size])
    projector.visualize_embeddings(logdir, config)
    # TensorBoard lists a folder as a run only when it holds an event file.
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default(step=0):
        tf.summary.text("projector", f"{n} test faces of {len(np.unique(split.targets))} "
                        "held-out people: open the Projector tab")
    writer.close()
    return logdir


def _gather(context, x):
    """All replicas' `x` stacked along axis 0 in replica order (an all-gather).

    Written as an all-reduce of each replica's rows placed in a zero tensor:
    MultiWorkerMirroredStrategy's all_gather fails inside the trainer's
    multi-step loop ("destinations can not be empty"), and all_reduce's
    gradient (an all-reduce of the upstream gradient) hands each replica the
    gradient of its own rows, as all_gather's would. Labels go through it as
    float32, exact for ids below 2**24.
    """
    n = context.num_replicas_in_sync
    slot = tf.one_hot(context.replica_id_in_sync_group, n, dtype=x.dtype)
    placed = tf.reshape(slot, [n] + [1] * x.shape.rank) * x[None]
    stacked = context.all_reduce(tf.distribute.ReduceOp.SUM, placed)
    return tf.reshape(stacked, tf.concat([[-1], tf.shape(x)[1:]], 0))


class _Serving:
    """The workdir's exported `serving_default`, loaded at its first call (so the
    user's inputs are checked first); UserError at once when there is no export."""

    def __init__(self, workdir):
        self.export = os.path.join(workdir, "export")
        if not os.path.exists(os.path.join(self.export, "saved_model.pb")):
            raise UserError(f"no SavedModel in {self.export}; train or --mode=export first")
        self._loaded = None

    def __call__(self, **inputs):
        if self._loaded is None:
            self._loaded = tf.saved_model.load(self.export)
        return self._loaded.signatures["serving_default"](**inputs)


def _input_files(path, single=False):
    if not path:
        raise UserError("--input=PATH is required (a face image" +
                        ("" if single else " or a folder of them") + ")")
    if not os.path.exists(path):
        raise UserError(f"--input={path}: no such file or folder")
    if os.path.isfile(path):
        return [path]
    if single:
        raise UserError(f"--input={path}: expected one face image, got a folder")
    try:
        return images_lib.image_files(path)
    except UserError as e:  # "<path>: no image files (...)"
        raise UserError(f"--input={e}") from None


def _upscale(images, size=48):
    factor = max(1, size // images.shape[1])
    return images.repeat(factor, axis=1).repeat(factor, axis=2)
