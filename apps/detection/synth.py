"""The embedded data set: scenes of real handwritten digits on a textured canvas.

Each scene is a `size` x `size` grey image holding 1 to `max_digits` of
scikit-learn's handwritten digits (real 8x8 scans), each scaled to a random
size and aspect and placed at a random position so that no two boxes overlap
by more than `max_overlap` IoU, over a canvas of smooth random texture plus
pixel noise. A digit's box is the tight box of its ink; its class is the digit.
Everything is drawn from `seed`, so the same seed gives the same scenes.
"""

import numpy as np
from PIL import Image

from apps.detection.evaluation import iou_matrix


def _texture(rng, size):
    """Smooth random background: coarse noise upsampled, plus fine noise."""
    coarse = rng.uniform(0, 1, (rng.integers(3, 9),) * 2).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse, "F").resize((size, size), Image.BICUBIC))
    level = rng.uniform(0.05, 0.4)
    canvas = level + rng.uniform(0.1, 0.3) * (smooth - 0.5)
    return canvas + rng.normal(0, rng.uniform(0.02, 0.06), (size, size))


def _digit(image8, width, height):
    """An 8x8 digit (values 0..16) scaled to height x width, as ink in [0, 1]."""
    scaled = Image.fromarray((image8 / 16.0).astype(np.float32), "F").resize(
        (width, height), Image.BILINEAR)
    return np.clip(np.asarray(scaled), 0, 1)


def scenes(digit_images, digit_labels, count, seed, size=96, max_digits=4, min_size=14,
           max_size=40, max_overlap=0.1, max_boxes=None):
    """`count` scenes drawn from the given digits.

    Args:
      digit_images: (n, 8, 8) scikit-learn digit scans (0..16).
      digit_labels: (n,) their digits.
    Returns:
      images uint8 (count, size, size, 1), boxes float32 (count, max_boxes, 4)
      normalized corners, classes int32 (count, max_boxes), -1 for padding.
    """
    rng = np.random.default_rng(seed)
    max_boxes = max_boxes or max_digits
    images = np.zeros((count, size, size, 1), np.uint8)
    boxes = np.zeros((count, max_boxes, 4), np.float32)
    classes = np.full((count, max_boxes), -1, np.int32)
    for i in range(count):
        canvas = _texture(rng, size)
        placed = []
        for _ in range(rng.integers(1, max_digits + 1)):
            pick = rng.integers(len(digit_images))
            side = rng.uniform(min_size, max_size)
            aspect = rng.uniform(0.75, 1.25)
            w = int(round(min(size, side * np.sqrt(aspect))))
            h = int(round(min(size, side / np.sqrt(aspect))))
            ink = _digit(digit_images[pick], w, h)
            ys, xs = np.nonzero(ink > 0.1)
            if len(xs) == 0:
                continue
            for _attempt in range(20):
                x0, y0 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
                box = np.array([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1,
                                y0 + ys.max() + 1], np.float32) / size
                if not placed or iou_matrix(box, np.array([b for b, _ in placed])).max() \
                        <= max_overlap:
                    break
            else:
                continue
            strength = rng.uniform(0.5, 0.9)
            region = canvas[y0:y0 + h, x0:x0 + w]
            canvas[y0:y0 + h, x0:x0 + w] = region * (1 - ink) + (region + strength) * ink
            placed.append((box, int(digit_labels[pick])))
        for j, (box, label) in enumerate(placed[:max_boxes]):
            boxes[i, j], classes[i, j] = box, label
        images[i, ..., 0] = np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8)
    return images, boxes, classes
