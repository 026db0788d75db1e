"""Image preparation and augmentation shared by the image apps.

Everything here is graph code (tf.data, serving signatures) and every random
choice is a stateless op keyed by an explicit seed, so a resumed run sees the
same augmented examples as an uninterrupted one.
"""

import io
import math
import os
import unicodedata

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image, ImageOps

from apps.core.errors import UserError

EXIF_ORIENTATION = 0x0112  # the tag; 5..8 turn the image a quarter
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_image(path, image_size=None, channels=3, crop=1.0, orient=True):
    """One image file -> uint8 (H, W, channels); UserError naming an unreadable file.

    `path` may also be the file's bytes (an encoded image of a TFDS record).
    `crop` < 1 keeps that central fraction of each side; `image_size` then
    resizes to image_size x image_size (bilinear). `orient` applies the EXIF
    orientation (phone photographs store it there); without it the stored
    pixels are kept, the grid a TFDS set's boxes refer to.
    """
    if isinstance(path, bytes):
        path = encoded_file(path)
    try:
        with Image.open(path) as image:
            image = _eight_bit(image)
            if orient:
                image = ImageOps.exif_transpose(image)
            image = image.convert("L" if channels == 1 else "RGB")
            if crop < 1.0:
                w, h = image.size
                cw, ch = max(1, round(w * crop)), max(1, round(h * crop))
                left, top = (w - cw) // 2, (h - ch) // 2
                image = image.crop((left, top, left + cw, top + ch))
            if image_size:
                image = image.resize((image_size, image_size), Image.BILINEAR)
            array = np.asarray(image, np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not a readable image ({e})") from None
    return array.reshape(array.shape[0], array.shape[1], channels)


class _EncodedImage(io.BytesIO):
    """An encoded image held in memory, named as such in an error message."""

    def __str__(self):
        return f"its encoded image ({len(self.getbuffer())} bytes)"


def stored_size(data):
    """(width, height) of an encoded image's stored pixels, from its header."""
    try:
        with Image.open(encoded_file(data)) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{encoded_file(data)}: not a readable image ({e})") from None


def encoded_file(data):
    """An encoded image's bytes (a TFDS record's) as a file Pillow opens, named
    "its encoded image (N bytes)" in an error message."""
    return _EncodedImage(data)


def _eight_bit(image):
    """16-bit greyscale (PNG, TIFF: modes I;16*, I) scaled to 8 bits as
    round(v / 257), so 65535 -> 255; Pillow's own convert would clip every
    value above 255 to white."""
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"mode {image.mode} pixel values outside 0..65535")
        return Image.fromarray(np.round(values / 257.0).astype(np.uint8), "L")
    if image.mode == "F":
        raise ValueError("floating-point pixels (mode F); save it as an 8- or 16-bit image")
    return image


def image_files(path):
    """The image files at `path` (a file, or a folder searched recursively,
    hidden and system files such as ._x.jpg left out), sorted."""
    if os.path.isfile(path):
        return [path]
    files = []
    for root, folders, names in os.walk(path):
        folders[:] = [f for f in folders if not _hidden(f)]  # __MACOSX/, .git/
        files += [os.path.join(root, f) for f in names
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not _hidden(f)]
    files.sort()
    if not files:
        raise UserError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _hidden(name):
    """Files and folders a system writes beside the data (.DS_Store, ._x.jpg, __MACOSX)."""
    return name.startswith((".", "__MACOSX"))


