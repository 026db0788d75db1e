"""Triplet mining on hand-built batches, P x K batches, and the verification metrics."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk

from apps.face_recognition import metrics as m
from apps.face_recognition.batches import pk_order
from apps.face_recognition.task import FaceRecognitionTask
from configs.face_recognition import get_config
from layers.losses import TripletLoss

# Four faces on a line (1-d embeddings): people A = {0, 1}, B = {2, 3}.
# Squared distances: d(0,1)=0.09 d(0,2)=0.25 d(0,3)=1.96 d(1,2)=0.04 d(1,3)=1.21 d(2,3)=0.81
LABELS = np.array([0, 0, 1, 1])
POINTS = np.array([[0.0], [0.3], [0.5], [1.4]], np.float32)


@pytest.mark.parametrize("mining, expected", [
    # semi-hard: (0,1) takes n=2 (0.25 > 0.09): 0.09-0.25+0.2 = 0.04;
    # (1,0) takes n=3 (1.21, as 2 is closer than the positive): 0;
    # (2,3) has no negative farther than 0.81, so the farthest, n=0: 0.81-0.25+0.2 = 0.76;
    # (3,2) takes n=1 (1.21): 0. Mean over the 4 pairs.
    ("semi_hard", (0.04 + 0 + 0.76 + 0) / 4),
    # hard: each anchor's farthest positive and closest negative:
    # 0: 0.09-0.25+0.2=0.04, 1: 0.09-0.04+0.2=0.25, 2: 0.81-0.04+0.2=0.97, 3: 0.81-1.21+0.2<0
    ("hard", (0.04 + 0.25 + 0.97 + 0) / 4),
    # all: the active triplets (0,1,2) 0.04, (1,0,2) 0.25, (2,3,0) 0.76, (2,3,1) 0.97, mean.
    ("all", (0.04 + 0.25 + 0.76 + 0.97) / 4),
])
def test_triplet_mining_selects_the_expected_triplets(mining, expected):
    loss = TripletLoss(margin=0.2, mining=mining)(LABELS, POINTS)
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_active_triplets_counts_the_hand_built_batch():
    # 8 valid triplets (2 anchors x 1 positive x 2 negatives per person); 4 are active.
    assert m.active_triplet_fraction(LABELS, POINTS, 0.2) == pytest.approx(0.5)
    # Without a margin (1,0,2), (2,3,0) and (2,3,1) still violate it; (0,1,2) does not.
    assert m.active_triplet_fraction(LABELS, POINTS, 0.0) == pytest.approx(3 / 8)
    assert m.active_triplet_fraction(LABELS, POINTS, 5.0) == 1.0


def test_per_example_loss_carries_the_batch_loss():
    task = FaceRecognitionTask(get_config("tiny"))
    per_example = task.per_example_loss(tf.constant(LABELS), tf.constant(POINTS))
    assert per_example.shape == (4,)
    np.testing.assert_allclose(per_example.numpy(), 0.2, atol=1e-6)  # semi-hard, above


def test_pk_order_draws_p_people_with_k_images_each():
    counts = [3, 5, 2, 6, 4]
    labels = np.repeat(np.arange(5) * 10, counts)  # any label values
    order = pk_order(labels, people_per_batch=3, images_per_person=4, steps=6)
    index = order(tf.constant([0, 1], tf.int64)).numpy()
    assert index.shape == (6 * 12,)
    for batch in index.reshape(6, 3, 4):
        people = labels[batch]
        assert (people == people[:, :1]).all()  # each group of K is one person
        assert len(set(people[:, 0])) == 3  # P distinct people
        for group in batch:
            have = counts[labels[group[0]] // 10]
            assert len(set(group)) == min(have, 4)  # no repeats unless too few images
    np.testing.assert_array_equal(index, order(tf.constant([0, 1], tf.int64)).numpy())
    assert not np.array_equal(index, order(tf.constant([0, 2], tf.int64)).numpy())


def test_best_threshold_maximises_accuracy_and_breaks_ties_towards_the_start():
    same, diff = np.array([0.1, 0.2, 0.6]), np.array([0.5, 0.9, 1.0])
    # 5/6 correct both between 0.2 and 0.5 and between 0.6 and 0.9.
    assert m.best_threshold(same, diff, initial=0.7) == pytest.approx((0.75, 5 / 6))
    assert m.best_threshold(same, diff, initial=0.3) == pytest.approx((0.35, 5 / 6))
    assert m.accuracy_at(same, diff, 0.75) == pytest.approx(5 / 6)
    threshold, accuracy = m.best_threshold(np.array([0.1, 0.2]), np.array([0.3, 0.4]))
    assert 0.2 < threshold < 0.3 and accuracy == 1.0


def test_roc_auc_and_tar_match_scikit_learn():
    rng = np.random.default_rng(0)
    same = np.round(rng.normal(0.6, 0.2, 400), 2)  # rounded: ties between the classes
    diff = np.round(rng.normal(1.1, 0.2, 500), 2)
    y = np.r_[np.ones(400), np.zeros(500)]
    scores = -np.r_[same, diff]
    assert m.roc_auc(same, diff) == pytest.approx(sk.roc_auc_score(y, scores), abs=1e-12)
    same, diff = rng.normal(0.6, 0.2, 400), rng.normal(1.1, 0.2, 500)  # no ties
    fpr, tpr, _ = sk.roc_curve(y, -np.r_[same, diff])
    for far in (1e-2, 0.1):
        tar, threshold = m.tar_at_far(same, diff, far)
        assert tar == pytest.approx(tpr[fpr <= far].max())
        assert np.mean(diff < threshold) <= far


def test_rank1_with_one_enrolled_image_per_person():
    # A and B are tight; C's two images lie near A and near B, so C is always
    # misnamed whichever image is enrolled: 2 of 3 queries right, for any seed.
    points = np.array([[0, 0], [0, 0.1], [1, 0], [1, 0.1], [0.4, 0], [5, 5]], float)
    labels = np.array([0, 0, 1, 1, 2, 2])
    for seed in range(5):
        assert m.rank1_accuracy(points, labels, seed) == pytest.approx(2 / 3)
    assert m.rank1_accuracy(points[:4], labels[:4], 0) == 1.0


def test_pairs_are_balanced_and_valid():
    labels = np.repeat(np.arange(6), [1, 2, 3, 4, 5, 6])
    same, diff = m.pair_indices(labels, 30, seed=0)
    assert len(same) == len(diff) == 30
    assert (labels[same[:, 0]] == labels[same[:, 1]]).all() and (same[:, 0] != same[:, 1]).all()
    assert (labels[diff[:, 0]] != labels[diff[:, 1]]).all()
    assert len({tuple(p) for p in same}) == 30  # no pair twice
    all_same, _ = m.pair_indices(labels, 10_000, seed=0)
    assert len(all_same) == 0 + 1 + 3 + 6 + 10 + 15
    np.testing.assert_array_equal(m.pair_indices(labels, 30, seed=0)[1], diff)


def test_figures_render():
    from apps.core.images import figure_to_image

    same, diff = np.array([0.2, 0.3, 0.9]), np.array([0.8, 1.2, 1.4])
    for figure in (m.roc_figure(same, diff, 0.5), m.histogram_figure(same, diff, 0.5)):
        image = figure_to_image(figure)
        assert image.dtype == np.uint8 and image.shape[-1] == 3 and image.std() > 0
