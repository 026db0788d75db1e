"""Segmentation metrics, hand-coded from their definitions.

All are read off the confusion matrix C over every pixel of a split
(C[i, j] = pixels of true class i predicted as j), with, for class c,
TP_c = C[c, c], FP_c = sum_i C[i, c] - TP_c and FN_c = sum_j C[c, j] - TP_c:

    pixel accuracy = trace(C) / sum(C)
    IoU_c          = TP_c / (TP_c + FP_c + FN_c)      (Jaccard index)
    Dice_c         = 2 TP_c / (2 TP_c + FP_c + FN_c)  (F1 score of class c)
    mean IoU       = mean of IoU_c over the classes present (in the truth or
                     the prediction); Dice likewise

A class absent from both truth and prediction has an undefined (NaN) IoU and
Dice and is left out of the means, as `keras.metrics.MeanIoU` does.
"""

import numpy as np


def confusion_matrix(labels, predictions, num_classes):
    """(K, K) int64 counts of (true, predicted) pixel pairs; pixels labelled
    outside the classes (the ignore label) are left out."""
    labels = np.asarray(labels, np.int64).ravel()
    predictions = np.asarray(predictions, np.int64).ravel()
    kept = labels < num_classes
    labels, predictions = labels[kept], predictions[kept]
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes)


def segmentation_report(matrix):
    """Pixel accuracy, per-class IoU and Dice (NaN where undefined), their means."""
    matrix = np.asarray(matrix, np.float64)
    tp = np.diag(matrix)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    union = tp + fp + fn
    present = union > 0
    iou = np.full(len(tp), np.nan)
    dice = np.full(len(tp), np.nan)
    iou[present] = tp[present] / union[present]
    dice[present] = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
    return {
        "pixel_accuracy": float(tp.sum() / max(1.0, matrix.sum())),
        "mean_iou": float(np.mean(iou[present])) if present.any() else float("nan"),
        "dice": float(np.mean(dice[present])) if present.any() else float("nan"),
        "iou": iou,
        "class_dice": dice,
    }
