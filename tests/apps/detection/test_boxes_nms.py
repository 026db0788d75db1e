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


# ------------------------------------------------------------------ NMS against tf.image


def _problems(seed):
    """(name, boxes, scores): random boxes with the cases NMS gets wrong first."""
    rng = np.random.default_rng(seed)
    plain = _random_boxes(rng, 120)
    yield "random", plain, rng.uniform(size=120).astype(np.float32)
    # Many equal scores (the lower index first), some equal to a threshold below.
    yield "tied scores", _random_boxes(rng, 90), (rng.integers(0, 6, 90) / 5).astype(np.float32)
    # Corners in any order, zero width or height, single points, duplicates (IoU 1).
    odd = _random_boxes(rng, 100)
    odd[::4] = odd[::4][:, [2, 3, 0, 1]]
    odd[1::7, 2] = odd[1::7, 0]
    odd[2::9, 3] = odd[2::9, 1]
    odd[3::11, 2:] = odd[3::11, :2]
    odd[5::6] = odd[4::6][:len(odd[5::6])]
    yield "degenerate", odd, rng.uniform(size=100).astype(np.float32)
    # One box many times: all but the best suppressed.
    yield "all suppressed", np.tile(plain[:1], (30, 1)), rng.uniform(size=30).astype(np.float32)
    # A chain: box k overlaps k + 1 (IoU 2/3) but not k + 2 (3/7): 0, 2, 4, ... are
    # kept, each decision waiting on the one before (the fixed point's longest case).
    x = np.arange(40, dtype=np.float32) * 0.2
    chain = np.stack([x, 0 * x, x + 1, 0 * x + 1], 1).astype(np.float32)
    yield "chain", chain, np.linspace(1, 0.5, 40).astype(np.float32)
    # IoU exactly 0.5 (inter 0.5, union 1), kept at threshold 0.5 (> suppresses).
    exact = np.array([[0, 0, 1, 1], [0, 0, 1, 0.5], [2, 2, 3, 3], [2, 2, 3, 2.5]], np.float32)
    yield "IoU at the threshold", exact, np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    yield "no boxes", np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)


SETTINGS = [  # max_output, iou_threshold, score_threshold, tile_size
    (40, 0.5, float("-inf"), None), (40, 0.3, 0.2, None), (500, 0.7, 0.4, None),
    (25, 0.5, 0.0, 3), (60, 0.45, float("-inf"), 16), (7, 0.5, 0.6, 1), (0, 0.5, 0.0, None),
    (40, 0.0, float("-inf"), 8), (40, 1.0, float("-inf"), None)]


@pytest.mark.parametrize("max_output, iou_threshold, score_threshold, tile_size", SETTINGS)
def test_nms_is_tensorflows(max_output, iou_threshold, score_threshold, tile_size):
    """The same kept indices in the same order as tf.image.non_max_suppression,
    eager and in a graph of unknown size, one tile or many."""
    graph = tf.function(
        lambda b, s: nms.non_max_suppression(b, s, max_output, iou_threshold, score_threshold,
                                             tile_size),
        input_signature=[tf.TensorSpec([None, 4]), tf.TensorSpec([None])], autograph=False)
    kept_some = suppressed_some = False
    for name, boxes, scores in _problems(int(iou_threshold * 100) + max_output):
        theirs = tf.image.non_max_suppression(boxes, scores, max_output, iou_threshold,
                                              score_threshold).numpy()
        ours = nms.non_max_suppression(boxes, scores, max_output, iou_threshold,
                                       score_threshold, tile_size)
        assert ours.dtype == tf.int32
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
        np.testing.assert_array_equal(graph(boxes, scores), theirs, err_msg=f"{name} (graph)")
        kept_some |= len(theirs) > 1
        suppressed_some |= 0 < len(theirs) < min(max_output, np.sum(scores > score_threshold))
    assert kept_some == (max_output > 0)
    assert suppressed_some == (max_output > 0 and iou_threshold < 1)  # IoU > 1: never


def test_nms_cases_hold_what_they_say():
    """The edge cases above are the cases they are named after (else the test proves less)."""
    cases = {name: (b, s) for name, b, s in _problems(0)}
    kept = lambda name, t=0.5: tf.image.non_max_suppression(*cases[name], 100, t).numpy()  # noqa: E731
    assert len(kept("all suppressed")) == 1
    assert kept("chain").tolist() == list(range(0, 40, 2))
    assert kept("IoU at the threshold").tolist() == [0, 1, 2, 3]
    assert kept("IoU at the threshold", 0.49).tolist() == [0, 2]
    tied = cases["tied scores"][1]
    assert len(set(tied.tolist())) < 10 and np.any(tied == np.float32(0.4))
    boxes = cases["degenerate"][0]
    assert np.any(boxes[:, 0] > boxes[:, 2]) and np.any(boxes[:, 0] == boxes[:, 2])
    assert np.any(np.all(boxes[:, :2] == boxes[:, 2:], axis=1))


