"""Detection data: embedded digit scenes, TFDS by name, or a COCO-format JSON.

    config.data.source = "digits"     scenes of scikit-learn's handwritten digits
                                      (apps/detection/synth.py), generated from fixed seeds
                       = "tfds"       config.data.name ("voc/2007", "coco/2017", ...)
                                      prepared in config.data.data_dir
                       = "coco_json"  config.data.annotations (a COCO-format JSON, as
                                      labelling tools export) with config.data.images
                                      (the folder its file_name entries are relative to)

Every source gives uint8 images (N, S, S, C) resized to config.data.image_size
and targets {"boxes": (N, max_boxes, 4) normalized corners (x1, y1, x2, y2),
"classes": (N, max_boxes) int32, -1 for padding}. Boxes are validated: one
outside its image (beyond a 1-pixel tolerance, then clipped) or of
non-positive size is an error naming the image, or, with
config.data.invalid_boxes = "skip", is dropped and counted.
"""

import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core import images as images_lib
from apps.core.columns import ExampleColumn
from apps.core.data import Split, cached, stratified_split
from apps.core.errors import UserError
from apps.core.task import Data
from apps.core.tfds_source import tfds_data
from apps.detection import synth

TOLERANCE_PX = 1.0  # how far (in pixels) a box may stick out before it is invalid


class BoxCheck:
    """Validates boxes of one data set; counts what was skipped."""

    def __init__(self, policy):
        self.policy = policy
        self.skipped = 0
        self.truncated = 0

    def __call__(self, where, box, width, height):
        """`box` (x1, y1, x2, y2) in pixels of a width x height image -> clipped box or None."""
        x1, y1, x2, y2 = (float(v) for v in box)
        t = TOLERANCE_PX
        problem = None
        if not all(np.isfinite([x1, y1, x2, y2])):
            problem = "has a non-finite coordinate"
        elif x2 - x1 <= 0 or y2 - y1 <= 0:
            problem = f"has non-positive size {x2 - x1:g} x {y2 - y1:g}"
        elif x2 <= t or y2 <= t or x1 >= width - t or y1 >= height - t:
            # Wholly outside; one that sticks out is clipped, as COCO's tools do.
            problem = f"lies outside the {width:g} x {height:g} image"
        if problem:
            if self.policy == "skip":
                self.skipped += 1
                return None
            raise UserError(f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) {problem} "
                            "(set config.data.invalid_boxes=skip to drop such boxes)")
        return (max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height))

    def report(self, name):
        if self.skipped:
            logging.warning("%s: skipped %d invalid box(es) (config.data.invalid_boxes=skip)",
                            name, self.skipped)
        if self.truncated:
            logging.warning("%s: %d box(es) beyond config.data.max_boxes dropped",
                            name, self.truncated)


def _pack(per_image, max_boxes, check):
    """Lists of (boxes (k, 4) normalized, classes (k,)) -> padded arrays."""
    boxes = np.zeros((len(per_image), max_boxes, 4), np.float32)
    classes = np.full((len(per_image), max_boxes), -1, np.int32)
    for i, (b, c) in enumerate(per_image):
        k = min(len(c), max_boxes)
        check.truncated += len(c) - k
        if k:
            boxes[i, :k], classes[i, :k] = np.asarray(b)[:k], np.asarray(c)[:k]
    return boxes, classes


def load(config):
    """Returns (Data, class names, category ids) for config.data: the ids are the
    data set's own (COCO's 1..90 with gaps), for results that go back to its tools."""
    source = config.data.source
    if source == "digits":
        return digit_scenes(config)
    if source == "coco_json":
        images, targets, names, category_ids = coco_json(
            config.data.annotations, config.data.images, config.data.image_size,
            config.data.channels, config.data.max_boxes, config.data.invalid_boxes)
        n = len(images)
        if n < 3:
            raise UserError(f"config.data.annotations = {config.data.annotations!r}: "
                            f"{n} image(s); need at least 3 (train, val, test)")
        order = np.random.default_rng(config.seed).permutation(n)
        fractions = np.asarray(config.data.split)
        counts = np.maximum(1, np.round(fractions[1:] * n).astype(int))
        test_idx, val_idx = order[:counts[1]], order[counts[1]:counts[1] + counts[0]]
        train_idx = order[counts[0] + counts[1]:]
        split = Split(images, targets)
        return (Data(*(cached(split.take(i), config.data.cache)
                       for i in (train_idx, val_idx, test_idx))), names, category_ids)
    data, names = _tfds(config)
    return data, names, list(range(len(names)))