def shown_size(path):
    """(width, height) of the image file as it is shown: its EXIF orientation
    applied, as read_image applies it to the pixels (a phone photograph stored
    on its side). Reads the header only; UserError for a file that is no image."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            try:
                turned = image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
            except (OSError, ValueError, SyntaxError):  # damaged EXIF: its read will say
                turned = False
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not a readable image ({e})") from None
    return (height, width) if turned else (width, height)


def is_image(path):
    """Whether Pillow recognises `path` as an image (reading its header only)."""
    try:
        with Image.open(path):
            return True
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def image_folder_files(root):
    """One sub-folder per class (its name is the class name), images inside.

    Returns the image files, their int64 labels and the class names, without
    decoding an image: a file whose header is not an image's is skipped with
    a warning naming it (one whose data are damaged is met when it is read).
    Images in sub-folders of a class folder belong to that class; hidden and
    system files (.DS_Store, ._x.jpg, __MACOSX/) are ignored; a class folder
    without images is reported and skipped. Class names are in Unicode's
    composed form (NFC).
    """
    if not root:
        raise UserError("config.data.path is empty: give the folder with one "
                        "sub-folder per class")
    if not os.path.isdir(root):
        what = "a file" if os.path.exists(root) else "no such folder"
        raise UserError(f"config.data.path = {root!r}: {what}; expected a folder with one "
                        "sub-folder per class")
    names = sorted(d for d in os.listdir(root)
                   if os.path.isdir(os.path.join(root, d)) and not _hidden(d))
    paths, labels, kept, skipped = [], [], [], 0
    for name in names:
        found = []
        for top, folders, files in os.walk(os.path.join(root, name)):
            folders[:] = sorted(f for f in folders if not _hidden(f))
            for file in sorted(files):
                path = os.path.join(top, file)
                if _hidden(file) or not file.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                if is_image(path):
                    found.append(path)
                else:
                    logging.warning("skipped %s: not a readable image", path)
                    skipped += 1
        if found:
            paths += found
            labels += [len(kept)] * len(found)
            # macOS writes folder names decomposed ("Zoe" + U+0308): named as typed ("Zoë").
            kept.append(unicodedata.normalize("NFC", name))
        else:
            logging.warning("skipped %s: no readable images (%s)", os.path.join(root, name),
                            ", ".join(IMAGE_EXTENSIONS))
    if skipped:
        logging.warning("%d unreadable image(s) skipped in %s", skipped, root)
    if len(kept) < 2:
        raise UserError(f"config.data.path = {root!r}: expected one sub-folder of images "
                        f"per class (at least 2), found {len(kept)}")
    return paths, np.asarray(labels, np.int64), kept


def image_column(paths, image_size, channels, crop=1.0):
    """The images at `paths` as a column read on demand (apps.core.columns), each
    decoded as read_image does, at image_size x image_size x channels."""
    from apps.core.columns import FileColumn

    return FileColumn(paths, lambda path: read_image(path, image_size, channels, crop),
                      np.uint8, (image_size, image_size, channels),
                      decoding=f"read_image {image_size} {channels} {crop}")


def prepare_image(image, size, channels):
    """uint8 image(s) of any size and 1 or 3 channels -> float32 in [0, 1].

    Resized to `size` x `size` (bilinear) with `channels` channels
    (grey <-> RGB converted). Works on one image (H, W, C) or a batch.
    """
    image = _with_channels(tf.cast(tf.convert_to_tensor(image), tf.float32), channels)
    # An image whose shape says it is already size x size is left alone: the
    # resize would be the identity (exactly), at a cost in every training step.
    if tuple(image.shape[-3:-1]) != (size, size):
        image = tf.image.resize(image, (size, size), antialias=True)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


_LUMA = (0.2989, 0.5870, 0.1140)  # ITU-R 601, as tf.image.rgb_to_grayscale


def _with_channels(image, channels):
    """Keeps `channels` (1 or 3) channels, converting grey <-> RGB as needed."""
    def keep():
        return image[..., :channels]

    def convert():
        if channels == 1:
            return tf.reduce_sum(image[..., :3] * _LUMA, axis=-1, keepdims=True)
        return tf.concat([image[..., :1]] * 3, axis=-1)

    have = image.shape[-1]
    if have is None:  # a serving signature: decided at run time
        return tf.cond(tf.equal(tf.shape(image)[-1] >= 3, channels == 3), keep, convert)
    return keep() if (have >= 3) == (channels == 3) else convert()


def augment_image(image, seed, flip=False, shift=0.0, rotation=0.0, color=0.0):
    """Random flip, shift, rotation and colour jitter of one float image in [0, 1].

    Args:
      image: (H, W, C) float32.
      seed: int64 tensor of shape (2,), the stateless seed of this example.
      flip: mirror left-right with probability 1/2.
      shift: largest translation, as a fraction of the side.
      rotation: largest rotation, in degrees.
      color: strength of the brightness / contrast jitter (0 = off).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    if shift or rotation:
        h = tf.cast(tf.shape(image)[0], tf.float32)
        w = tf.cast(tf.shape(image)[1], tf.float32)
        angle = tf.random.stateless_uniform([], seeds[1], -1.0, 1.0) * rotation * math.pi / 180
        dx = tf.random.stateless_uniform([], seeds[2], -1.0, 1.0) * shift * w
        dy = tf.random.stateless_uniform([], seeds[3], -1.0, 1.0) * shift * h
        image = _affine(image, angle, dx, dy)
    if color:
        image = tf.image.stateless_random_brightness(image, 0.2 * color, seeds[4])
        image = tf.image.stateless_random_contrast(image, 1 - 0.5 * color, 1 + 0.5 * color,
                                                   seeds[5])
        image = tf.clip_by_value(image, 0.0, 1.0)
    return image


