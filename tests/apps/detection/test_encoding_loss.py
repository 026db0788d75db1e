"""Anchors by k-means, the label encoder round trip, and the loss on hand-computed cases."""

import math

import numpy as np
import pytest
import tensorflow as tf

from apps.detection import anchors as anchors_lib
from apps.detection import encoding, synth
from apps.detection import loss as loss_lib

# ------------------------------------------------------------------ anchors


def test_kmeans_recovers_shape_clusters_sorted_by_area():
    rng = np.random.default_rng(0)
    centres = np.array([[0.05, 0.05], [0.2, 0.1], [0.4, 0.6]])
    wh = np.concatenate([c * rng.uniform(0.9, 1.1, (200, 2)) for c in centres])
    found, mean_iou = anchors_lib.kmeans(wh, 3, seed=1)
    np.testing.assert_allclose(found, centres, rtol=0.05)
    assert mean_iou > 0.85
    again, _ = anchors_lib.kmeans(wh, 3, seed=1)
    np.testing.assert_array_equal(found, again)


def test_kmeans_distance_is_one_minus_iou_not_euclidean():
    centroids = np.array([[0.1, 0.1], [0.5, 0.5]])
    box = np.array([[0.25, 0.25]])
    # Euclidean: 0.21 to the small centroid, 0.35 to the large one.
    # IoU: 0.01 / 0.0625 = 0.16 with the small one, 0.0625 / 0.25 = 0.25 with the large one.
    np.testing.assert_allclose(anchors_lib.shape_iou(box, centroids), [[0.16, 0.25]])
    assert anchors_lib.assign(box, centroids).tolist() == [1]


def test_kmeans_needs_enough_boxes():
    with pytest.raises(ValueError, match="at least 3"):
        anchors_lib.kmeans(np.ones((2, 2)) * 0.1, 3)


# ----------------------------------------------------------------- encoding

ANCHORS = np.array([[0.1, 0.1], [0.3, 0.2]], np.float32)


def test_encoder_puts_a_box_in_its_centre_cell_and_best_anchor():
    # centre (0.3, 0.7), size (0.28, 0.18): the second anchor fits best.
    box = np.array([[0.16, 0.61, 0.44, 0.79]], np.float32)
    grid = encoding.encode(box, [3], ANCHORS, grid_size=4).numpy()
    assert grid.shape == (4, 4, 2, 6)
    assert grid[..., 0].sum() == 1 and grid[2, 1, 1, 0] == 1  # row 2 (y), column 1 (x)
    np.testing.assert_allclose(grid[2, 1, 1], [1, 0.2, 0.8, math.log(0.28 / 0.3),
                                               math.log(0.18 / 0.2), 3], atol=1e-5)


def test_encode_then_decode_returns_the_boxes():
    from sklearn.datasets import load_digits

    digits = load_digits()
    _, boxes, classes = synth.scenes(digits.images, digits.target, 40, seed=3, max_overlap=0.0)
    checked = 0
    for b, c in zip(boxes, classes, strict=True):
        grid = encoding.encode(b, c, ANCHORS, grid_size=12)
        got_boxes, got_classes = encoding.decode_targets(grid, ANCHORS)
        valid = c >= 0
        order_in, order_out = np.lexsort(b[valid].T), np.lexsort(got_boxes.numpy().T)
        np.testing.assert_allclose(got_boxes.numpy()[order_out], b[valid][order_in], atol=1e-6)
        np.testing.assert_array_equal(got_classes.numpy()[order_out], c[valid][order_in])
        # The model's decoder gives the same boxes from the matching raw outputs.
        g = grid.numpy()
        raw = np.zeros(g.shape[:3] + (5 + 10,), np.float32)
        raw[..., 1:3] = np.log(np.clip(g[..., 1:3], 1e-6, 1 - 1e-6) / (1 - np.clip(
            g[..., 1:3], 1e-6, 1 - 1e-6)))
        raw[..., 3:5] = g[..., 3:5]
        decoded, _, _ = encoding.decode_predictions(raw[None], ANCHORS)
        mask = g[..., 0].reshape(-1) > 0
        np.testing.assert_allclose(np.sort(decoded.numpy()[0][mask], 0),
                                   np.sort(b[valid], 0), atol=1e-5)
        checked += valid.sum()
    assert checked > 60


def test_colliding_boxes_keep_the_later_and_padding_is_ignored():
    boxes = np.array([[0.1, 0.1, 0.2, 0.2], [0.11, 0.11, 0.21, 0.21], [0, 0, 0, 0]], np.float32)
    grid = encoding.encode(boxes, [1, 2, -1], ANCHORS, grid_size=4).numpy()
    assert grid[..., 0].sum() == 1
    assert grid[0, 0, 0, 5] == 2


# --------------------------------------------------------------------- loss


