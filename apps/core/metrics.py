"""Classification metrics, hand-coded from their definitions.

For K classes, with C the confusion matrix (C[i, j] = examples of true class i
predicted as j):

    precision_k = C[k, k] / sum_i C[i, k]     recall_k = C[k, k] / sum_j C[k, j]
    F1_k = 2 precision_k recall_k / (precision_k + recall_k)
    macro-F1 = mean_k F1_k                    accuracy = trace(C) / sum(C)
    top-k accuracy = share of examples whose true class is among the k
                     highest scores

A class that is never predicted has precision 0 (and F1 0), as scikit-learn's
`zero_division=0` gives.
"""

import numpy as np


def confusion_matrix(labels, predictions, num_classes):
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def top_k_accuracy(labels, scores, k):
    scores = np.asarray(scores)
    k = min(k, scores.shape[-1])
    top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


def classification_report(labels, scores, num_classes, top_k=3):
    """Accuracy, top-k accuracy, per-class precision/recall/F1, macro-F1, the matrix."""
    labels = np.asarray(labels)
    predictions = np.argmax(scores, axis=-1)
    matrix = confusion_matrix(labels, predictions, num_classes)
    true_positives = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros(num_classes),
                          where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros(num_classes), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(num_classes),
                   where=denominator > 0)
    return {
        "accuracy": float(true_positives.sum() / max(1, matrix.sum())),
        f"top{top_k}_accuracy": top_k_accuracy(labels, scores, top_k),
        "macro_f1": float(f1.mean()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion_matrix": matrix,
    }


def confusion_matrix_figure(matrix, class_names):
    """A matplotlib figure of the confusion matrix, counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    size = min(12, 2 + 0.5 * n)
    figure, axes = plt.subplots(figsize=(size, size), dpi=80)
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(n), class_names, rotation=90 if n > 10 else 0)
    axes.set_yticks(range(n), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if n <= 30:
        high = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                          color="white" if matrix[i, j] > high else "black")
    figure.tight_layout()
    return figure