def digit_scenes(config):
    """The embedded default: digit scenes; the digits themselves split 6:2:2 first."""
    from sklearn.datasets import load_digits

    d = config.data
    bunch = load_digits()
    pools = stratified_split(bunch.target, (0.6, 0.2, 0.2), config.seed)
    splits = []
    for part, (pool, count) in enumerate(zip(pools, d.digits.scenes, strict=True)):
        images, boxes, classes = synth.scenes(
            bunch.images[pool], bunch.target[pool], count, seed=(config.seed, part),
            size=d.image_size, max_digits=d.digits.max_digits, min_size=d.digits.min_size,
            max_size=d.digits.max_size, max_overlap=d.digits.max_overlap, max_boxes=d.max_boxes)
        if d.channels == 3:
            images = np.repeat(images, 3, axis=-1)
        splits.append(Split(images, {"boxes": boxes, "classes": classes}))
    return Data(*splits), [str(i) for i in range(10)], list(range(10))


def coco_json(annotations, image_dir, image_size, channels, max_boxes, policy="error"):
    """A COCO-format detection file and its image folder.

    The JSON needs "images" ({id, file_name, [width, height]}), "annotations"
    ({image_id, category_id, bbox [x, y, width, height] in pixels, [iscrowd]})
    and "categories" ({id, name}); crowd annotations are left out. Class ids are
    the categories sorted by id. Image and category ids must be distinct, and
    an image's width and height, when given, its file's own (as shown: EXIF
    orientation applied). An image file that is missing or no image stops the
    load, or with policy "skip" is left out with its boxes (counted). Returns
    the images as a column read as training goes (apps.core.columns), the
    targets, the class names and the data set's category ids of the classes.
    """
    if not annotations:
        raise UserError("config.data.annotations is empty: give the COCO-format JSON file")
    if not os.path.exists(annotations):
        raise UserError(f"config.data.annotations = {annotations!r}: no such file")
    if not os.path.isfile(annotations):
        raise UserError(f"config.data.annotations = {annotations!r}: a folder; expected "
                        "the COCO-format JSON file")
    image_dir = image_dir or os.path.dirname(annotations)
    if not os.path.isdir(image_dir):
        raise UserError(f"config.data.images = {image_dir!r}: no such folder")
    try:
        with open(annotations) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{annotations}: not valid JSON ({e})") from None

    def need(obj, key, kind, where):
        if not isinstance(obj, dict) or key not in obj:
            raise UserError(f"{annotations}: {where} has no {key!r}")
        if not isinstance(obj[key], kind):
            raise UserError(f"{annotations}: {where}: {key!r} is not a "
                            f"{getattr(kind, '__name__', 'number')}")
        return obj[key]

    number = (int, float)
    for key in ("images", "annotations", "categories"):
        need(doc, key, list, "the file")
    categories = sorted(doc["categories"], key=lambda c: need(c, "id", int, "a category"))
    if not categories:
        raise UserError(f"{annotations}: 'categories' is empty")
    class_of = {}
    for c in categories:
        if c["id"] in class_of:  # two names for one id would shift every later class
            raise UserError(f"{annotations}: two categories have id {c['id']}; expected "
                            "distinct ids")
        class_of[c["id"]] = len(class_of)
    names = [str(need(c, "name", str, f"category {c['id']}")) for c in categories]
    images_by_id = {}
    for i, entry in enumerate(doc["images"]):
        image_id = need(entry, "id", (int, str), f"images[{i}]")
        need(entry, "file_name", str, f"image {image_id}")
        if image_id in images_by_id:  # its boxes would land on the other image
            raise UserError(f"{annotations}: images[{i}] repeats the id {image_id!r} of "
                            f"{images_by_id[image_id]['file_name']}; expected distinct ids")
        images_by_id[image_id] = entry
    boxes = {image_id: [] for image_id in images_by_id}
    check = BoxCheck(policy)
    pending = []
    for i, ann in enumerate(doc["annotations"]):
        where = f"annotations[{i}]"
        image_id = need(ann, "image_id", (int, str), where)
        if image_id not in images_by_id:
            raise UserError(f"{annotations}: {where} refers to image_id {image_id!r}, "
                            "which is not in 'images'")
        category = need(ann, "category_id", int, where)
        if category not in class_of:
            raise UserError(f"{annotations}: {where} has category_id {category}, which is "
                            "not in 'categories'")
        bbox = need(ann, "bbox", list, where)
        if len(bbox) != 4 or not all(isinstance(v, number) for v in bbox):
            raise UserError(f"{annotations}: {where}: 'bbox' must be [x, y, width, height]")
        if ann.get("iscrowd", 0):
            continue
        pending.append((image_id, bbox, class_of[category], i))
    paths, sizes, missing = {}, {}, []
    for image_id, entry in images_by_id.items():
        path = os.path.join(image_dir, entry["file_name"])
        try:
            if not os.path.exists(path):
                raise UserError(f"{annotations}: image {image_id}: {path} does not exist")
            sizes[image_id] = images_lib.shown_size(path)
        except UserError as e:
            if policy != "skip":
                raise
            logging.warning("skipped %s", e)
            missing.append(image_id)
            continue
        paths[image_id] = path
        _check_declared_size(annotations, image_id, entry, path, sizes[image_id])
    if missing:
        logging.warning("%s: left out %d image(s) missing or unreadable, with their boxes "
                        "(config.data.invalid_boxes=skip)", annotations, len(missing))
    for image_id, (x, y, w, h), label, i in pending:
        if image_id not in paths:
            continue
        width, height = sizes[image_id]
        where = f"{annotations}: annotations[{i}] of {images_by_id[image_id]['file_name']}"
        box = check(where, (x, y, x + w, y + h), width, height)
        if box is not None:
            normalized = (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
            boxes[image_id].append((normalized, label))
    if not images_by_id:
        raise UserError(f"{annotations}: 'images' is empty")
    if not paths:
        raise UserError(f"{annotations}: none of its {len(images_by_id)} images is readable")
    per_image = [([b for b, _ in boxes[k]], [c for _, c in boxes[k]]) for k in paths]
    packed_boxes, packed_classes = _pack(per_image, max_boxes, check)
    check.report(annotations)
    images = images_lib.image_column(list(paths.values()), image_size, channels)
    return (images, {"boxes": packed_boxes, "classes": packed_classes}, names,
            [c["id"] for c in categories])


def _check_declared_size(annotations, image_id, entry, path, actual):
    """The entry's 'width' and 'height' (optional; 0 = not given) must be the file's:
    the boxes are in the pixels of the image the labeller saw, so another size
    (a resized or rotated copy of it) would misplace every box."""
    for key, size in zip(("width", "height"), actual, strict=True):
        declared = entry.get(key)
        if declared is None or (declared == 0 and not isinstance(declared, bool)):
            continue
        if not isinstance(declared, (int, float)) or isinstance(declared, bool) \
                or declared != size:
            raise UserError(f"{annotations}: image {image_id} has {key!r} {declared!r} but "
                            f"{path} is {actual[0]} x {actual[1]} pixels; expected the "
                            "file's own size")


def _tfds(config):
    """A prepared TFDS detection set (voc, coco: image, objects/bbox (ymin, xmin,
    ymax, xmax), objects/label), each example read when a batch needs it
    (apps.core.tfds_source).

    Its boxes are checked as the example is read: under invalid_boxes=error
    an invalid box makes the example unreadable (named in the log, counted in
    skipped_files, the run stopped past train.max_skipped_fraction); crowd
    boxes are left out, and boxes beyond max_boxes dropped (said once).
    """
    d = config.data
    names = None

    def make_split(source):
        nonlocal names
        objects = source.features["objects"].feature if "objects" in source.features else {}
        if "image" not in source.features or not {"bbox", "label"} <= set(objects.keys()):
            raise UserError(f"config.data.name = {d.name!r}: not a detection data set; "
                            "expected the features image and objects/bbox, objects/label, "
                            f"found {', '.join(source.features.keys())}")
        names = names or list(objects["label"].names)
        targets = TFDSTargets(d.invalid_boxes, d.max_boxes)
        # TFDS's boxes are fractions of the stored pixels, so no EXIF rotation here.
        images = ExampleColumn(
            source, lambda example: images_lib.read_image(
                example["image"], d.image_size, d.channels, orient=False),
            np.uint8, (d.image_size, d.image_size, d.channels),
            decoding=f"read_image {d.image_size} {d.channels} unoriented")
        boxes = ExampleColumn(source, lambda example: targets(example)[0], np.float32,
                              (d.max_boxes, 4), decoding=f"boxes {d.max_boxes} {d.invalid_boxes}")
        classes = ExampleColumn(source, lambda example: targets(example)[1], np.int32,
                                (d.max_boxes,), decoding=f"classes {d.max_boxes} {d.invalid_boxes}")
        return Split(images, {"boxes": boxes, "classes": classes})

    splits = tfds_data(d, config.seed, make_split, tuple(d.tfds_splits))
    return Data(*(cached(split, d.cache) for split in splits)), names


class TFDSTargets:
    """A TFDS detection example -> (boxes (max_boxes, 4) normalized corners
    (x1, y1, x2, y2), classes (max_boxes,), -1 for padding), checked as BoxCheck does."""

    def __init__(self, invalid_boxes, max_boxes):
        self.check, self.max_boxes = BoxCheck(invalid_boxes), max_boxes
        self.truncation_said = False

    def __call__(self, example):
        w, h = images_lib.stored_size(example["image"])
        objects = example["objects"]
        crowd = objects.get("is_crowd", np.zeros(len(objects["label"]), bool))
        kept_boxes, kept_classes = [], []
        for (ymin, xmin, ymax, xmax), label, is_crowd in zip(
                objects["bbox"], objects["label"], crowd, strict=True):
            if is_crowd:
                continue
            box = self.check("its objects", (xmin * w, ymin * h, xmax * w, ymax * h), w, h)
            if box is not None:
                kept_boxes.append((box[0] / w, box[1] / h, box[2] / w, box[3] / h))
                kept_classes.append(int(label))
        if len(kept_classes) > self.max_boxes and not self.truncation_said:
            self.truncation_said = True
            logging.warning("an image has %d boxes; those beyond config.data.max_boxes = %d "
                            "are dropped", len(kept_classes), self.max_boxes)
        boxes, classes = _pack([(kept_boxes, kept_classes)], self.max_boxes, self.check)
        return boxes[0], classes[0]


# ------------------------------------------------------------- augmentation


def augment(image, boxes, classes, seed, flip=False, scale=0.0, translate=0.0, min_visible=0.4):
    """Random flip and scale/translate of one image, moving its boxes with it.

    Args:
      image: (S, S, C) float32; boxes (M, 4) normalized corners; classes (M,), -1 padding.
      seed: (2,) stateless seed.
      flip: mirror left-right with probability 1/2: x -> 1 - x.
      scale: zoom by z = exp(u), u ~ U(-log(1 + scale), log(1 + scale)) about the centre.
      translate: shift by up to this fraction of the side in x and in y.
      min_visible: a box keeps its class only if at least this share of its
        area stays in the image (it is clipped to the image); else it becomes padding.

    The zoom and shift map a normalized point u of the input to
    u' = (u - 0.5 - d) * z + 0.5 (pixel centres at (i + 0.5) / S), applied to
    the image by a projective transform and to the box corners directly.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    classes = tf.convert_to_tensor(classes)
    if flip:
        do = tf.random.stateless_uniform([], seeds[0]) < 0.5
        image = tf.cond(do, lambda: image[:, ::-1], lambda: image)
        x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
        flipped = tf.stack([1 - x2, y1, 1 - x1, y2], -1)
        boxes = tf.where(do, flipped, boxes)
    if scale or translate:
        log = tf.math.log(1.0 + float(scale))
        z = tf.exp(tf.random.stateless_uniform([], seeds[1], -log, log))
        d = tf.random.stateless_uniform([2], seeds[2], -translate, translate)
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        # Output pixel (x, y) samples input x' = (x + .5 - W/2) / z + W/2 + d_x W - .5.
        cx, cy = w / 2 - 0.5, h / 2 - 0.5
        transform = tf.stack([1 / z, 0.0, cx - cx / z + d[0] * w,
                              0.0, 1 / z, cy - cy / z + d[1] * h, 0.0, 0.0])
        fill = tf.reduce_mean(image)
        image = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
            fill_value=fill, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
        shift = tf.stack([d[0], d[1], d[0], d[1]])
        moved = (boxes - 0.5 - shift) * z + 0.5
        clipped = tf.clip_by_value(moved, 0.0, 1.0)

        def box_area(b):
            return tf.maximum(b[:, 2] - b[:, 0], 0.0) * tf.maximum(b[:, 3] - b[:, 1], 0.0)

        visible = box_area(clipped) >= min_visible * tf.maximum(box_area(moved), 1e-12)
        keep = visible & (box_area(clipped) > 0) & (classes >= 0)
        boxes = tf.where(keep[:, None], clipped, 0.0)
        classes = tf.where(keep, classes, -1)
    return image, boxes, classes
