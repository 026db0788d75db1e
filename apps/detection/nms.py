"""Score filtering and non-max suppression, hand-coded and batched for graph mode.

Score filtering (YOLO): the score of box i for class c is

    score[i, c] = objectness[i] * p(c | object)[i]

and a box is a candidate for class c only if score[i, c] >= score_threshold
(0.6 in the course notes; mAP evaluation uses a low threshold instead).

Non-max suppression, as the notes give it, for each class separately:

    while candidates remain and fewer than max_output are kept:
        take the candidate with the highest score and keep it
        drop every remaining candidate whose IoU with it is > iou_threshold

How it is computed here: the same result, from a few large tensor operations
instead of a handful of small ones per pick.

1. Sort the candidates by score, best first (equal scores: the lower index
   first, as tf.image does). A box can then only be suppressed by a box
   before it, and the loop above keeps box i exactly when no kept box before
   it overlaps it:

       keep[i] = candidate[i] and not any over j < i of (keep[j] and IoU(i, j) > t)

2. Take the sorted boxes a tile of T at a time (T = max_output + max_output / 4
   unless `tile_size` says otherwise, so that one tile is usually enough).
   For a tile, compute once the IoU matrix of its boxes with the boxes kept
   before it and with each other (the strictly lower triangle, j < i), and
   list the pairs (i, j) with IoU > t: few, as most boxes overlap no other.
3. Solve the tile's recurrence by fixed-point iteration, all boxes at once:

       keep <- alive and not any over the pairs (i, j) of keep[j]

   from keep = alive (the tile's candidates not suppressed by earlier
   tiles). The pairs all have j < i, so the recurrence has one solution;
   the iterates alternate below and above it and reach it after (the
   longest chain of suppressions + 1) steps, at most T + 1 and in practice
   2 to 4. Three steps are unrolled, and a loop runs on only if the third
   differs from the second.
4. Stop after the first tile where every problem (image, class) has
   max_output kept boxes or no candidates left (a tf.while_loop over tiles,
   entered only if the first tile is not enough; it sorts further down the
   scores); the kept boxes, in sorted order, first max_output of them, are
   the result.

The IoU is TensorFlow's own formula in float32, operation for operation
(corners put in min/max order; area = (x_max - x_min) * (y_max - y_min);
IoU = inter / (area_i + area_j - inter), not suppressing when either box is
empty), so every decision, ties included, is the one tf.image makes (for
finite coordinates and iou_threshold in [0, 1], as tf.image requires).

`non_max_suppression` is the twin of `tf.image.non_max_suppression`: the same
kept indices in the same order, candidates with score > score_threshold, at
most max_output. `batched_nms` runs the same algorithm for every image and
class at once (the problems are the rows of every tensor above), on each
class's `pre_nms_top_k` best scores with the notes' filter (score >=
score_threshold), then merges the classes and keeps the `max_detections` best
of each image. Both are graph code: they run inside tf.function, the exported
SavedModel's serving signature and TensorFlow Lite (builtin ops only).
"""

import tensorflow as tf


def class_scores(objectness, class_probabilities):
    """score[..., i, c] = objectness[..., i] * class_probabilities[..., i, c]."""
    return objectness[..., None] * class_probabilities


def filter_scores(scores, threshold):
    """Mask of the candidates: score >= threshold."""
    return scores >= threshold