def _affine(image, angle, dx, dy):
    """Rotates by `angle` about the centre and shifts by (dx, dy), zero fill."""
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = tf.cos(angle), tf.sin(angle)
    # The transform maps output (x, y) to input (x', y'):
    # x' = cos*(x-cx) + sin*(y-cy) + cx - dx ; y' = -sin*(x-cx) + cos*(y-cy) + cy - dy
    transform = tf.stack([cos, sin, cx - cos * cx - sin * cy - dx,
                          -sin, cos, cy + sin * cx - cos * cy - dy, 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    return out[0]


def to_uint8(images):
    """Float images in [0, 1] -> uint8 (NumPy)."""
    return (np.clip(np.asarray(images), 0, 1) * 255 + 0.5).astype(np.uint8)


def upscale(images, size=48):
    """Nearest-neighbour upscaling of uint8 images (N, h, w, c) to about `size`
    pixels a side, so that small images are visible in TensorBoard."""
    factor = max(1, size // images.shape[1])
    return images.repeat(factor, axis=1).repeat(factor, axis=2)


def captioned(images, captions, size=64):
    """uint8 images (N, h, w, c) upscaled to about `size` pixels, each with its
    caption (e.g. "true 3 / predicted 5") in a strip beneath, as RGB (N, H, W, 3)."""
    from PIL import Image, ImageDraw

    images = upscale(np.asarray(images), size)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    n, h, w, _ = images.shape
    strip = 12  # PIL's default bitmap font: 11 pixels a line, about 6 a character
    longest = max(len(line) for c in captions for line in c.split("\n"))
    out = np.zeros((n, h + 2 * strip, max(w, 6 * longest + 4), 3), np.uint8)
    for i, (image, caption) in enumerate(zip(images, captions, strict=True)):
        canvas = Image.new("RGB", (out.shape[2], out.shape[1]))
        canvas.paste(Image.fromarray(image), (0, 0))
        draw = ImageDraw.Draw(canvas)
        for row, text in enumerate(caption.split("\n")[:2]):
            draw.text((1, h + row * strip), text, fill=(255, 255, 255))
        out[i] = np.asarray(canvas)
    return out


def grid(images, columns=8):
    """Tiles uint8 images (N, H, W, C) into one image (1, rows*H, columns*W, C)."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = max(1, math.ceil(n / columns))
    columns = min(columns, n)
    canvas = np.zeros((rows * h, columns * w, c), images.dtype)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
    return canvas[None]


def figure_to_image(figure):
    """A matplotlib figure -> uint8 RGB array (1, H, W, 3) for tf.summary.image."""
    figure.canvas.draw()
    rgba = np.asarray(figure.canvas.buffer_rgba())
    import matplotlib.pyplot as plt

    plt.close(figure)
    return rgba[None, ..., :3].copy()
