"""The embedded data set: generated scenes with pixel-exact masks.

Each scene is a textured background (a smooth colour field, stripes at a
random angle and pixel noise) with 1 to `max_objects` objects painted on it
without overlap: handwritten digits (scikit-learn's 1,797 real 8x8 scans,
upscaled bilinearly and thresholded at half ink) and simple shapes (circle,
rotated square, rotated triangle), each in a colour that contrasts with the
background. The mask holds, for every pixel, the class of the object painted
there (0 = background), so it is exact by construction.

Classes: background, the digits 0-9, circle, square, triangle (14). Every
object's class is drawn uniformly, so each class covers a similar area.
The digit scans are split 60/20/20 (stratified, by the seed) before any scene
is made, so the validation and test scenes show handwriting the model never
saw in training.
"""

import math

import numpy as np
from scipy import ndimage

SHAPES = ("circle", "square", "triangle")
DIGITS = tuple(str(d) for d in range(10))
CLASS_NAMES = ("background",) + DIGITS + SHAPES


def digit_scans():
    """scikit-learn's digits: float (1797, 8, 8) ink in [0, 1], labels (1797,)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def scenes(scans, labels, count, size, seed, max_objects=3, object_size=(0.3, 0.45)):
    """`count` scenes: images uint8 (count, H, W, 3) and masks uint8 (count, H, W).

    Args:
      scans, labels: the digit scans this split may use (float (N, 8, 8) in [0, 1]).
      size: (height, width) of the scenes.
      seed: the scenes are a function of the seed (and the other arguments).
      max_objects: the most objects in a scene (at least 1 each).
      object_size: the range of an object's side, as a fraction of min(H, W).
    """
    height, width = size
    rng = np.random.default_rng(seed)
    by_digit = [np.flatnonzero(labels == d) for d in range(10)]
    images = np.empty((count, height, width, 3), np.uint8)
    masks = np.zeros((count, height, width), np.uint8)
    for i in range(count):
        image, mask = _scene(rng, scans, by_digit, height, width, max_objects, object_size)
        images[i], masks[i] = image, mask
    return images, masks


def _scene(rng, scans, by_digit, height, width, max_objects, object_size):
    dark = rng.random() < 0.5
    image = _background(rng, height, width, dark)
    mask = np.zeros((height, width), np.uint8)
    for _ in range(rng.integers(1, max_objects + 1)):
        cls = int(rng.integers(1, len(CLASS_NAMES)))
        side = int(round(rng.uniform(*object_size) * min(height, width)))
        side = max(6, min(side, height, width))
        if cls <= 10:
            members = by_digit[cls - 1]
            if len(members) == 0:
                continue
            shape = _digit(scans[rng.choice(members)], side)
        else:
            shape = _shape(SHAPES[cls - 11], side, rng)
        place = _free_place(rng, mask, shape)
        if place is None:
            continue
        y, x = place
        h, w = shape.shape
        region = mask[y:y + h, x:x + w]
        region[shape] = cls
        image[y:y + h, x:x + w][shape] = _colour(rng, dark, shape.sum())
    image += rng.normal(0.0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), mask


def _background(rng, height, width, dark):
    """A smooth colour field + stripes + noise, luminance low (dark) or high."""
    base = rng.uniform(0.05, 0.35, 3) if dark else rng.uniform(0.65, 0.95, 3)
    cells = rng.normal(0.0, 0.08, (height // 8 + 2, width // 8 + 2, 3))
    field = ndimage.zoom(cells, (height / cells.shape[0], width / cells.shape[1], 1), order=1)
    field = field[:height, :width]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(4, 16)
    stripes = np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period
                     + rng.uniform(0, 2 * math.pi))
    stripes = stripes[..., None] * rng.uniform(0.0, 0.08) * rng.choice([-1, 1], 3)
    return np.clip(base + field + stripes, 0, 1).astype(np.float64)


def _colour(rng, dark, n):
    """An object colour that contrasts with the background, lightly shaded."""
    colour = rng.uniform(0.6, 1.0, 3) if dark else rng.uniform(0.0, 0.4, 3)
    colour[rng.integers(3)] = 1.0 if dark else 0.0  # saturate one channel
    return np.clip(colour + rng.normal(0, 0.03, (n, 3)), 0, 1)


def _digit(scan, side):
    """The scan upscaled bilinearly to side x side, thresholded at half ink."""
    up = ndimage.zoom(scan, side / 8.0, order=1, mode="nearest", grid_mode=True)
    return up[:side, :side] >= 0.5


def _shape(kind, side, rng):
    """A boolean side x side mask of a circle, rotated square or rotated triangle."""
    yy, xx = np.mgrid[0:side, 0:side] + 0.5
    c = side / 2.0
    if kind == "circle":
        return (xx - c) ** 2 + (yy - c) ** 2 <= (side / 2.0) ** 2
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "square":
        half = side / (2 * math.sqrt(2)) * rng.uniform(1.0, 1.3)
        u = (xx - c) * math.cos(angle) + (yy - c) * math.sin(angle)
        v = -(xx - c) * math.sin(angle) + (yy - c) * math.cos(angle)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    r = side / 2.0  # triangle inscribed in the circle of radius r
    corners = [(c + r * math.cos(angle + k * 2 * math.pi / 3),
                c + r * math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)]
    inside = np.ones((side, side), bool)
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        # Counter-clockwise corners: the inside is to the left of every edge.
        inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= 0
    return inside


def _free_place(rng, mask, shape, tries=30):
    """A top-left corner where `shape` (dilated by 1 px) covers no other object."""
    height, width = mask.shape
    h, w = shape.shape
    grown = ndimage.binary_dilation(shape, iterations=1)
    for _ in range(tries):
        y = int(rng.integers(0, height - h + 1))
        x = int(rng.integers(0, width - w + 1))
        if not np.any(mask[y:y + h, x:x + w][grown]):
            return y, x
    return None
