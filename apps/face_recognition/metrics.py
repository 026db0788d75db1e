"""Verification and identification metrics, hand-coded from their definitions.

With d the Euclidean distance between two L2-normalised embeddings and a
pair accepted ("same person") when d < t:

    verification accuracy(t) = (#same pairs with d < t + #different pairs with d >= t) / #pairs
    best threshold           t* = argmax_t accuracy(t) over the midpoints between
                             consecutive distinct distances (ties: the t closest
                             to the starting value, the notes' 0.7)
    ROC AUC                  P(d_same < d_diff) + P(d_same = d_diff) / 2
                             (the Mann-Whitney U statistic over all pairs of pairs)
    FAR(t), TAR(t)           share of different / same pairs with d < t
    TAR at FAR = f           TAR(t_f) with t_f the largest threshold whose FAR <= f:
                             t_f = the (floor(f n_diff) + 1)-th smallest different-pair
                             distance
    rank-1 accuracy          one enrolled image per person; each other image is
                             given the identity of its nearest enrolled image
    active triplets          share of valid triplets (a, p, n) with
                             d(a, p) - d(a, n) + margin > 0
"""

import numpy as np


def pair_indices(labels, num_pairs, seed):
    """Balanced pairs: (same (M, 2), different (M, 2)) index arrays, M <= num_pairs.

    Same pairs are drawn without repetition from all the same-person pairs
    (all of them when there are fewer than `num_pairs`); as many
    different-person pairs are drawn, each from two distinct people.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == p) for p in np.unique(labels)]
    groups = [g for g in groups if len(g)]
    multi = [g for g in groups if len(g) >= 2]
    if not multi or len(groups) < 2:
        return np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64)
    same = np.concatenate([g[np.stack(np.triu_indices(len(g), 1), -1)] for g in multi])
    if len(same) > num_pairs:
        same = same[np.sort(rng.choice(len(same), num_pairs, replace=False))]
    m = len(same)
    people = rng.integers(0, len(groups), (m, 2))
    clash = people[:, 0] == people[:, 1]
    people[clash, 1] = (people[clash, 1] + rng.integers(1, len(groups), clash.sum())) % len(groups)
    pick = rng.uniform(size=(m, 2))
    sizes = np.array([len(g) for g in groups])
    slots = (pick * sizes[people]).astype(np.int64)
    different = np.stack([[groups[p][s] for p, s in zip(people[:, k], slots[:, k], strict=True)]
                          for k in (0, 1)], -1).astype(np.int64)
    return same.astype(np.int64), different


def pair_distances(embeddings, pairs):
    """Euclidean distances ||e_i - e_j|| of the index pairs (M, 2)."""
    embeddings = np.asarray(embeddings, np.float64)
    return np.linalg.norm(embeddings[pairs[:, 0]] - embeddings[pairs[:, 1]], axis=-1)


def accuracy_at(same_d, diff_d, threshold):
    """Share of pairs verified right at `threshold`; NaN without pairs of both kinds
    (a split with no person seen twice has nothing to verify)."""
    same_d, diff_d = np.asarray(same_d), np.asarray(diff_d)
    if len(same_d) == 0 or len(diff_d) == 0:
        return float("nan")
    correct = np.sum(same_d < threshold) + np.sum(diff_d >= threshold)
    return float(correct / (len(same_d) + len(diff_d)))


def best_threshold(same_d, diff_d, initial=0.7):
    """The threshold of highest verification accuracy (ties: closest to `initial`).

    Returns (threshold, accuracy). Candidates are the midpoints between
    consecutive distinct distances, and one value below / above all of them.
    """
    values = np.unique(np.concatenate([same_d, diff_d]).astype(np.float64))
    if len(values) == 0:
        return float(initial), 0.0
    candidates = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2,
                                 [values[-1] + 1e-6]])
    same_sorted, diff_sorted = np.sort(same_d), np.sort(diff_d)
    accepted_same = np.searchsorted(same_sorted, candidates, side="left")  # d < t
    rejected_diff = len(diff_sorted) - np.searchsorted(diff_sorted, candidates, side="left")
    accuracy = (accepted_same + rejected_diff) / (len(same_d) + len(diff_d))
    best = np.flatnonzero(accuracy >= accuracy.max() - 1e-12)
    choice = best[np.argmin(np.abs(candidates[best] - initial))]
    return float(candidates[choice]), float(accuracy[choice])


def roc_auc(same_d, diff_d):
    """Area under the ROC curve of the score -d: P(d_same < d_diff), ties count 1/2.

    Computed from average ranks (Mann-Whitney): AUC = (R_same - n_s (n_s + 1) / 2)
    / (n_s n_d), with R_same the sum of the ranks of the same pairs' scores.
    """
    same_d, diff_d = np.asarray(same_d, np.float64), np.asarray(diff_d, np.float64)
    n_s, n_d = len(same_d), len(diff_d)
    if n_s == 0 or n_d == 0:
        return float("nan")
    scores = -np.concatenate([same_d, diff_d])
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts + 1  # 1-based rank of each distinct value's first
    ranks = (first + (counts - 1) / 2)[inverse]
    return float((ranks[:n_s].sum() - n_s * (n_s + 1) / 2) / (n_s * n_d))


def tar_at_far(same_d, diff_d, far=1e-2):
    """(TAR, threshold) at the largest threshold whose false-accept rate is <= `far`."""
    diff_sorted = np.sort(np.asarray(diff_d, np.float64))
    k = int(np.floor(far * len(diff_sorted) + 1e-9))
    threshold = diff_sorted[k] if k < len(diff_sorted) else np.inf
    same_d = np.asarray(same_d)
    tar = float(np.mean(same_d < threshold)) if len(same_d) else float("nan")
    return tar, float(threshold)


def rank1_accuracy(embeddings, labels, seed):
    """Identification with one enrolled image per person (chosen at random).

    Every person is enrolled once; each image of a person with two or more
    images, other than the enrolled one, is a query given the label of its
    nearest enrolled embedding. Returns the share of queries named correctly.
    """
    embeddings, labels = np.asarray(embeddings, np.float64), np.asarray(labels)
    rng = np.random.default_rng(seed)
    people = np.unique(labels)
    enrolled = np.array([rng.choice(np.flatnonzero(labels == p)) for p in people])
    queries = np.setdiff1d(np.arange(len(labels)), enrolled)
    if len(queries) == 0:
        return float("nan")
    gallery = embeddings[enrolled]
    d2 = (np.sum(embeddings[queries] ** 2, 1)[:, None] - 2 * embeddings[queries] @ gallery.T
          + np.sum(gallery ** 2, 1)[None])
    return float(np.mean(people[np.argmin(d2, axis=1)] == labels[queries]))


def active_triplet_fraction(labels, embeddings, margin, squared=True):
    """Share of valid triplets (a, p, n) with d(a, p) - d(a, n) + margin > 0."""
    labels, e = np.asarray(labels).reshape(-1), np.asarray(embeddings, np.float64)
    d = np.sum((e[:, None] - e[None]) ** 2, -1)
    if not squared:
        d = np.sqrt(d)
    same = labels[:, None] == labels[None]
    positive = same & ~np.eye(len(labels), dtype=bool)
    valid = positive[:, :, None] & ~same[:, None, :]
    active = valid & (d[:, :, None] - d[:, None, :] + margin > 0)
    return float(active.sum() / max(1, valid.sum()))


def roc_figure(same_d, diff_d, threshold):
    """A matplotlib figure of the ROC curve (TAR against FAR, log FAR axis)."""
    plt = _pyplot()
    thresholds = np.unique(np.concatenate([same_d, diff_d, [np.inf]]))
    tar = np.array([np.mean(same_d < t) for t in thresholds])
    far = np.array([np.mean(diff_d < t) for t in thresholds])
    figure, axes = plt.subplots(figsize=(4, 4), dpi=80)
    axes.plot(np.maximum(far, 1e-4), tar)
    axes.scatter([max(np.mean(diff_d < threshold), 1e-4)], [np.mean(same_d < threshold)],
                 color="red", label=f"threshold {threshold:.3f}")
    axes.set_xscale("log")
    axes.set_xlim(1e-4, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("false accept rate")
    axes.set_ylabel("true accept rate")
    axes.set_title(f"ROC (AUC {roc_auc(same_d, diff_d):.4f})")
    axes.legend(loc="lower right")
    axes.minorticks_off()
    figure.subplots_adjust(left=0.16, bottom=0.14, right=0.96, top=0.9)  # tight_layout is slow
    return figure


def histogram_figure(same_d, diff_d, threshold):
    """Histograms of the same-person and different-person pair distances."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3.5), dpi=80)
    bins = np.linspace(0, max(2.0, float(np.max(np.concatenate([same_d, diff_d, [0]])))), 50)
    axes.hist(same_d, bins, alpha=0.6, label="same person")
    axes.hist(diff_d, bins, alpha=0.6, label="different people")
    axes.axvline(threshold, color="red", label=f"threshold {threshold:.3f}")
    axes.set_xlabel("embedding distance")
    axes.legend()
    figure.subplots_adjust(left=0.1, bottom=0.15, right=0.97, top=0.95)
    return figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