def default_tile_size(max_output):
    """Boxes per tile: max_output and a quarter more, so that one tile usually does."""
    return max(8, max_output + -(-max_output // 4))


def _planes(boxes):
    """Boxes (P, K, 4), any two opposite corners -> (5, P, K): x_min, y_min,
    x_max, y_max and area = (x_max - x_min) * (y_max - y_min)."""
    x1, y1, x2, y2 = tf.unstack(boxes, 4, axis=-1)
    x_min, y_min = tf.minimum(x1, x2), tf.minimum(y1, y2)
    x_max, y_max = tf.maximum(x1, x2), tf.maximum(y1, y2)
    return tf.stack([x_min, y_min, x_max, y_max, (x_max - x_min) * (y_max - y_min)])


def _after(tensor, make):
    """make(), run after `tensor` is computed: the large pairwise operations one
    at a time, so that none waits for a second thread (the machine may be busy)."""
    with tf.control_dependencies([tensor]):
        return make()


def _suppression(rows, columns, threshold):
    """IoU(row box i, column box j) > threshold (broadcast to [i, j]): (P, R, C) bool.

    rows (5, P, R) and columns (5, P, C) are `_planes`; threshold >= 0. The
    overlap's height is not clipped at 0: where it is negative and the width
    positive, inter and so the IoU are negative, which is > no threshold, as
    TensorFlow's 0 is not (one operation less on the largest tensors). An
    empty box has IoU 0 (0 / union), or 0 / 0 = NaN with another empty box:
    > no threshold either, as TensorFlow's 0.
    """
    rx1, ry1, rx2, ry2, r_area = tf.unstack(tf.expand_dims(rows, 3), 5)
    cx1, cy1, cx2, cy2, c_area = tf.unstack(tf.expand_dims(columns, 2), 5)
    right = tf.minimum(rx2, cx2)
    inter_w = tf.maximum(right - _after(right, lambda: tf.maximum(rx1, cx1)), 0.0)
    bottom = _after(inter_w, lambda: tf.minimum(ry2, cy2))
    inter = inter_w * (bottom - _after(bottom, lambda: tf.maximum(ry1, cy1)))
    union = _after(inter, lambda: r_area + c_area) - inter  # TF's order: (a_i + a_j) - inter
    return inter / union > threshold


def _settle(alive, suppression):
    """The greedy keep mask of a tile: the fixed point of
    keep = alive and not any_j (suppression[i, j] and keep[j]), from keep = alive.

    alive (P, T) bool; suppression (P, T, T) bool, strictly lower-triangular.
    The iteration runs on the list of suppressing pairs (few: most boxes
    overlap no other), listed once: a step counts each box's kept suppressors.
    """
    shape = tf.shape(alive)
    p, t = (alive.shape[0] or shape[0]), (alive.shape[1] or shape[1])
    # Pairs (i, j), j < i, as flat indices into the P * T boxes.
    pairs = tf.cast(tf.where(tf.reshape(suppression, [p * t, t])), tf.int32)
    box_i, box_j = pairs[:, 0], pairs[:, 1]
    if not (isinstance(p, int) and p == 1):  # j is within its problem: p * T + j
        box_j += box_i - box_i % t
    alive = tf.reshape(tf.cast(alive, tf.int32), [-1])

    def step(keep):  # keep: (P * T,) int32, 1 where kept
        suppressors = tf.math.unsorted_segment_sum(tf.gather(keep, box_j), box_i, p * t)
        return tf.cast(alive > suppressors, tf.int32)

    # Three steps unrolled: the fixed point when no chain of suppressions is
    # longer than two (the third step repeats the second), else a loop on.
    second = step(step(alive))
    third = step(second)

    def iterate():
        def body(keep, changed):
            new = step(keep)
            return new, tf.reduce_any(new != keep)

        return tf.while_loop(lambda keep, changed: changed, body, (third, tf.constant(True)))[0]

    keep = tf.cond(tf.reduce_any(third != second), iterate, lambda: third)
    keep = tf.reshape(keep > 0, shape)
    keep.set_shape(suppression.shape[:2])
    return keep


def _sorted_greedy(scores, gather_boxes, max_output, iou_threshold, is_candidate, tile, k_max):
    """Greedy NMS of P problems at once, a tile of sorted boxes at a time.

    Args:
      scores: (P, N) float32.
      gather_boxes: function of indices (P, K) into the N boxes -> their boxes (P, K, 4).
      max_output: Python int, the most boxes each problem keeps.
      is_candidate: function of sorted scores -> bool mask of the candidates.
      tile: Python int, boxes per tile.
      k_max: how far down the scores to go (<= N): int or scalar tensor.
    Returns:
      top (P, K) sorted scores, index (P, K) their box indices and keep
      (P, K) bool, the greedy decisions for the K <= k_max best boxes
      (enough of them for every problem to have max_output kept, or all).
    """
    if isinstance(iou_threshold, (int, float)) and not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold {iou_threshold}: expected a number in [0, 1]")
    threshold = tf.convert_to_tensor(iou_threshold, tf.float32)
    static_k = k_max if isinstance(k_max, int) else None
    first = min(tile, static_k) if static_k is not None else tf.minimum(tile, k_max)
    lower = tf.constant([[j < i for j in range(tile)] for i in range(tile)])
    lower_threshold = tf.where(lower, threshold, float("inf"))  # j < i only

    top, index = tf.math.top_k(scores, first)
    planes = _planes(gather_boxes(index))
    keep = _settle(is_candidate(top),
                   _suppression(planes, planes, lower_threshold[:first, :first]))
    if static_k is not None and static_k <= tile:
        return top, index, keep

    def more(top, index, keep, first_tile=False):
        """Whether a problem lacks max_output kept boxes and may have candidates left."""
        needs = tf.reduce_sum(tf.cast(keep, tf.int32), axis=-1) < max_output
        if first_tile and static_k is not None:  # tile < k_max, top has `tile` columns
            return tf.reduce_any(needs & is_candidate(top[:, -1]))  # sorted: candidates first
        left = tf.reduce_any(is_candidate(top[:, -1:]), axis=-1)
        return tf.reduce_any(needs & left) & (tf.shape(keep)[1] < k_max)

    def next_tile(top, index, keep):
        start = tf.shape(keep)[1]
        end = tf.minimum(start + tile, k_max)
        top, index = tf.math.top_k(scores, end)
        planes = _planes(gather_boxes(index))
        rows, before = planes[:, :, start:], planes[:, :, :start]
        alive = is_candidate(top[:, start:]) & ~tf.reduce_any(
            _suppression(rows, before, threshold) & tf.expand_dims(keep, 1), axis=-1)
        size = end - start
        tile_keep = _settle(alive, _suppression(rows, rows, lower_threshold[:size, :size]))
        return top, index, tf.concat([keep, tile_keep], axis=1)

    grows = tf.TensorShape([scores.shape[0], None])
    return tf.cond(
        more(top, index, keep, first_tile=True),
        lambda: tf.while_loop(more, next_tile, (top, index, keep),
                              shape_invariants=(grows, grows, grows)),
        lambda: (top, index, keep))


def _first(keep, count):
    """keep, but only the first `count` True of each row."""
    return keep & (tf.cumsum(tf.cast(keep, tf.int32), axis=-1) <= count)


def non_max_suppression(boxes, scores, max_output, iou_threshold=0.5,
                        score_threshold=float("-inf"), tile_size=None):
    """NMS of one class of one image: kept indices (<= max_output,) int32, best first.

    The twin of `tf.image.non_max_suppression` (same arguments, same result).

    Args:
      boxes: (N, 4) corner boxes (any two opposite corners, as TF's).
      scores: (N,).
      max_output: Python int, the most boxes kept.
      iou_threshold: a box is dropped when its IoU with a kept box is > this.
      score_threshold: the candidates are the boxes with score > this.
      tile_size: boxes per tile (default `default_tile_size(max_output)`).
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    n = boxes.shape[0] if boxes.shape[0] is not None else tf.shape(boxes)[0]
    if max_output == 0 or (isinstance(n, int) and n == 0):
        return tf.zeros([0], tf.int32)
    _, index, keep = _sorted_greedy(
        tf.expand_dims(scores, 0), lambda i: tf.gather(boxes, i), max_output, iou_threshold,
        lambda s: s > score_threshold, tile_size or default_tile_size(max_output), n)
    return tf.gather(index[0], tf.where(keep[0])[:max_output, 0])


def batched_nms(boxes, scores, max_per_class=20, max_detections=100, iou_threshold=0.5,
                score_threshold=0.6, pre_nms_top_k=100, tile_size=None):
    """Per-class NMS of a batch, merged over classes.

    For each image and class: the NMS above (tf.image's) of the class's
    `pre_nms_top_k` best boxes, candidates score >= score_threshold, at most
    `max_per_class` kept; then each image's kept boxes of all classes sorted
    by score (equal scores: class, then pick order) and the first
    `max_detections` returned.

    Args:
      boxes: (batch, N, 4) corner boxes, shared by all classes.
      scores: (batch, N, C) class scores (`class_scores`), C known when traced.
      tile_size: boxes per tile (default `default_tile_size(max_per_class)`).
    Returns:
      boxes (batch, D, 4), scores (batch, D), classes (batch, D) int32 (-1 past
      the end), num_detections (batch,) int32, with D = max_detections; each
      image's detections sorted by score, padding zeros after them.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    num_classes = scores.shape[-1]
    batch, n = tf.shape(scores)[0], tf.shape(scores)[1]
    k_max = min(pre_nms_top_k, scores.shape[1]) if scores.shape[1] is not None else (
        tf.minimum(pre_nms_top_k, n))
    # One row per (image, class): (batch * C, N).
    rows = tf.reshape(tf.transpose(scores, [0, 2, 1]), [-1, n])

    def gather_boxes(index):  # (batch * C, K) -> (batch * C, K, 4)
        flat = tf.reshape(index, [batch, -1])
        return tf.reshape(tf.gather(boxes, flat, batch_dims=1), [-1, tf.shape(index)[1], 4])

    if max_per_class == 0 or (isinstance(k_max, int) and k_max == 0):
        return (tf.zeros([batch, max_detections, 4]), tf.zeros([batch, max_detections]),
                tf.fill([batch, max_detections], -1), tf.zeros([batch], tf.int32))
    top, index, keep = _sorted_greedy(
        rows, gather_boxes, max_per_class, iou_threshold,
        lambda s: filter_scores(s, score_threshold),
        tile_size or default_tile_size(max_per_class), k_max)

    # Merge: each image's first max_per_class kept boxes of every class, best first.
    k = tf.shape(keep)[1]
    kept_scores = tf.where(_first(keep, max_per_class), top, float("-inf"))
    flat_scores = tf.reshape(kept_scores, [batch, num_classes * k])
    flat_index = tf.reshape(index, [batch, num_classes * k])
    d = tf.minimum(max_detections, num_classes * k)
    best, order = tf.math.top_k(flat_scores, d)  # equal scores: lower class, then pick order
    ok = best > float("-inf")
    out_boxes = tf.gather(boxes, tf.gather(flat_index, order, batch_dims=1), batch_dims=1)
    out_boxes = tf.where(tf.expand_dims(ok, -1), out_boxes, 0.0)
    out_scores = tf.where(ok, best, 0.0)
    out_classes = tf.where(ok, order // k, -1)
    pad = max_detections - d
    out_boxes = tf.pad(out_boxes, [[0, 0], [0, pad], [0, 0]])
    out_scores = tf.pad(out_scores, [[0, 0], [0, pad]])
    out_classes = tf.pad(out_classes, [[0, 0], [0, pad]], constant_values=-1)
    for tensor in (out_boxes, out_scores, out_classes):
        tensor.set_shape(tf.TensorShape([boxes.shape[0], max_detections]).concatenate(
            tensor.shape[2:]))
    return out_boxes, out_scores, out_classes, tf.reduce_sum(tf.cast(ok, tf.int32), -1)
