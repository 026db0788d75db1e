"""Per-example segmentation losses: weighted cross-entropy and soft Dice.

For one example with P pixels, logits z_p (K classes), softmax s_p = softmax(z_p),
true classes y_p and their one-hot g_p:

    cross-entropy   CE = (1/P) sum_p w[y_p] * (-log s_p[y_p])
                    (w = 1 without class weights; Keras's `class_weight` convention)
    soft Dice       D  = 1 - (1/K) sum_c (2 sum_p s_pc g_pc + eps)
                                        / (sum_p s_pc + sum_p g_pc + eps),   eps = 1
    loss            CE + dice_weight * D

and the "balanced" class weights of the training masks (scikit-learn's
`compute_class_weight("balanced")`): w_c = N / (K * n_c), with n_c the pixels
of class c among N; a class with no pixel gets weight 0.
"""

import numpy as np
import tensorflow as tf

DICE_EPSILON = 1.0


def cross_entropy(labels, logits, class_weights=None):
    """Mean (weighted) pixel cross-entropy of each example: (B, H, W), (B, H, W, K) -> (B,)."""
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if class_weights is not None:
        per_pixel *= tf.gather(tf.constant(class_weights, tf.float32), labels)
    return tf.reduce_mean(per_pixel, axis=[1, 2])


def soft_dice(labels, logits, epsilon=DICE_EPSILON):
    """1 - the mean over classes of the soft Dice coefficient, per example: (B,)."""
    logits = tf.cast(logits, tf.float32)
    num_classes = logits.shape[-1]
    probabilities = tf.nn.softmax(logits, axis=-1)
    truth = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
    overlap = tf.reduce_sum(probabilities * truth, axis=[1, 2])
    total = tf.reduce_sum(probabilities, axis=[1, 2]) + tf.reduce_sum(truth, axis=[1, 2])
    return 1.0 - tf.reduce_mean((2.0 * overlap + epsilon) / (total + epsilon), axis=-1)


def balanced_class_weights(masks, num_classes):
    """w_c = N / (K n_c) over the pixels of `masks`; 0 for a class with no pixel."""
    counts = np.bincount(np.asarray(masks, np.int64).ravel(), minlength=num_classes)
    counts = counts[:num_classes].astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = counts.sum() / (num_classes * counts[present])
    return weights
