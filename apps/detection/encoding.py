"""The YOLO label encoder and the decoder of its grid.

The image is divided into an S x S grid; each cell has B anchors of shapes
(a_w, a_h) (fractions of the image). A ground-truth box with centre (cx, cy),
size (w, h) (normalized) goes to the cell holding its centre and to that
cell's anchor whose shape has the best IoU with the box's (both at the origin):

    col = floor(cx * S), row = floor(cy * S)
    b   = argmax_j IoU((w, h), (a_w_j, a_h_j))

and that cell/anchor gets the target row [1, dx, dy, tw, th, class]:

    dx = cx * S - col,  dy = cy * S - row      (offset in the cell, in [0, 1))
    tw = log(w / a_w),  th = log(h / a_h)      (log scale of the anchor)

The model predicts raw t = (t_o, t_x, t_y, t_w, t_h, class logits) for every
cell and anchor, decoded as

    objectness = sigmoid(t_o)
    cx = (col + sigmoid(t_x)) / S,  cy = (row + sigmoid(t_y)) / S
    w  = a_w * exp(t_w),            h  = a_h * exp(t_h)
    p(class | object) = softmax(class logits)

so the box offsets go through a sigmoid and the sizes through the exp of the
anchor's scale. Two boxes that fall on the same cell and anchor collide: the
later one is kept (the grid holds one box per cell and anchor).
"""

import tensorflow as tf

from apps.detection import boxes as boxes_lib

# Channels of the target grid.
OBJ, DX, DY, TW, TH, CLASS = range(6)
MAX_LOG_SCALE = 6.0  # exp(6) = 403 x the anchor: keeps exp finite early in training


def _cells(grid_size):
    """(S, S, 1) column and row indices of each cell."""
    r = tf.range(grid_size, dtype=tf.float32)
    rows, cols = tf.meshgrid(r, r, indexing="ij")
    return cols[..., None], rows[..., None]


def best_anchor(wh, anchors):
    """Index of the anchor whose shape has the best IoU with each (w, h): wh (..., 2)."""
    wh = tf.convert_to_tensor(wh, tf.float32)[..., None, :]
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    inter = tf.reduce_prod(tf.minimum(wh, anchors), axis=-1)
    union = tf.reduce_prod(wh, -1) + tf.reduce_prod(anchors, -1) - inter
    return tf.argmax(tf.math.divide_no_nan(inter, union), axis=-1, output_type=tf.int32)


def encode(boxes, classes, anchors, grid_size):
    """The target grid (S, S, B, 6) of one image.

    Args:
      boxes: (M, 4) corner boxes, normalized.
      classes: (M,) int class ids; -1 marks padding.
      anchors: (B, 2) anchor shapes (w, h), normalized.
      grid_size: S.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    classes = tf.cast(classes, tf.int32)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    num_anchors = anchors.shape[0]
    s = float(grid_size)
    centre = boxes_lib.to_centre(boxes)
    cx, cy, w, h = tf.unstack(centre, axis=-1)
    valid = (classes >= 0) & (w > 0) & (h > 0)
    col = tf.clip_by_value(tf.cast(tf.floor(cx * s), tf.int32), 0, grid_size - 1)
    row = tf.clip_by_value(tf.cast(tf.floor(cy * s), tf.int32), 0, grid_size - 1)
    anchor = best_anchor(tf.stack([w, h], -1), anchors)
    chosen = tf.gather(anchors, anchor)
    safe_w, safe_h = tf.maximum(w, 1e-9), tf.maximum(h, 1e-9)
    rows = tf.stack([tf.ones_like(cx), cx * s - tf.cast(col, tf.float32),
                     cy * s - tf.cast(row, tf.float32), tf.math.log(safe_w / chosen[:, 0]),
                     tf.math.log(safe_h / chosen[:, 1]), tf.cast(classes, tf.float32)], -1)
    # Only the last valid box of each (row, col, anchor) is written (no duplicates
    # reach the scatter, so the result does not depend on its order).
    key = (row * grid_size + col) * num_anchors + anchor
    later_same = ((key[None, :] == key[:, None]) & valid[None, :]
                  & (tf.range(tf.size(key))[None, :] > tf.range(tf.size(key))[:, None]))
    keep = valid & ~tf.reduce_any(later_same, axis=1)
    indices = tf.boolean_mask(tf.stack([row, col, anchor], -1), keep)
    grid = tf.zeros([grid_size, grid_size, num_anchors, 6], tf.float32)
    return tf.tensor_scatter_nd_update(grid, indices, tf.boolean_mask(rows, keep))


def grid_boxes(offsets, log_scales, anchors):
    """Corner boxes from cell offsets (..., S, S, B, 2) in [0, 1] and log scales (same shape)."""
    grid_size = offsets.shape[-4]
    cols, rows = _cells(grid_size)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    cx = (cols + offsets[..., 0]) / grid_size
    cy = (rows + offsets[..., 1]) / grid_size
    wh = anchors * tf.exp(tf.minimum(log_scales, MAX_LOG_SCALE))
    return boxes_lib.to_corners(tf.stack([cx, cy, wh[..., 0], wh[..., 1]], -1))


def decode_targets(grid, anchors):
    """The boxes and classes written in a target grid (S, S, B, 6): (K, 4), (K,)."""
    mask = grid[..., OBJ] > 0.5
    boxes = grid_boxes(grid[..., DX:DY + 1], grid[..., TW:TH + 1], anchors)
    return tf.boolean_mask(boxes, mask), tf.cast(tf.boolean_mask(grid[..., CLASS], mask), tf.int32)


def decode_predictions(outputs, anchors):
    """Raw model outputs (batch, S, S, B, 5 + C) -> boxes, objectness, class probabilities.

    Returns boxes (batch, S*S*B, 4) in corners, objectness (batch, S*S*B) and
    class probabilities (batch, S*S*B, C).
    """
    outputs = tf.cast(outputs, tf.float32)
    boxes = grid_boxes(tf.sigmoid(outputs[..., 1:3]), outputs[..., 3:5], anchors)
    n = tf.shape(outputs)[0]
    cells = tf.reduce_prod(tf.shape(outputs)[1:4])
    return (tf.reshape(boxes, [n, cells, 4]),
            tf.reshape(tf.sigmoid(outputs[..., 0]), [n, cells]),
            tf.reshape(tf.nn.softmax(outputs[..., 5:], axis=-1), [n, cells, outputs.shape[-1] - 5]))
