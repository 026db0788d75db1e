"""Per-example segmentation losses: weighted cross-entropy and soft Dice.

For one example with pixels P, logits z_p (K classes), softmax s_p = softmax(z_p),
true classes y_p and their one-hot g_p, and V the pixels whose label is not the
ignore label (Pascal VOC's and Cityscapes' 255 along object boundaries; V = P
without one):

    cross-entropy   CE = (1/|V|) sum_{p in V} w[y_p] * (-log s_p[y_p])
                    (w = 1 without class weights; Keras's `class_weight` convention)
    soft Dice       D  = 1 - (1/K) sum_c (2 sum_{p in V} s_pc g_pc + eps)
                                 / (sum_{p in V} s_pc + sum_{p in V} g_pc + eps),   eps = 1
    loss            CE + dice_weight * D

and the "balanced" class weights of the training masks (scikit-learn's
`compute_class_weight("balanced")`): w_c = N / (K * n_c), with n_c the pixels
of class c among N; a class with no pixel gets weight 0.
"""

import numpy as np
import tensorflow as tf

DICE_EPSILON = 1.0


def cross_entropy(labels, logits, class_weights=None, ignore_label=None):
    """Mean (weighted) pixel cross-entropy of each example over its pixels not
    labelled `ignore_label`: (B, H, W), (B, H, W, K) -> (B,)."""
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    if ignore_label is None:
        valid = tf.ones_like(labels, tf.float32)
    else:
        valid = tf.cast(tf.not_equal(labels, ignore_label), tf.float32)
        labels = tf.where(valid > 0, labels, 0)  # any class: its loss is multiplied by 0
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if class_weights is not None:
        per_pixel *= tf.gather(tf.constant(class_weights, tf.float32), labels)
    return (tf.reduce_sum(per_pixel * valid, axis=[1, 2])
            / tf.maximum(tf.reduce_sum(valid, axis=[1, 2]), 1.0))


def soft_dice(labels, logits, epsilon=DICE_EPSILON, ignore_label=None):
    """1 - the mean over classes of the soft Dice coefficient, per example, over
    the pixels not labelled `ignore_label`: (B,)."""
    logits = tf.cast(logits, tf.float32)
    num_classes = logits.shape[-1]
    probabilities = tf.nn.softmax(logits, axis=-1)
    if ignore_label is not None:
        valid = tf.cast(tf.not_equal(tf.cast(labels, tf.int32), ignore_label), tf.float32)
        probabilities *= valid[..., None]
    # An ignored pixel's label (>= K) has an all-zero one-hot.
    truth = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
    overlap = tf.reduce_sum(probabilities * truth, axis=[1, 2])
    total = tf.reduce_sum(probabilities, axis=[1, 2]) + tf.reduce_sum(truth, axis=[1, 2])
    return 1.0 - tf.reduce_mean((2.0 * overlap + epsilon) / (total + epsilon), axis=-1)


def balanced_class_weights(masks, num_classes, chunk=256):
    """w_c = N / (K n_c) over the pixels of `masks`; 0 for a class with no pixel.

    The masks (an array, or a column read from files) are counted `chunk` at a
    time, so a large training split is never held whole."""
    counts = np.zeros(num_classes, np.int64)
    for start in range(0, len(masks), chunk):
        part = np.asarray(masks[np.arange(start, min(start + chunk, len(masks)))], np.int64)
        counts += np.bincount(part.ravel(), minlength=num_classes)[:num_classes]
    counts = counts.astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = counts.sum() / (num_classes * counts[present])
    return weights
