"""Detection quality: AP per class, mAP@0.5 (VOC) and COCO's mAP@[.5:.95].

Detections of one class, over all images, are sorted by score (stable); each
is a true positive (TP) if it matches a ground-truth box of its class and
image with IoU >= t that no higher-scored detection matched, else a false
positive (FP). Going down the list,

    precision_i = TP_i / (TP_i + FP_i)      recall_i = TP_i / (number of true boxes)

The precision envelope p(r) = max_{i : recall_i >= r} precision_i makes the
curve monotone, and the average precision is its area:

    VOC (2010 on, all points):  AP = sum_i (r_i - r_{i-1}) * p(r_i)
    COCO (101 points):          AP = 1/101 * sum_{r in 0, .01, ..., 1} p(r)   (0 past the last recall)

mAP averages AP over the classes that have true boxes; COCO's mAP@[.5:.95]
also averages over the IoU thresholds t = .50, .55, ..., .95. Matching follows
each protocol: COCO takes, for each detection (best score first, per image),
the unmatched true box of highest IoU >= t, and keeps at most 100 detections
per image and class; VOC takes the true box of highest IoU and counts the
detection as a TP only if that IoU > 0.5 and the box is not yet matched.
`test_map50` is VOC's mAP@0.5, `test_map` COCO's mAP@[.5:.95]; both are
checked against pycocotools / a transcription of the VOC devkit in tests.
"""

import numpy as np

COCO_IOUS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
COCO_RECALLS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)


def iou_matrix(a, b):
    """IoU of corner boxes a (N, 4) with b (M, 4), in NumPy: (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match_coco(ious, thresholds):
    """TP flags (T, D) of detections (rows of ious, best first) against true boxes."""
    d, g = ious.shape
    tp = np.zeros((len(thresholds), d), bool)
    for ti, t in enumerate(thresholds):
        taken = np.zeros(g, bool)
        for di in range(d):
            best, match = min(t, 1 - 1e-10), -1
            for gi in range(g):
                if taken[gi] or ious[di, gi] < best:
                    continue
                best, match = ious[di, gi], gi
            if match >= 0:
                taken[match] = True
                tp[ti, di] = True
    return tp


def _match_voc(ious, threshold=0.5):
    d, g = ious.shape
    tp = np.zeros(d, bool)
    taken = np.zeros(g, bool)
    for di in range(d):
        if g == 0:
            break
        gi = int(np.argmax(ious[di]))
        if ious[di, gi] > threshold and not taken[gi]:
            taken[gi] = True
            tp[di] = True
    return tp


def coco_ap(tp, num_true):
    """COCO's 101-point AP of TP flags (sorted by score) with `num_true` true boxes."""
    tp = np.asarray(tp, bool)
    tps, fps = np.cumsum(tp).astype(np.float64), np.cumsum(~tp).astype(np.float64)
    recall = tps / num_true
    precision = tps / (fps + tps + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    index = np.searchsorted(recall, COCO_RECALLS, side="left")
    q = np.zeros(len(COCO_RECALLS))
    found = index < len(precision)  # recall levels never reached have precision 0
    q[found] = precision[index[found]]
    return float(np.mean(q))


def voc_ap(recall, precision):
    """VOC 2010+ all-point AP: area under the monotone precision envelope."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def evaluate(detections, truths, num_classes, max_per_image=100):
    """AP of each class and the mean APs.

    Args:
      detections: per image, a dict of "boxes" (n, 4) corners, "scores" (n,),
        "classes" (n,).
      truths: per image, a dict of "boxes" (m, 4) and "classes" (m,) (padding
        with class -1 is ignored).
      num_classes: C.
    Returns a dict: map (COCO mAP@[.5:.95]), map50 (VOC mAP@0.5), coco_map50,
      map75, ap50 (C,) VOC AP per class, ap (C,) COCO AP@[.5:.95] per class
      (NaN for classes without true boxes), pr_curves: per class (recall,
      precision) at IoU 0.5 (VOC matching).
    """
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} images of detections, {len(truths)} of truths")
    coco = np.full((len(COCO_IOUS), num_classes), np.nan)
    voc = np.full(num_classes, np.nan)
    curves = {}
    for c in range(num_classes):
        scores, coco_tp, voc_tp, num_true = [], [], [], 0
        for det, truth in zip(detections, truths, strict=True):
            true_boxes = np.asarray(truth["boxes"]).reshape(-1, 4)[np.asarray(truth["classes"]) == c]
            mine = np.asarray(det["classes"]) == c
            det_scores = np.asarray(det["scores"], np.float64)[mine]
            order = np.argsort(-det_scores, kind="mergesort")
            det_boxes = np.asarray(det["boxes"]).reshape(-1, 4)[mine][order]
            det_scores = det_scores[order]
            ious = iou_matrix(det_boxes, true_boxes)
            voc_tp.append(_match_voc(ious))
            # COCO keeps each image's best `max_per_image` detections.
            coco_tp.append(_match_coco(ious[:max_per_image], COCO_IOUS))
            scores.append(det_scores)
            num_true += len(true_boxes)
        if num_true == 0:
            continue
        all_scores = np.concatenate(scores)
        order = np.argsort(-all_scores, kind="mergesort")
        tp = np.concatenate(voc_tp)[order]
        tps = np.cumsum(tp)
        recall = tps / num_true
        precision = tps / np.maximum(np.arange(1, len(tp) + 1), 1)
        voc[c] = voc_ap(recall, precision)
        curves[c] = (recall, precision)
        coco_scores = np.concatenate([s[:max_per_image] for s in scores])
        coco_order = np.argsort(-coco_scores, kind="mergesort")
        flags = np.concatenate(coco_tp, axis=1)[:, coco_order]
        for t in range(len(COCO_IOUS)):
            coco[t, c] = coco_ap(flags[t], num_true)
    present = ~np.isnan(voc)
    mean = (lambda x: float(np.mean(x[present]))) if present.any() else (lambda x: 0.0)
    return {
        "map": mean(coco.mean(axis=0)),
        "map50": mean(voc),
        "coco_map50": mean(coco[0]),
        "map75": mean(coco[5]),
        "ap50": voc,
        "ap": coco.mean(axis=0),
        "pr_curves": curves,
    }


def pr_figure(curves, class_names):
    """A matplotlib figure of the precision-recall curves (IoU 0.5) of each class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 5), dpi=80)
    for c, (recall, precision) in sorted(curves.items()):
        axes.plot(recall, precision, label=class_names[c], linewidth=1)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1.0)
    axes.set_ylim(0, 1.05)
    axes.set_title("precision-recall at IoU 0.5")
    if len(curves) <= 20:
        axes.legend(fontsize=7, loc="lower left", ncol=2)
    figure.tight_layout()
    return figure
