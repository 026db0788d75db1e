"""Benchmark: our losses against the nearest TensorFlow / Keras computations.

Each row times a forward + backward pass (the loss and its gradient with
respect to the activations, images, scores or embeddings) inside
`tf.function`, without and with XLA (`jit_compile`). The references:

* gram_matrix, layer_style_cost: the same formula written with `tf.einsum`;
* content_cost: `tf.nn.l2_loss(a_C - a_G) / (2 n_H n_W n_C)`;
* total_variation: `tf.image.total_variation` (same value);
* multiclass SVM: `keras.losses.CategoricalHinge` (a different formula, only
  the largest wrong score; the same amount of work, roughly);
* batch-hard and semi-hard triplet mining: a transcription of TensorFlow
  Addons' `TripletHardLoss` / `TripletSemiHardLoss` (same value).

Target: ours within 1.15x of the reference. Run with `python -m bench losses`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import compare, print_table, write_json  # noqa: E402
from layers import losses  # noqa: E402

TARGET = 1.15
ACT_SHAPE = (4, 32, 32, 64)      # (batch, n_H, n_W, n_C) style/content activations
IMAGE_SHAPE = (8, 64, 64, 3)     # images for total variation
SVM_SHAPE = (256, 100)           # (batch, classes)
EMB_BATCH, EMB_DIM, EMB_CLASSES = 128, 64, 16


# -- references --------------------------------------------------------------

def _einsum_gram(a):
    return tf.einsum("bhwc,bhwd->bcd", a, a)


def _einsum_style_cost(a_s, a_g):
    _, h, w, c = a_g.shape
    return tf.reduce_sum(tf.square(_einsum_gram(a_s) - _einsum_gram(a_g))) / (
        4.0 * c ** 2 * (h * w) ** 2)


def _l2_content_cost(a_c, a_g):
    _, h, w, c = a_g.shape
    return tf.nn.l2_loss(a_c - a_g) / (2.0 * h * w * c)


def _tfa_pairwise_distance(feature, squared):
    sq = tf.math.reduce_sum(tf.math.square(feature), axis=1, keepdims=True)
    d2 = sq + tf.transpose(sq) - 2.0 * tf.matmul(feature, tf.transpose(feature))
    d2 = tf.maximum(d2, 0.0)
    error_mask = tf.cast(d2 <= 0.0, d2.dtype)
    d = d2 if squared else tf.sqrt(d2 + error_mask * 1e-16)
    d = d * (1.0 - error_mask)
    return d * (1.0 - tf.eye(tf.shape(feature)[0], dtype=d.dtype))


def _tfa_masked_maximum(data, mask, dim=1):
    axis_minimums = tf.math.reduce_min(data, dim, keepdims=True)
    return tf.math.reduce_max((data - axis_minimums) * mask, dim, keepdims=True) + axis_minimums


def _tfa_masked_minimum(data, mask, dim=1):
    axis_maximums = tf.math.reduce_max(data, dim, keepdims=True)
    return tf.math.reduce_min((data - axis_maximums) * mask, dim, keepdims=True) + axis_maximums


def _tfa_semihard(labels, embeddings, margin, squared):
    """TensorFlow Addons' triplet_semihard_loss (Apache-2.0), transcribed."""
    labels = tf.reshape(labels, [-1, 1])
    pdist = _tfa_pairwise_distance(embeddings, squared)
    adjacency = tf.math.equal(labels, tf.transpose(labels))
    adjacency_not = tf.math.logical_not(adjacency)
    batch_size = tf.size(labels)
    pdist_tile = tf.tile(pdist, [batch_size, 1])
    mask = tf.math.logical_and(tf.tile(adjacency_not, [batch_size, 1]),
                               tf.math.greater(pdist_tile,
                                               tf.reshape(tf.transpose(pdist), [-1, 1])))
    mask_final = tf.reshape(tf.math.greater(tf.math.reduce_sum(
        tf.cast(mask, tf.float32), 1, keepdims=True), 0.0), [batch_size, batch_size])
    mask_final = tf.transpose(mask_final)
    adjacency_not = tf.cast(adjacency_not, tf.float32)
    mask = tf.cast(mask, tf.float32)
    negatives_outside = tf.transpose(tf.reshape(_tfa_masked_minimum(pdist_tile, mask),
                                                [batch_size, batch_size]))
    negatives_inside = tf.tile(_tfa_masked_maximum(pdist, adjacency_not), [1, batch_size])
    semi_hard = tf.where(mask_final, negatives_outside, negatives_inside)
    loss_mat = margin + pdist - semi_hard
    mask_positives = tf.cast(adjacency, tf.float32) - tf.linalg.diag(tf.ones([batch_size]))
    num_positives = tf.math.reduce_sum(mask_positives)
    return tf.math.reduce_sum(tf.math.maximum(loss_mat * mask_positives, 0.0)) / num_positives


