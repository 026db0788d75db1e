"""IoU (corner and centre formats), score filtering and NMS against references."""

import numpy as np
import pytest
import tensorflow as tf

from apps.detection import boxes as boxes_lib
from apps.detection import nms


def _random_boxes(rng, n):
    xy = rng.uniform(0, 0.8, (n, 2))
    wh = rng.uniform(0.02, 0.4, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def _numpy_iou(a, b):
    """The textbook formula, box by box, in plain Python."""
    out = np.zeros((len(a), len(b)))
    for i, (ax1, ay1, ax2, ay2) in enumerate(a):
        for j, (bx1, by1, bx2, by2) in enumerate(b):
            inter = max(0, min(ax2, bx2) - max(ax1, bx1)) * max(0, min(ay2, by2) - max(ay1, by1))
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def _numpy_giou(a, b):
    out = []
    for (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) in zip(a, b, strict=True):
        inter = max(0, min(ax2, bx2) - max(ax1, bx1)) * max(0, min(ay2, by2) - max(ay1, by1))
        union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
        hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
        out.append(inter / union - (hull - union) / hull)
    return np.array(out)


def test_iou_matches_the_formula_in_both_formats():
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 12), _random_boxes(rng, 9)
    expected = _numpy_iou(a, b)
    np.testing.assert_allclose(boxes_lib.pairwise_iou(a, b), expected, atol=1e-6)
    centre_a, centre_b = boxes_lib.to_centre(a), boxes_lib.to_centre(b)
    np.testing.assert_allclose(boxes_lib.pairwise_iou(centre_a, centre_b, "centre"), expected,
                               atol=1e-6)
    np.testing.assert_allclose(boxes_lib.to_corners(centre_a), a, atol=1e-6)
    assert expected.max() > 0.1 and (expected == 0).any()  # both overlapping and disjoint pairs


def test_iou_hand_computed_cases():
    unit = [0.0, 0.0, 1.0, 1.0]
    assert float(boxes_lib.iou(unit, unit)) == 1.0
    assert float(boxes_lib.iou(unit, [0.5, 0.0, 1.5, 1.0])) == pytest.approx(0.5 / 1.5)
    assert float(boxes_lib.iou(unit, [2.0, 2.0, 3.0, 3.0])) == 0.0
    # centre (0.5, 0.5, 1, 1) is the unit box; (1, 0.5, 1, 1) shifts it by half
    assert float(boxes_lib.iou([0.5, 0.5, 1, 1], [1, 0.5, 1, 1], "centre")) == pytest.approx(1 / 3)
    assert float(boxes_lib.iou([0, 0, 0, 0], [0, 0, 0, 0])) == 0.0  # empty: 0, not NaN
    with pytest.raises(ValueError, match="box_format"):
        boxes_lib.iou(unit, unit, "xywh")


def test_giou_matches_the_formula():
    rng = np.random.default_rng(1)
    a, b = _random_boxes(rng, 20), _random_boxes(rng, 20)
    np.testing.assert_allclose(boxes_lib.giou(a, b), _numpy_giou(a, b), atol=1e-6)
    # Disjoint boxes: IoU 0 but GIoU negative, and lower the farther apart.
    near = float(boxes_lib.giou([0, 0, 1, 1], [1.5, 0, 2.5, 1]))
    far = float(boxes_lib.giou([0, 0, 1, 1], [3, 0, 4, 1]))
    assert near == pytest.approx(-0.5 / 2.5) and far < near < 0


def test_score_filtering_is_objectness_times_class_probability_at_0_6():
    objectness = tf.constant([0.9, 0.9, 0.5])
    probabilities = tf.constant([[0.7, 0.3], [0.5, 0.5], [1.0, 0.0]])
    scores = nms.class_scores(objectness, probabilities)
    np.testing.assert_allclose(scores, [[0.63, 0.27], [0.45, 0.45], [0.5, 0.0]], atol=1e-6)
    kept = nms.filter_scores(tf.constant([0.6, 0.59, 0.61]), 0.6)
    assert kept.numpy().tolist() == [True, False, True]  # the notes keep score >= threshold


@pytest.mark.parametrize("iou_threshold, score_threshold", [(0.5, 0.0), (0.3, 0.25), (0.7, 0.5)])
def test_nms_matches_tensorflow(iou_threshold, score_threshold):
    rng = np.random.default_rng(int(iou_threshold * 100))
    for _ in range(5):
        boxes = _random_boxes(rng, 80)
        scores = rng.uniform(size=80).astype(np.float32)
        ours = nms.non_max_suppression(boxes, scores, 40, iou_threshold, score_threshold)
        theirs = tf.image.non_max_suppression(boxes, scores, 40, iou_threshold, score_threshold)
        np.testing.assert_array_equal(ours, theirs)
    assert 0 < len(ours) < 80  # some boxes were suppressed, some kept


def test_nms_hand_computed_case():
    boxes = [[0, 0, 1, 1], [0.1, 0, 1.1, 1], [2, 2, 3, 3], [0, 0, 0.5, 0.5]]
    scores = [0.9, 0.8, 0.7, 0.6]
    # box 1 overlaps box 0 (IoU 0.82) and goes; box 3 has IoU 0.25 with box 0 and stays.
    assert nms.non_max_suppression(boxes, scores, 10, 0.5).numpy().tolist() == [0, 2, 3]
    assert nms.non_max_suppression(boxes, scores, 2, 0.5).numpy().tolist() == [0, 2]
    assert nms.non_max_suppression(boxes, scores, 10, 0.2).numpy().tolist() == [0, 2]


def test_batched_nms_is_per_class_nms_merged_and_runs_in_graph_mode():
    rng = np.random.default_rng(5)
    batch, n, classes = 3, 50, 4
    boxes = np.stack([_random_boxes(rng, n) for _ in range(batch)])
    scores = rng.uniform(size=(batch, n, classes)).astype(np.float32)
    graph = tf.function(
        lambda b, s: nms.batched_nms(b, s, max_per_class=8, max_detections=20,
                                     iou_threshold=0.45, score_threshold=0.3, pre_nms_top_k=n),
        input_signature=[tf.TensorSpec([None, None, 4]), tf.TensorSpec([None, None, classes])])
    out_boxes, out_scores, out_classes, count = (t.numpy() for t in graph(boxes, scores))
    assert out_boxes.shape == (batch, 20, 4)
    for i in range(batch):
        reference = []
        for c in range(classes):
            kept = tf.image.non_max_suppression(boxes[i], scores[i, :, c], 8, 0.45, 0.3).numpy()
            reference += [(scores[i, k, c], c, k) for k in kept]
        reference = sorted(reference, key=lambda r: -r[0])[:20]
        assert count[i] == len(reference) > 0
        np.testing.assert_allclose(out_scores[i, :count[i]], [r[0] for r in reference])
        assert out_classes[i, :count[i]].tolist() == [r[1] for r in reference]
        np.testing.assert_allclose(out_boxes[i, :count[i]], boxes[i][[r[2] for r in reference]])
        assert (out_classes[i, count[i]:] == -1).all() and (out_scores[i, count[i]:] == 0).all()


def test_batched_nms_with_nothing_above_the_threshold():
    boxes = np.tile(np.array([[[0, 0, 0.5, 0.5]]], np.float32), (2, 5, 1))
    out = nms.batched_nms(boxes, np.full((2, 5, 3), 0.1, np.float32), score_threshold=0.6)
    assert out[3].numpy().tolist() == [0, 0]
    assert (out[2].numpy() == -1).all()
