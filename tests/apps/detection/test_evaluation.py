"""mAP against pycocotools and a transcription of the VOC devkit's voc_eval."""

import contextlib
import io

import numpy as np
import pytest

from apps.detection import evaluation


def _random_case(seed, num_images=40, num_classes=4):
    """Truths, and detections: jittered truths (some with a wrong class) plus clutter."""
    rng = np.random.default_rng(seed)
    detections, truths = [], []
    for _ in range(num_images):
        m = rng.integers(0, 6)
        xy = rng.uniform(0, 0.7, (m, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(0.05, 0.3, (m, 2))], 1)
        classes = rng.integers(0, num_classes, m)
        found = rng.uniform(size=m) < 0.8
        det_boxes = boxes[found] + rng.normal(0, 0.01, (found.sum(), 4))
        det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 0.01)  # as decoded
        det_classes = classes[found].copy()
        wrong = rng.uniform(size=len(det_classes)) < 0.1
        det_classes[wrong] = rng.integers(0, num_classes, wrong.sum())
        k = rng.integers(0, 5)
        cxy = rng.uniform(0, 0.7, (k, 2))
        clutter = np.concatenate([cxy, cxy + rng.uniform(0.05, 0.3, (k, 2))], 1)
        det_boxes = np.concatenate([det_boxes, clutter, det_boxes[:1] + 0.01])  # + a duplicate
        det_classes = np.concatenate([det_classes, rng.integers(0, num_classes, k),
                                      det_classes[:1]])
        detections.append({"boxes": det_boxes, "scores": rng.uniform(size=len(det_classes)),
                           "classes": det_classes})
        truths.append({"boxes": boxes, "classes": classes})
    return detections, truths


def _pycocotools(detections, truths, num_classes, size=96.0):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, (det, truth) in enumerate(zip(detections, truths, strict=True)):
        images.append({"id": i + 1, "width": size, "height": size})
        for box, c in zip(truth["boxes"] * size, truth["classes"], strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": int(c) + 1, "bbox": [box[0], box[1], w, h],
                                "area": w * h, "iscrowd": 0})
        for box, c, s in zip(det["boxes"] * size, det["classes"], det["scores"], strict=True):
            results.append({"image_id": i + 1, "category_id": int(c) + 1, "score": float(s),
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        run = COCOeval(coco, coco.loadRes(results), "bbox")
        run.evaluate()
        run.accumulate()
        run.summarize()
    return run


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_map_matches_pycocotools(seed):
    detections, truths = _random_case(seed)
    ours = evaluation.evaluate(detections, truths, 4)
    run = _pycocotools(detections, truths, 4)
    assert ours["map"] == pytest.approx(run.stats[0], abs=1e-9)
    assert ours["coco_map50"] == pytest.approx(run.stats[1], abs=1e-9)
    assert ours["map75"] == pytest.approx(run.stats[2], abs=1e-9)
    # per class: pycocotools' precision[T, R, K, area=all, maxDets=100]
    per_class = run.eval["precision"][:, :, :, 0, -1].mean(axis=(0, 1))
    np.testing.assert_allclose(ours["ap"], per_class, atol=1e-9)
    assert 0.2 < ours["map"] < 0.9  # a case with real misses and real hits


def _voc_eval_transcription(detections, truths, c, threshold=0.5):
    """voc_eval of the VOC devkit's Python port (py-faster-rcnn), use_07_metric=False."""
    image_ids, confidence, bb = [], [], []
    for i, det in enumerate(detections):
        for box, cls, s in zip(det["boxes"], det["classes"], det["scores"], strict=True):
            if cls == c:
                image_ids.append(i)
                confidence.append(s)
                bb.append(box)
    recs = {i: {"bbox": t["boxes"][t["classes"] == c], "det": [False] * int((t["classes"] == c)
                                                                               .sum())}
            for i, t in enumerate(truths)}
    npos = sum(len(r["det"]) for r in recs.values())
    sorted_ind = np.argsort(-np.array(confidence), kind="mergesort")
    bb = np.array(bb).reshape(-1, 4)[sorted_ind]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        r = recs[image_ids[d]]
        b = bb[d]
        ovmax, bbgt = -np.inf, r["bbox"]
        if bbgt.size > 0:
            ixmin = np.maximum(bbgt[:, 0], b[0])
            iymin = np.maximum(bbgt[:, 1], b[1])
            ixmax = np.minimum(bbgt[:, 2], b[2])
            iymax = np.minimum(bbgt[:, 3], b[3])
            iw, ih = np.maximum(ixmax - ixmin, 0.0), np.maximum(iymax - iymin, 0.0)
            inters = iw * ih
            uni = ((b[2] - b[0]) * (b[3] - b[1])
                   + (bbgt[:, 2] - bbgt[:, 0]) * (bbgt[:, 3] - bbgt[:, 1]) - inters)
            overlaps = inters / uni
            ovmax, jmax = np.max(overlaps), np.argmax(overlaps)
        if ovmax > threshold and not r["det"][jmax]:
            tp[d], r["det"][jmax] = 1.0, True
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def test_voc_map50_matches_the_devkit():
    detections, truths = _random_case(3)
    ours = evaluation.evaluate(detections, truths, 4)
    reference = [_voc_eval_transcription(detections, truths, c) for c in range(4)]
    np.testing.assert_allclose(ours["ap50"], reference, atol=1e-12)
    assert ours["map50"] == pytest.approx(np.mean(reference))
    recall, precision = ours["pr_curves"][0]
    assert recall[-1] <= 1 and np.all(np.diff(recall) >= 0) and len(recall) == len(precision)


def test_hand_computed_average_precision():
    truth = {"boxes": np.array([[0, 0, 1, 1], [2, 2, 3, 3]], float), "classes": np.array([0, 0])}
    det = {"boxes": np.array([[0, 0, 1, 1], [5, 5, 6, 6], [2, 2, 3, 3]], float),
           "scores": np.array([0.9, 0.8, 0.7]), "classes": np.array([0, 0, 0])}
    out = evaluation.evaluate([det], [truth], 1)
    # recall 0.5, 0.5, 1; precision 1, 1/2, 2/3: VOC area 0.5 * 1 + 0.5 * 2/3
    assert out["map50"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # COCO: 51 recall points up to 0.5 at precision 1, 50 above at 2/3
    assert out["coco_map50"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert out["map"] == pytest.approx(out["coco_map50"])  # exact boxes: same at every IoU


def test_classes_without_truths_are_left_out_of_the_mean():
    truth = {"boxes": np.array([[0, 0, 1, 1]], float), "classes": np.array([1])}
    det = {"boxes": np.array([[0, 0, 1, 1]], float), "scores": np.array([0.5]),
           "classes": np.array([1])}
    out = evaluation.evaluate([det], [truth], 3)
    assert out["map50"] == 1.0 and out["map"] == pytest.approx(1.0)
    assert np.isnan(out["ap50"][0]) and np.isnan(out["ap"][2])


def test_precision_recall_figure_renders():
    from apps.core.images import figure_to_image

    detections, truths = _random_case(4)
    out = evaluation.evaluate(detections, truths, 4)
    image = figure_to_image(evaluation.pr_figure(out["pr_curves"], list("abcd")))
    assert image.dtype == np.uint8 and image.shape[-1] == 3 and image.std() > 0