def _tfa_hard(labels, embeddings, margin, squared):
    """TensorFlow Addons' triplet_hard_loss (Apache-2.0, soft=False), transcribed."""
    labels = tf.reshape(labels, [-1, 1])
    pdist = _tfa_pairwise_distance(embeddings, squared)
    adjacency = tf.math.equal(labels, tf.transpose(labels))
    adjacency_not = tf.cast(tf.math.logical_not(adjacency), tf.float32)
    batch_size = tf.size(labels)
    hard_negatives = tf.squeeze(_tfa_masked_minimum(pdist, adjacency_not), 1)
    mask_positives = tf.cast(adjacency, tf.float32) - tf.linalg.diag(tf.ones([batch_size]))
    hard_positives = tf.squeeze(_tfa_masked_maximum(pdist, mask_positives), 1)
    return tf.reduce_mean(tf.maximum(hard_positives - hard_negatives + margin, 0.0))


# -- timing ------------------------------------------------------------------

def _value_and_grad_step(loss_fn, inputs, wrt, jit_compile):
    """A compiled step returning d loss / d inputs[wrt] (forward + backward)."""
    inputs = [tf.constant(x) for x in inputs]

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs[wrt])
            loss = loss_fn(*inputs)
        return tape.gradient(loss, inputs[wrt])

    return step


def _cases():
    rng = np.random.default_rng(0)

    def normal(*shape):
        return rng.normal(size=shape).astype(np.float32)

    a_s, a_g = normal(*ACT_SHAPE), normal(*ACT_SHAPE)
    images = rng.uniform(0, 1, size=IMAGE_SHAPE).astype(np.float32)
    scores = normal(*SVM_SHAPE)
    svm_labels = rng.integers(0, SVM_SHAPE[1], size=SVM_SHAPE[0])
    one_hot = np.eye(SVM_SHAPE[1], dtype=np.float32)[svm_labels]
    emb_labels = np.repeat(np.arange(EMB_CLASSES), EMB_BATCH // EMB_CLASSES).astype(np.float32)
    emb = normal(EMB_BATCH, EMB_DIM)
    ours_hinge = losses.MulticlassHinge(sparse=False)
    keras_hinge = keras.losses.CategoricalHinge()
    gram_w = normal(ACT_SHAPE[0], ACT_SHAPE[3], ACT_SHAPE[3])
    return [
        # (row name, ours, reference, inputs, index of the differentiated input)
        ("gram_matrix / einsum", lambda a, w: tf.reduce_sum(w * losses.gram_matrix(a)),
         lambda a, w: tf.reduce_sum(w * _einsum_gram(a)), [a_g, gram_w], 0),
        ("layer_style_cost / einsum", lambda s, g: losses.layer_style_cost(s, g),
         _einsum_style_cost, [a_s, a_g], 1),
        ("content_cost / l2_loss", lambda c, g: losses.content_cost(c, g),
         _l2_content_cost, [a_s, a_g], 1),
        ("total_variation / tf.image", lambda x: losses.total_variation(x),
         lambda x: tf.reduce_sum(tf.image.total_variation(x)), [images], 0),
        ("svm ~ CategoricalHinge", lambda y, s: ours_hinge(y, s),
         lambda y, s: keras_hinge(y, s), [one_hot, scores], 1),
        ("triplet hard / TFA", lambda y, e: losses.batch_triplet_loss(y, e, 0.2, "hard"),
         lambda y, e: _tfa_hard(y, e, 0.2, True), [emb_labels, emb], 1),
        ("triplet semi_hard / TFA",
         lambda y, e: losses.batch_triplet_loss(y, e, 0.2, "semi_hard"),
         lambda y, e: _tfa_semihard(y, e, 0.2, True), [emb_labels, emb], 1),
    ]


def main():
    rows = []
    for xla in (False, True):
        for name, ours, theirs, inputs, wrt in _cases():
            # Same value first: a benchmark of two different computations is meaningless.
            if "~" not in name:
                tensors = [tf.constant(x) for x in inputs]
                np.testing.assert_allclose(ours(*tensors), theirs(*tensors), rtol=1e-4)
            ours_step = _value_and_grad_step(ours, inputs, wrt, xla)
            theirs_step = _value_and_grad_step(theirs, inputs, wrt, xla)
            rows.append(compare(name, ours_step, theirs_step, rounds=21, repeats=10, xla=xla))
    print_table(
        "Losses: forward + backward (ours vs the nearest TF/Keras computation; "
        "'~' = not the same formula)", rows, target=TARGET)
    payload = {
        "benchmark": "losses",
        "shapes": {"activations": ACT_SHAPE, "images": IMAGE_SHAPE, "svm": SVM_SHAPE,
                   "embeddings": (EMB_BATCH, EMB_DIM), "classes": EMB_CLASSES},
        "target_ratio": TARGET,
        "rows": rows,
        "all_within_target": all(r["ratio"] <= TARGET for r in rows),
    }
    print(f"wrote {write_json('losses.json', payload)}")
    return payload


if __name__ == "__main__":
    main()
