"""Segmentation data: generated scenes, TFDS by name, or a folder of image/mask pairs.

    config.data.source = "synthetic"  scenes of handwritten digits and shapes on
                                      textured backgrounds (apps.segmentation.synth)
                       = "tfds"       config.data.name (e.g. oxford_iiit_pet, its
                                      trimaps) prepared in config.data.data_dir
                       = "folder"     config.data.path/<image_dir>/NAME.png with
                                      config.data.path/<mask_dir>/NAME.png (the
                                      CameraRGB / CameraMask layout of the CARLA data)

Everything is held in memory at config.data.image_size: images uint8
(N, H, W, 3) resized bilinearly, masks uint8 (N, H, W) of class ids resized
by nearest neighbour (a mask is never interpolated between classes).

A mask file holds one class id per pixel: a grey or palette image, or an
RGB(A) image whose class id is the largest of its colour channels (CARLA's
masks keep it in the red channel, as the course reads them).
"""

import os

import numpy as np
from absl import logging
from PIL import Image

from apps.core.columns import ExampleColumn, FileColumn
from apps.core.data import (
    Split,
    cached,
    stratified_split,
)
from apps.core.errors import UserError
from apps.core.images import IMAGE_EXTENSIONS, encoded_file, read_image, shown_size
from apps.core.task import Data
from apps.core.tfds_source import tfds_data
from apps.segmentation import synth

LOSSY_EXTENSIONS = (".jpg", ".jpeg")  # compression blurs class ids into their neighbours


def load(config):
    """Returns (Data, class_names) for config.data."""
    source = config.data.source
    if source == "synthetic":
        return synthetic(config), list(synth.CLASS_NAMES)
    names = class_names(config)
    if source == "tfds":
        return _tfds(config, names), names
    images, masks = pair_folder(config.data.path, config.data.image_dir, config.data.mask_dir,
                                tuple(config.data.image_size), len(names),
                                config.data.ignore_label)
    if config.data.max_examples:
        first = np.arange(min(config.data.max_examples, len(images)))
        images, masks = images.take(first), masks.take(first)
    return _split(images, masks, config, f"config.data.path = {config.data.path!r}"), names


def class_names(config):
    """config.data.class_names, or "0".."K-1" from config.data.num_classes."""
    names = [str(n) for n in config.data.class_names]
    k = config.data.num_classes
    if names and k and len(names) != k:
        raise UserError(f"config.data.class_names has {len(names)} names but "
                        f"config.data.num_classes = {k}")
    if not names and not k:
        raise UserError(f"config.data.num_classes = 0: give the number of classes of the "
                        f"{config.data.source} masks (or config.data.class_names)")
    return names or [str(i) for i in range(k)]


def synthetic(config):
    """Train/val/test scenes, each from its own part of the digit scans."""
    s = config.data.synthetic
    scans, labels = synth.digit_scans()
    parts = stratified_split(labels, config.data.split, config.seed)
    counts = (s.train_scenes, s.val_scenes, s.test_scenes)
    splits = []
    for i, (part, count) in enumerate(zip(parts, counts, strict=True)):
        images, masks = synth.scenes(scans[part], labels[part], count,
                                     tuple(config.data.image_size), seed=(config.seed, i),
                                     max_objects=s.max_objects,
                                     object_size=tuple(s.object_size))
        splits.append(Split(images, masks))
    return Data(*splits)


def _split(images, masks, config, where):
    """Train, val and test by config.data.split; each must hold an example."""
    parts = stratified_split(np.zeros(len(images)), config.data.split, config.seed)
    if min(len(p) for p in parts) == 0:
        raise UserError(f"{where}: {len(images)} image/mask pair(s) are too few to split into "
                        f"train, val and test by config.data.split = {config.data.split}; "
                        "expected at least one in each")
    everything = Split(images, masks)
    return Data(*(cached(everything.take(i), config.data.cache) for i in parts))


# ------------------------------------------------------------------ folder


def pair_folder(root, image_dir, mask_dir, size, num_classes, ignore_label=255):
    """Image/mask pairs matched by file name (without extension), read as
    training goes: columns (apps.core.columns) of uint8 images (H, W, 3) and
    uint8 masks (H, W) at `size` (height, width).

    An image without a mask (or a mask without an image), a mask whose size
    differs from its image's, with a label >= num_classes, or a file that is
    no image is a UserError naming the file when the folder is listed; an
    image whose data are damaged is found when it is read (in training it is
    then skipped and counted, apps.core.columns).
    """
    if not root:
        raise UserError("config.data.path is empty: give the folder that holds "
                        f"{image_dir}/ and {mask_dir}/")
    if not os.path.isdir(root):
        raise UserError(f"config.data.path = {root!r}: no such folder")
    folders = {}
    for field, name in (("image_dir", image_dir), ("mask_dir", mask_dir)):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            raise UserError(f"config.data.{field} = {name!r}: no folder {folder}")
        folders[field] = _files_by_stem(folder)
    image_files, mask_files = folders["image_dir"], folders["mask_dir"]
    if not image_files:
        raise UserError(f"{os.path.join(root, image_dir)}: no image files "
                        f"({', '.join(IMAGE_EXTENSIONS)})")
    for stem, path in sorted(image_files.items()):
        if stem not in mask_files:
            raise UserError(f"{path}: no mask of the same name in {os.path.join(root, mask_dir)}")
    for stem, path in sorted(mask_files.items()):
        if stem not in image_files:
            raise UserError(f"{path}: no image of the same name in "
                            f"{os.path.join(root, image_dir)}")
    stems = sorted(image_files)
    for stem in stems:
        # The masks are checked now (small files: a wrong num_classes, a JPEG mask
        # or a size that is not the image's is found before training starts), so
        # a batch only reads them again; of the images only the headers are read.
        checked_mask(mask_files[stem], image_files[stem], num_classes, ignore_label)

    logging.info("found %d image/mask pairs in %s", len(stems), root)
    return (FileColumn([image_files[s] for s in stems],
                       lambda path: resize_image(read_image(path), size), np.uint8, (*size, 3),
                       decoding=f"image {size}"),
            FileColumn([mask_files[s] for s in stems],
                       lambda path: resize_mask(read_mask(path), size), np.uint8, size,
                       decoding=f"mask {size}"))