def _one_cell_target():
    """A 1x1 grid, one anchor (0.5, 0.5), one box (centre (0.5, 0.5), 0.5 x 0.5, class 1)."""
    anchors = np.array([[0.5, 0.5]], np.float32)
    boxes = np.array([[[0.25, 0.25, 0.75, 0.75]]], np.float32)
    grid = encoding.encode(boxes[0], [1], anchors, 1)[None]
    return anchors, boxes, np.array([[1]]), grid


def test_loss_at_zero_outputs_is_log2_for_objectness_and_class():
    anchors, boxes, classes, grid = _one_cell_target()
    terms = loss_lib.yolo_loss(grid, boxes, classes, np.zeros((1, 1, 1, 1, 7), np.float32),
                               anchors)
    assert float(terms["objectness"][0]) == pytest.approx(math.log(2), abs=1e-6)
    assert float(terms["class"][0]) == pytest.approx(math.log(2), abs=1e-6)
    assert float(terms["box"][0]) == pytest.approx(0.0, abs=1e-9)
    assert float(terms["no_object"][0]) == 0.0


@pytest.mark.parametrize("box_loss", ["squared", "iou", "giou"])
def test_loss_hand_computed(box_loss):
    anchors, boxes, classes, grid = _one_cell_target()
    raw = np.array([2.0, 0.0, 0.0, 0.5, -0.5, 1.0, 3.0], np.float32).reshape(1, 1, 1, 1, 7)
    terms = loss_lib.yolo_loss(grid, boxes, classes, raw, anchors, box_loss=box_loss,
                               coord_scale=5.0, obj_scale=2.0, class_scale=3.0)
    assert float(terms["objectness"][0]) == pytest.approx(2 * math.log(1 + math.exp(-2)), 1e-5)
    assert float(terms["class"][0]) == pytest.approx(3 * math.log(1 + math.exp(-2)), 1e-5)
    # The predicted box: centre (0.5, 0.5), w = 0.5 e^0.5, h = 0.5 e^-0.5 (area 0.25).
    e = math.exp(-0.5)
    iou = e / (2 - e)  # inter = 0.5 * 0.5 e^-0.5, union = 0.25 + 0.25 - inter
    hull = 0.5 * math.exp(0.5) * 0.5
    union = 0.5 - 0.25 * e
    expected = {"squared": 0.25 + 0.25, "iou": 1 - iou,
                "giou": 1 - (iou - (hull - union) / hull)}[box_loss]
    assert float(terms["box"][0]) == pytest.approx(5 * expected, rel=1e-5)


def test_no_object_term_is_down_weighted_and_ignores_good_boxes():
    # A 2x2 grid, the box in cell (0, 0); three empty cells.
    anchors = np.array([[0.5, 0.5]], np.float32)
    boxes = np.array([[[0.0, 0.0, 0.5, 0.5]]], np.float32)
    grid = encoding.encode(boxes[0], [0], anchors, 2)[None]
    raw = np.zeros((1, 2, 2, 1, 6), np.float32)
    raw[..., 0] = 1.5
    terms = loss_lib.yolo_loss(grid, boxes, [[0]], raw, anchors, noobj_scale=0.5)
    assert float(terms["no_object"][0]) == pytest.approx(0.5 * 3 * math.log(1 + math.exp(1.5)),
                                                         rel=1e-5)
    # With a whole-image anchor the predictions of cells (0, 1) and (1, 0) overlap
    # the box by IoU 0.125 / 1.125 = 0.111, that of cell (1, 1) by 0.0625 / 1.1875 = 0.053.
    big = np.array([[1.0, 1.0]], np.float32)
    grid = encoding.encode(boxes[0], [0], big, 2)[None]
    one = 0.5 * math.log(1 + math.exp(1.5))
    for ignore_iou, cells in ((0.05, 0), (0.1, 1), (0.6, 3)):
        terms = loss_lib.yolo_loss(grid, boxes, [[0]], raw, big, ignore_iou=ignore_iou)
        assert float(terms["no_object"][0]) == pytest.approx(cells * one, rel=1e-5, abs=1e-7)


def test_loss_has_gradients_for_every_output_term():
    anchors, boxes, classes, grid = _one_cell_target()
    raw = tf.Variable(tf.random.stateless_normal((1, 1, 1, 1, 7), (1, 2)))
    for box_loss in loss_lib.BOX_LOSSES:
        with tf.GradientTape() as tape:
            total = tf.add_n(list(loss_lib.yolo_loss(grid, boxes, classes, raw, anchors,
                                                     box_loss=box_loss).values()))
        grad = tape.gradient(total, raw).numpy().reshape(-1)
        assert np.all(np.isfinite(grad)), box_loss
        assert grad[0] != 0 and np.all(grad[5:] != 0), box_loss  # objectness, classes
        # squared error moves every box output; IoU losses move the box as a whole
        assert (np.all(grad[1:5] != 0) if box_loss == "squared"
                else np.abs(grad[1:5]).sum() > 1e-3), box_loss
