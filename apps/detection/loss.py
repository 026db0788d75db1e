"""The YOLO loss: objectness, box regression and class terms, per example.

With 1_obj the cells/anchors that hold a ground-truth box (see encoding.py),
1_noobj the others whose predicted box overlaps no ground-truth box by more
than `ignore_iou` (YOLOv2/v3: a good box in the wrong cell is not punished),
sigma the logistic function and BCE(y, z) = -y log sigma(z) - (1 - y) log(1 - sigma(z)):

    objectness = obj_scale   * sum 1_obj   * BCE(1, t_o)
    no_object  = noobj_scale * sum 1_noobj * BCE(0, t_o)          (down-weighted)
    box        = coord_scale * sum 1_obj   * box term
    class      = class_scale * sum 1_obj   * -log softmax(class logits)[class]

The box term is configurable:

    squared:  (sigma(t_x) - dx)^2 + (sigma(t_y) - dy)^2 + (t_w - tw)^2 + (t_h - th)^2
    iou:      1 - IoU(predicted box, true box)
    giou:     1 - GIoU(predicted box, true box)

Sums run over the S x S x B cells/anchors of one example.
"""

import tensorflow as tf

from apps.detection import boxes as boxes_lib
from apps.detection import encoding

BOX_LOSSES = ("squared", "iou", "giou")
TERMS = ("objectness", "no_object", "box", "class")


def yolo_loss(grid, true_boxes, true_classes, outputs, anchors, box_loss="squared",
              obj_scale=1.0, noobj_scale=0.5, coord_scale=5.0, class_scale=1.0, ignore_iou=0.6):
    """The loss terms {name: (batch,)} of a batch.

    Args:
      grid: (batch, S, S, B, 6) target grids (encoding.encode).
      true_boxes: (batch, M, 4) the ground-truth corner boxes (for the ignore mask).
      true_classes: (batch, M) their classes, -1 for padding.
      outputs: (batch, S, S, B, 5 + C) raw model outputs.
      anchors: (B, 2) anchor shapes.
      ignore_iou: no-object predictions overlapping a true box by more than
        this are left out of the no-object term (1 or more: none is left out).
    """
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"box_loss {box_loss!r}: expected one of {BOX_LOSSES}")
    outputs = tf.cast(outputs, tf.float32)
    obj = grid[..., encoding.OBJ]
    logit = outputs[..., 0]
    pred_boxes = encoding.grid_boxes(tf.sigmoid(outputs[..., 1:3]), outputs[..., 3:5], anchors)

    # The ignore mask: the best IoU of each predicted box with any true box.
    batch = tf.shape(outputs)[0]
    flat = tf.reshape(pred_boxes, [batch, -1, 4])
    overlaps = boxes_lib.pairwise_iou(flat, tf.cast(true_boxes, tf.float32))  # (batch, N, M)
    overlaps *= tf.cast(tf.convert_to_tensor(true_classes) >= 0, tf.float32)[:, None, :]
    best = tf.reshape(tf.reduce_max(overlaps, axis=-1), tf.shape(obj))
    noobj = (1.0 - obj) * tf.cast(tf.stop_gradient(best) <= ignore_iou, tf.float32)

    def total(x):
        return tf.reduce_sum(tf.reshape(x, [batch, -1]), axis=-1)

    terms = {
        "objectness": obj_scale * total(
            obj * tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logit), logit)),
        "no_object": noobj_scale * total(
            noobj * tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(logit), logit)),
    }
    if box_loss == "squared":
        offsets = tf.sigmoid(outputs[..., 1:3]) - grid[..., encoding.DX:encoding.DY + 1]
        scales = outputs[..., 3:5] - grid[..., encoding.TW:encoding.TH + 1]
        per_cell = tf.reduce_sum(offsets**2, -1) + tf.reduce_sum(scales**2, -1)
    else:
        true = encoding.grid_boxes(grid[..., encoding.DX:encoding.DY + 1],
                                   grid[..., encoding.TW:encoding.TH + 1], anchors)
        overlap = boxes_lib.iou if box_loss == "iou" else boxes_lib.giou
        per_cell = 1.0 - overlap(pred_boxes, true)
    terms["box"] = coord_scale * total(obj * per_cell)
    labels = tf.cast(grid[..., encoding.CLASS], tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, outputs[..., 5:])
    terms["class"] = class_scale * total(obj * ce)
    return terms