def _files_by_stem(folder):
    files = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
            if stem in files:
                raise UserError(f"{os.path.join(folder, name)}: two files named {stem!r} "
                                f"(also {files[stem]}); pairs are matched by name")
            files[stem] = os.path.join(folder, name)
    return files


def checked_mask(mask_path, image_path, num_classes, ignore_label=255):
    """A mask (uint8 class ids) checked against its image's size (as shown,
    from its header) and the classes."""
    mask = read_mask(mask_path)
    width, height = shown_size(image_path)
    if (height, width) != mask.shape:
        raise UserError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} pixels but its "
                        f"image {image_path} is {width}x{height}")
    check_labels(mask, num_classes, mask_path, ignore_label)
    return mask


def check_labels(mask, num_classes, where, ignore_label=255):
    """UserError for a label outside the classes other than `ignore_label`."""
    labels = mask[mask != ignore_label] if mask.size else mask
    high = int(labels.max()) if labels.size else 0
    if high >= num_classes:
        raise UserError(f"{where}: label {high} outside the {num_classes} classes "
                        f"(0..{num_classes - 1}) and not config.data.ignore_label = "
                        f"{ignore_label}; set config.data.num_classes")


def read_mask(path):
    """A mask file -> uint8 (H, W) class ids (RGB: the largest channel, as CARLA's).

    A JPEG mask is refused: its compression changes the ids along every edge.
    `path` may also be the file's bytes (a TFDS record's encoded mask).
    """
    if isinstance(path, bytes):  # a TFDS record's encoded mask
        path = encoded_file(path)
    elif path.lower().endswith(LOSSY_EXTENSIONS):
        raise UserError(f"{path}: a JPEG mask; expected a lossless format (PNG) whose "
                        "pixels are class ids")
    try:
        with Image.open(path) as image:
            if image.mode in ("1", "L", "P", "I", "I;16", "F"):
                array = np.asarray(image)
            else:
                array = np.asarray(image.convert("RGB")).max(axis=-1)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not a readable mask image ({e})") from None
    if array.dtype.kind == "f" and not np.all(array == np.round(array)):
        raise UserError(f"{path}: mask has fractional values; expected integer class ids")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise UserError(f"{path}: labels must lie in 0..255, found {array.min()}..{array.max()}")
    return array.astype(np.uint8)


def resize_image(image, size):
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def resize_mask(mask, size):
    height, width = size
    if mask.shape == (height, width):
        return mask
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))


# -------------------------------------------------------------------- TFDS


def _tfds(config, names):
    """A prepared TFDS segmentation set (features `image` and `segmentation_mask`),
    each pair decoded when a batch needs it (apps.core.tfds_source).

    Mask values minus config.data.mask_offset are the class ids (the pets'
    trimaps are 1 pet, 2 background, 3 outline: offset 1); a pixel holding
    config.data.ignore_label stays ignored (the offset is not subtracted from it).
    """
    d = config.data
    size = tuple(d.image_size)

    def make_split(source):
        if not {"image", "segmentation_mask"} <= set(source.features.keys()):
            raise UserError(f"config.data.name = {d.name!r}: not a segmentation data set; "
                            "expected the features image and segmentation_mask, found "
                            f"{', '.join(source.features.keys())}")
        images = ExampleColumn(
            source, lambda example: resize_image(read_image(example["image"]), size),
            np.uint8, (*size, 3), decoding=f"image {size}")
        masks = ExampleColumn(
            source, lambda example: resize_mask(offset_mask(
                read_mask(example["segmentation_mask"]), d.mask_offset, len(names),
                d.ignore_label), size),
            np.uint8, size, decoding=f"mask {size} {d.mask_offset} {d.ignore_label}")
        return Split(images, masks)

    return Data(*(cached(split, d.cache) for split in tfds_data(d, config.seed, make_split)))


def offset_mask(mask, offset, num_classes, ignore_label):
    """A TFDS mask's values minus `offset`, checked to be classes (or `ignore_label`)."""
    ignored = mask == ignore_label
    labels = mask.astype(np.int32) - offset
    low = int(labels[~ignored].min()) if (~ignored).any() else 0
    if low < 0:
        raise UserError(f"mask label {low} outside the {num_classes} classes after "
                        f"config.data.mask_offset = {offset}")
    labels[ignored] = ignore_label
    check_labels(labels, num_classes, f"its mask after config.data.mask_offset = {offset}",
                 ignore_label)
    return labels.astype(np.uint8)
