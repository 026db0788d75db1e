"""The hand-coded metrics and losses against scikit-learn, Keras and NumPy transcriptions."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk
from sklearn.utils.class_weight import compute_class_weight

from apps.segmentation import losses as losses_lib
from apps.segmentation import metrics as metrics_lib


def _labels_and_predictions(seed=0, k=5, shape=(3, 12, 10)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, shape)
    predictions = np.where(rng.random(shape) < 0.6, labels, rng.integers(0, k, shape))
    return labels, predictions


def test_confusion_matrix_and_report_match_scikit_learn():
    labels, predictions = _labels_and_predictions()
    k = 6  # class 5 appears nowhere: undefined IoU, left out of the means
    matrix = metrics_lib.confusion_matrix(labels, predictions, k)
    y, p = labels.ravel(), predictions.ravel()
    np.testing.assert_array_equal(matrix, sk.confusion_matrix(y, p, labels=range(k)))
    report = metrics_lib.segmentation_report(matrix)
    iou = sk.jaccard_score(y, p, labels=range(5), average=None)
    dice = sk.f1_score(y, p, labels=range(5), average=None)
    np.testing.assert_allclose(report["iou"][:5], iou)
    np.testing.assert_allclose(report["class_dice"][:5], dice)
    assert np.isnan(report["iou"][5]) and np.isnan(report["class_dice"][5])
    assert report["mean_iou"] == pytest.approx(iou.mean())
    assert report["dice"] == pytest.approx(dice.mean())
    assert report["pixel_accuracy"] == pytest.approx(sk.accuracy_score(y, p))


def test_mean_iou_matches_keras():
    labels, predictions = _labels_and_predictions(seed=1, k=4)
    predictions[predictions == 3] = 2  # class 3 never predicted: IoU 0, still counted
    keras_metric = keras.metrics.MeanIoU(num_classes=4)
    keras_metric.update_state(labels.ravel(), predictions.ravel())
    report = metrics_lib.segmentation_report(metrics_lib.confusion_matrix(labels, predictions, 4))
    assert report["iou"][3] == 0.0
    assert report["mean_iou"] == pytest.approx(float(keras_metric.result()), rel=1e-6)


def test_perfect_prediction_scores_one():
    labels, _ = _labels_and_predictions(seed=2)
    report = metrics_lib.segmentation_report(metrics_lib.confusion_matrix(labels, labels, 5))
    assert report["pixel_accuracy"] == report["mean_iou"] == report["dice"] == 1.0


def _numpy_losses(labels, logits, weights, eps=1.0):
    """The docstring's formulas, transcribed pixel by pixel in float64."""
    b, h, w, k = logits.shape
    ce, dice = np.zeros(b), np.zeros(b)
    for i in range(b):
        z = logits[i].reshape(-1, k).astype(np.float64)
        y = labels[i].ravel()
        s = np.exp(z - z.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ce[i] = np.mean([weights[y_p] * -np.log(s[p, y_p]) for p, y_p in enumerate(y)])
        g = np.eye(k)[y]
        coefficients = [(2 * np.sum(s[:, c] * g[:, c]) + eps) / (s[:, c].sum() + g[:, c].sum() + eps)
                        for c in range(k)]
        dice[i] = 1 - np.mean(coefficients)
    return ce, dice


def test_losses_match_their_formulas():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, (3, 5, 6))
    logits = rng.normal(0, 2, (3, 5, 6, 4)).astype(np.float32)
    weights = np.array([0.5, 2.0, 1.0, 3.0])
    ce, dice = _numpy_losses(labels, logits, weights)
    np.testing.assert_allclose(losses_lib.cross_entropy(labels, logits, weights), ce, rtol=1e-5)
    np.testing.assert_allclose(losses_lib.soft_dice(labels, logits), dice, rtol=1e-5)
    plain, _ = _numpy_losses(labels, logits, np.ones(4))
    np.testing.assert_allclose(losses_lib.cross_entropy(labels, logits), plain, rtol=1e-5)
    # Unweighted cross-entropy is Keras's sparse categorical cross-entropy.
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
        labels, logits)
    np.testing.assert_allclose(losses_lib.cross_entropy(labels, logits),
                               np.mean(keras_ce, axis=(1, 2)), rtol=1e-5)


def test_the_ignore_label_is_left_out_of_losses_and_metrics():
    """Pixels labelled 255 count nowhere: the losses equal those of the other
    pixels alone (a NumPy transcription over them), the confusion matrix
    holds only them."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, (2, 5, 6))
    labels[:, 0] = 255  # a boundary row
    logits = rng.normal(0, 2, (2, 5, 6, 4)).astype(np.float32)
    weights = np.array([0.5, 2.0, 1.0, 3.0])
    kept_labels, kept_logits = labels[:, 1:], logits[:, 1:]
    ce, dice = _numpy_losses(kept_labels, kept_logits, weights)
    np.testing.assert_allclose(
        losses_lib.cross_entropy(labels, logits, weights, ignore_label=255), ce, rtol=1e-5)
    np.testing.assert_allclose(losses_lib.soft_dice(labels, logits, ignore_label=255), dice,
                               rtol=1e-5)
    predictions = rng.integers(0, 4, labels.shape)
    np.testing.assert_array_equal(
        metrics_lib.confusion_matrix(labels, predictions, 4),
        metrics_lib.confusion_matrix(kept_labels, predictions[:, 1:], 4))


def test_dice_loss_is_near_zero_for_a_confident_right_answer_and_has_gradients():
    labels = np.random.default_rng(4).integers(0, 3, (2, 8, 8))
    logits = tf.constant(30.0 * np.eye(3)[labels], tf.float32)
    assert np.all(losses_lib.soft_dice(labels, logits).numpy() < 1e-3)
    variable = tf.Variable(tf.zeros((2, 8, 8, 3)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(losses_lib.soft_dice(labels, variable))
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, variable)))) > 0


def test_balanced_class_weights_match_scikit_learn():
    masks = np.random.default_rng(5).choice(4, size=(6, 7, 9), p=[0.7, 0.2, 0.1, 0.0])
    weights = losses_lib.balanced_class_weights(masks, 4)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=masks.ravel())
    # scikit-learn's K counts the classes present; ours counts all classes.
    np.testing.assert_allclose(weights[:3], expected * 3 / 4)
    assert weights[3] == 0.0
    # Counted a few masks at a time (a split read from files), the same weights.
    np.testing.assert_allclose(losses_lib.balanced_class_weights(masks, 4, chunk=4), weights)