def test_nms_hand_computed_case():
    boxes = [[0, 0, 1, 1], [0.1, 0, 1.1, 1], [2, 2, 3, 3], [0, 0, 0.5, 0.5]]
    scores = [0.9, 0.8, 0.7, 0.6]
    # box 1 overlaps box 0 (IoU 0.82) and goes; box 3 has IoU 0.25 with box 0 and stays.
    assert nms.non_max_suppression(boxes, scores, 10, 0.5).numpy().tolist() == [0, 2, 3]
    assert nms.non_max_suppression(boxes, scores, 2, 0.5).numpy().tolist() == [0, 2]
    assert nms.non_max_suppression(boxes, scores, 10, 0.2).numpy().tolist() == [0, 2]
    # tf.image's score threshold keeps score > threshold, not >=.
    assert nms.non_max_suppression(boxes, scores, 10, 0.5, 0.7).numpy().tolist() == [0]
    with pytest.raises(ValueError, match="iou_threshold"):
        nms.non_max_suppression(boxes, scores, 10, 1.5)


def _batched_reference(boxes, scores, max_per_class, max_detections, iou_threshold,
                       score_threshold, pre_nms_top_k):
    """tf.image.non_max_suppression per image and class on the class's best
    pre_nms_top_k, candidates score >= threshold, merged by score (equal:
    class, then pick order): [(score, class, box index)] per image."""
    # score >= t is score > the float32 just below t.
    below = np.nextafter(np.float32(score_threshold), np.float32(-np.inf))
    out = []
    for b in range(len(boxes)):
        found = []
        for c in range(scores.shape[2]):
            top = np.argsort(-scores[b, :, c], kind="stable")[:pre_nms_top_k]
            kept = tf.image.non_max_suppression(boxes[b][top], scores[b, top, c], max_per_class,
                                                iou_threshold, below).numpy()
            found += [(scores[b, top[k], c], c, rank, top[k]) for rank, k in enumerate(kept)]
        found.sort(key=lambda r: (-r[0], r[1], r[2]))
        out.append([(s, c, i) for s, c, _, i in found[:max_detections]])
    return out


BATCHED = [  # max_per_class, max_detections, iou_threshold, score_threshold, pre_nms_top_k, tile
    (8, 20, 0.45, 0.3, 50, None), (8, 20, 0.45, 0.3, 50, 3), (5, 100, 0.5, 0.0, 50, None),
    (12, 30, 0.3, 0.2, 17, 4), (30, 10, 0.6, 0.4, 50, 8), (8, 20, 0.5, 1.01, 50, None)]


@pytest.mark.parametrize("max_per_class, max_detections, iou_threshold, score_threshold, "
                         "pre_nms_top_k, tile_size", BATCHED)
def test_batched_nms_is_tensorflows_per_class_merged(max_per_class, max_detections, iou_threshold,
                                                     score_threshold, pre_nms_top_k, tile_size):
    rng = np.random.default_rng(max_per_class + pre_nms_top_k)
    batch, n, classes = 3, 50, 4
    boxes = np.stack([_random_boxes(rng, n) for _ in range(batch)])
    boxes[1, ::5] = boxes[1, ::5][:, [2, 3, 0, 1]]  # corners in the other order
    scores = rng.uniform(size=(batch, n, classes)).astype(np.float32)
    scores[2] = np.round(scores[2] * 10) / 10  # ties, within and across classes, and at 0.3
    graph = tf.function(
        lambda b, s: nms.batched_nms(b, s, max_per_class, max_detections, iou_threshold,
                                     score_threshold, pre_nms_top_k, tile_size),
        input_signature=[tf.TensorSpec([None, None, 4]), tf.TensorSpec([None, None, classes])],
        autograph=False)
    reference = _batched_reference(boxes, scores, max_per_class, max_detections, iou_threshold,
                                   score_threshold, pre_nms_top_k)
    for out in (graph(boxes, scores), nms.batched_nms(
            boxes, scores, max_per_class, max_detections, iou_threshold, score_threshold,
            pre_nms_top_k, tile_size)):
        out_boxes, out_scores, out_classes, count = (t.numpy() for t in out)
        assert out_boxes.shape == (batch, max_detections, 4)
        for i, expected in enumerate(reference):
            assert count[i] == len(expected)
            np.testing.assert_array_equal(out_scores[i, :count[i]], [r[0] for r in expected])
            assert out_classes[i, :count[i]].tolist() == [r[1] for r in expected]
            np.testing.assert_array_equal(out_boxes[i, :count[i]],
                                          boxes[i][[r[2] for r in expected]].reshape(-1, 4))
            assert (out_classes[i, count[i]:] == -1).all() and (out_scores[i, count[i]:] == 0).all()
            assert (out_boxes[i, count[i]:] == 0).all()
    assert (count > 0).all() == (score_threshold <= 1)  # scores are at most 1


