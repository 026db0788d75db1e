"""Score filtering and non-max suppression, hand-coded and batched for graph mode.

Score filtering (YOLO): the score of box i for class c is

    score[i, c] = objectness[i] * p(c | object)[i]

and a box is a candidate for class c only if score[i, c] >= score_threshold
(0.6 in the course notes; mAP evaluation uses a low threshold instead).

Non-max suppression, as the notes give it, for each class separately:

    while candidates remain:
        take the candidate with the highest score and keep it
        drop every remaining candidate whose IoU with it is > iou_threshold

`non_max_suppression` is that loop for one class of one image (the twin of
`tf.image.non_max_suppression`, which keeps scores > threshold where this
keeps scores >= threshold, as the notes). `batched_nms` runs the same loop for
every image and class at once (a tf.while_loop over the picks, vectorized over
images and classes), first keeping each class's `pre_nms_top_k` best
candidates so the pairwise IoU matrix stays small, then merges the classes
and keeps the `max_detections` best of each image. It is graph code, so it
runs inside tf.function and the exported serving signature.
"""

import tensorflow as tf

from apps.detection import boxes as boxes_lib


def class_scores(objectness, class_probabilities):
    """score[..., i, c] = objectness[..., i] * class_probabilities[..., i, c]."""
    return objectness[..., None] * class_probabilities


def filter_scores(scores, threshold):
    """Mask of the candidates: score >= threshold."""
    return scores >= threshold


def _greedy(ious, scores, alive, max_output, iou_threshold):
    """The NMS loop over the last axis, vectorized over the leading ones.

    Args:
      ious: (..., K, K) pairwise IoU of the candidates.
      scores: (..., K).
      alive: (..., K) bool, the candidates.
    Returns:
      (..., max_output) int32 indices of the kept boxes in pick order, -1 past the end.
    """
    neg_inf = tf.constant(float("-inf"), scores.dtype)
    k = tf.shape(scores)[-1]
    picks = tf.fill(tf.concat([tf.shape(scores)[:-1], [max_output]], 0), -1)

    def body(t, alive, picks):
        best = tf.argmax(tf.where(alive, scores, neg_inf), axis=-1, output_type=tf.int32)
        best = tf.where(tf.reduce_any(alive, axis=-1), best, -1)  # -1: nothing left
        slot = tf.one_hot(t, max_output, on_value=True, off_value=False)
        picks = tf.where(slot, best[..., None], picks)
        row = tf.gather(ious, tf.maximum(best, 0), axis=-2, batch_dims=len(ious.shape) - 2)
        itself = tf.one_hot(best, k, on_value=True, off_value=False)
        return t + 1, alive & ~((row > iou_threshold) | itself), picks

    def cond(t, alive, picks):
        return (t < max_output) & tf.reduce_any(alive)

    _, _, picks = tf.while_loop(cond, body, (tf.constant(0), alive, picks))
    return picks


def non_max_suppression(boxes, scores, max_output, iou_threshold=0.5, score_threshold=0.0):
    """NMS of one class of one image: kept indices (<= max_output,) int32, best first.

    Args:
      boxes: (N, 4) corner boxes (any two opposite corners, as TF's).
      scores: (N,).
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    picks = _greedy(boxes_lib.pairwise_iou(_ordered(boxes), _ordered(boxes)), scores,
                    filter_scores(scores, score_threshold), max_output, iou_threshold)
    return tf.boolean_mask(picks, picks >= 0)


def _ordered(boxes):
    """Corners in (min x, min y, max x, max y) order, whichever corners were given."""
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    return tf.stack([tf.minimum(x1, x2), tf.minimum(y1, y2), tf.maximum(x1, x2),
                     tf.maximum(y1, y2)], -1)


def batched_nms(boxes, scores, max_per_class=20, max_detections=100, iou_threshold=0.5,
                score_threshold=0.6, pre_nms_top_k=100):
    """Per-class NMS of a batch, merged over classes.

    Args:
      boxes: (batch, N, 4) corner boxes, shared by all classes.
      scores: (batch, N, C) class scores (`class_scores`).
    Returns:
      boxes (batch, D, 4), scores (batch, D), classes (batch, D) int32 (-1 past
      the end), num_detections (batch,) int32, with D = max_detections; each
      image's detections sorted by score, padding zeros after them.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.transpose(tf.convert_to_tensor(scores, tf.float32), [0, 2, 1])  # (b, C, N)
    num_classes = scores.shape[1]
    k = tf.minimum(pre_nms_top_k, tf.shape(scores)[-1])
    top_scores, top_index = tf.math.top_k(scores, k=k)  # (b, C, K), best first
    candidates = tf.gather(boxes, top_index, batch_dims=1)  # (b, C, K, 4)
    ious = boxes_lib.pairwise_iou(candidates, candidates)
    picks = _greedy(ious, top_scores, filter_scores(top_scores, score_threshold),
                    max_per_class, iou_threshold)  # (b, C, M)
    valid = picks >= 0
    safe = tf.maximum(picks, 0)
    kept_scores = tf.where(valid, tf.gather(top_scores, safe, batch_dims=2), float("-inf"))
    kept_index = tf.gather(top_index, safe, batch_dims=2)  # into the N boxes
    batch = tf.shape(boxes)[0]
    flat_scores = tf.reshape(kept_scores, [batch, num_classes * max_per_class])
    flat_index = tf.reshape(kept_index, [batch, num_classes * max_per_class])
    d = min(max_detections, num_classes * max_per_class)
    best_scores, order = tf.math.top_k(flat_scores, k=d)
    ok = best_scores > float("-inf")
    out_boxes = tf.gather(boxes, tf.gather(flat_index, order, batch_dims=1), batch_dims=1)
    out_boxes = tf.where(ok[..., None], out_boxes, 0.0)
    out_scores = tf.where(ok, best_scores, 0.0)
    out_classes = tf.where(ok, order // max_per_class, -1)
    pad = max_detections - d
    if pad:
        out_boxes = tf.pad(out_boxes, [[0, 0], [0, pad], [0, 0]])
        out_scores = tf.pad(out_scores, [[0, 0], [0, pad]])
        out_classes = tf.pad(out_classes, [[0, 0], [0, pad]], constant_values=-1)
    return out_boxes, out_scores, out_classes, tf.reduce_sum(tf.cast(ok, tf.int32), -1)
