"""Box formats and overlaps, hand-coded in TensorFlow (graph and eager).

Boxes are normalized to [0, 1] of the image's width and height, in one of
two formats:

    corners  (x1, y1, x2, y2)   top-left and bottom-right corners
    centre   (cx, cy, w, h)     centre, width and height

    corners -> centre:  cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, w = x2 - x1, h = y2 - y1
    centre -> corners:  x1 = cx - w / 2, y1 = cy - h / 2, x2 = cx + w / 2, y2 = cy + h / 2

Intersection over union of boxes A and B (Jaccard index):

    inter = max(0, min(A.x2, B.x2) - max(A.x1, B.x1)) * max(0, min(A.y2, B.y2) - max(A.y1, B.y1))
    union = area(A) + area(B) - inter          area = (x2 - x1) * (y2 - y1)
    IoU   = inter / union                      (0 where union = 0)

Generalized IoU (Rezatofighi et al., 2019), with C the smallest box enclosing A and B:

    GIoU = IoU - (area(C) - union) / area(C)   in (-1, 1]
"""

import tensorflow as tf

FORMATS = ("corners", "centre")


def _float(boxes):
    """A float tensor (float32 unless already floating)."""
    boxes = tf.convert_to_tensor(boxes)
    return boxes if boxes.dtype.is_floating else tf.cast(boxes, tf.float32)


def to_centre(boxes):
    """corners (x1, y1, x2, y2) -> centre (cx, cy, w, h)."""
    x1, y1, x2, y2 = tf.unstack(_float(boxes), axis=-1)
    return tf.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def to_corners(boxes):
    """centre (cx, cy, w, h) -> corners (x1, y1, x2, y2)."""
    cx, cy, w, h = tf.unstack(_float(boxes), axis=-1)
    return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def _corners(boxes, box_format):
    if box_format not in FORMATS:
        raise ValueError(f"box_format {box_format!r}: expected one of {FORMATS}")
    boxes = _float(boxes)
    return to_corners(boxes) if box_format == "centre" else boxes


def area(boxes):
    """Area of corner boxes, (x2 - x1) * (y2 - y1), 0 for an empty box."""
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    return tf.maximum(x2 - x1, 0.0) * tf.maximum(y2 - y1, 0.0)


def _overlap(a, b):
    """(intersection, union, enclosing area) of corner boxes a, b (broadcast)."""
    ax1, ay1, ax2, ay2 = tf.unstack(a, axis=-1)
    bx1, by1, bx2, by2 = tf.unstack(b, axis=-1)
    iw = tf.maximum(tf.minimum(ax2, bx2) - tf.maximum(ax1, bx1), 0.0)
    ih = tf.maximum(tf.minimum(ay2, by2) - tf.maximum(ay1, by1), 0.0)
    inter = iw * ih
    union = area(a) + area(b) - inter
    enclosing = ((tf.maximum(ax2, bx2) - tf.minimum(ax1, bx1))
                 * (tf.maximum(ay2, by2) - tf.minimum(ay1, by1)))
    return inter, union, enclosing


def iou(a, b, box_format="corners"):
    """IoU of boxes a[..., 4] and b[..., 4], broadcast elementwise."""
    a, b = _corners(a, box_format), _corners(b, box_format)
    inter, union, _ = _overlap(a, b)
    return tf.math.divide_no_nan(inter, union)


def giou(a, b, box_format="corners"):
    """Generalized IoU of boxes a[..., 4] and b[..., 4], broadcast elementwise."""
    a, b = _corners(a, box_format), _corners(b, box_format)
    inter, union, enclosing = _overlap(a, b)
    value = tf.math.divide_no_nan(inter, union)
    return value - tf.math.divide_no_nan(enclosing - union, enclosing)


def pairwise_iou(a, b, box_format="corners"):
    """IoU of every box of a[..., N, 4] with every box of b[..., M, 4]: [..., N, M]."""
    a, b = _corners(a, box_format), _corners(b, box_format)
    return iou(a[..., :, None, :], b[..., None, :, :])