@pytest.mark.parametrize("tile_size", [None, 6])
def test_batched_nms_problems_do_not_mix(tile_size):
    """Each (image, class) is its own problem: a chain of suppressions in one
    (0, 2, 4, ... kept), none in another (all kept), reversed in a third."""
    x = np.arange(30, dtype=np.float32) * 0.2
    chain = np.stack([x, 0 * x, x + 1, 0 * x + 1], 1)
    apart = np.stack([x * 10, 0 * x, x * 10 + 1, 0 * x + 1], 1)
    boxes = np.stack([apart, chain]).astype(np.float32)
    falling = np.linspace(1, 0.5, 30, dtype=np.float32)
    scores = np.stack([falling, falling[::-1]], 1)[None].repeat(2, axis=0)  # (2, 30, 2)
    out = nms.batched_nms(boxes, scores, 30, 120, 0.5, 0.0, 30, tile_size)
    reference = _batched_reference(boxes, scores, 30, 120, 0.5, 0.0, 30)
    for i, expected in enumerate(reference):
        assert out[3][i] == len(expected)
        np.testing.assert_array_equal(out[1][i, :len(expected)], [r[0] for r in expected])
        assert out[2][i, :len(expected)].numpy().tolist() == [r[1] for r in expected]
        np.testing.assert_array_equal(out[0][i, :len(expected)],
                                      boxes[i][[r[2] for r in expected]])
    assert [len(r) for r in reference] == [60, 30]  # all kept; every other box of each chain


def test_batched_nms_keeps_scores_at_the_threshold():
    """The notes' filter: score >= threshold is a candidate (tf.image: > threshold)."""
    boxes = np.array([[[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]]], np.float32)
    scores = np.array([[[0.6], [0.59], [0.61]]], np.float32)
    _, out_scores, _, count = nms.batched_nms(boxes, scores, score_threshold=0.6)
    assert count.numpy().tolist() == [2]
    np.testing.assert_allclose(out_scores[0, :2], [0.61, 0.6])


def test_batched_nms_with_nothing_above_the_threshold():
    boxes = np.tile(np.array([[[0, 0, 0.5, 0.5]]], np.float32), (2, 5, 1))
    out = nms.batched_nms(boxes, np.full((2, 5, 3), 0.1, np.float32), score_threshold=0.6)
    assert out[3].numpy().tolist() == [0, 0]
    assert (out[2].numpy() == -1).all()


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_nms_in_a_saved_model_and_in_tflite(tmp_path):
    """Both functions exported as a SavedModel's signatures (any number of boxes, of
    images), reloaded, and converted to TensorFlow Lite with builtin ops only: the
    same results as tf.image's, the loop over tiles taken (small tiles)."""
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4]), tf.TensorSpec([None])])
        def single(self, boxes, scores):
            return {"kept": nms.non_max_suppression(boxes, scores, 30, 0.5, 0.1, tile_size=8)}

        @tf.function(input_signature=[tf.TensorSpec([None, 60, 4]),
                                      tf.TensorSpec([None, 60, 3])])
        def batched(self, boxes, scores):
            out = nms.batched_nms(boxes, scores, 8, 20, 0.5, 0.2, 60, tile_size=4)
            return dict(zip(("boxes", "scores", "classes", "count"), out, strict=True))

    module = Module()
    path = str(tmp_path / "nms")
    tf.saved_model.save(module, path, signatures={"single": module.single,
                                                  "batched": module.batched})
    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(3)
    problems = {"single": [dict(boxes=_random_boxes(rng, 60),
                                scores=rng.uniform(size=60).astype(np.float32))
                           for _ in range(3)],
                "batched": [dict(boxes=np.stack([_random_boxes(rng, 60) for _ in range(b)]),
                                 scores=rng.uniform(size=(b, 60, 3)).astype(np.float32))
                            for b in (1, 4)]}
    for key, inputs in problems.items():
        converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[key])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        runner = tf.lite.Interpreter(model_content=converter.convert()).get_signature_runner(key)
        for args in inputs:
            saved = {k: v.numpy() for k, v in loaded.signatures[key](**args).items()}
            if key == "single":
                theirs = tf.image.non_max_suppression(args["boxes"], args["scores"], 30, 0.5, 0.1)
                np.testing.assert_array_equal(saved["kept"], theirs)
                assert 8 < len(theirs) <= 30  # more than one tile
            else:
                reference = _batched_reference(args["boxes"], args["scores"], 8, 20, 0.5, 0.2, 60)
                for i, expected in enumerate(reference):
                    assert saved["count"][i] == len(expected) > 4  # more than one tile
                    assert saved["classes"][i, :len(expected)].tolist() == [r[1] for r in expected]
            lite = runner(**args)
            for name, value in saved.items():
                np.testing.assert_array_equal(lite[name], value, err_msg=f"{key}: {name}")
