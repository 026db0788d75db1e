"""Anchor shapes by k-means on the training boxes, as YOLOv2 chooses them.

Each box is reduced to its shape (w, h) and placed at the origin; the distance
between a box and a centroid is one minus their IoU (Redmon and Farhadi, 2016),
so large and small boxes weigh alike (Euclidean distance would let the large
ones dominate):

    IoU(box, c) = min(w, c_w) * min(h, c_h) / (w * h + c_w * c_h - min(w, c_w) * min(h, c_h))
    d(box, c)   = 1 - IoU(box, c)

Lloyd's iteration: assign each box to the centroid at the smallest d, move each
centroid to the mean shape of its boxes, repeat until no assignment changes.
The centroids start by k-means++ seeding under the same distance (seeded, so
the anchors are a function of the data and the seed).
"""

import numpy as np


def shape_iou(wh, centroids):
    """IoU of shapes wh (N, 2) with centroids (K, 2), both at the origin: (N, K)."""
    wh = np.asarray(wh, np.float64)[:, None, :]
    c = np.asarray(centroids, np.float64)[None, :, :]
    inter = np.minimum(wh[..., 0], c[..., 0]) * np.minimum(wh[..., 1], c[..., 1])
    union = wh[..., 0] * wh[..., 1] + c[..., 0] * c[..., 1] - inter
    return inter / np.maximum(union, 1e-12)


def assign(wh, centroids):
    """Index of the nearest centroid (largest IoU, i.e. smallest 1 - IoU) of each shape."""
    return np.argmax(shape_iou(wh, centroids), axis=1)


def kmeans(wh, k, seed=0, max_iterations=300):
    """Anchor shapes (k, 2) from box shapes wh (N, 2), sorted by area; and the mean IoU.

    The mean IoU is the average, over boxes, of the IoU with the nearest anchor.
    """
    wh = np.asarray(wh, np.float64)
    wh = wh[(wh > 0).all(axis=1)]
    if len(wh) < k:
        raise ValueError(f"k-means needs at least {k} boxes, got {len(wh)}")
    rng = np.random.default_rng(seed)
    centroids = wh[[rng.integers(len(wh))]]
    while len(centroids) < k:  # k-means++: the next centre far (in 1 - IoU) from the others
        d = 1.0 - shape_iou(wh, centroids).max(axis=1)
        p = d**2
        p = p / p.sum() if p.sum() > 0 else np.full(len(wh), 1.0 / len(wh))
        centroids = np.concatenate([centroids, wh[[rng.choice(len(wh), p=p)]]])
    labels = None
    for _ in range(max_iterations):
        new = assign(wh, centroids)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if np.any(labels == j):
                centroids[j] = wh[labels == j].mean(axis=0)
    order = np.argsort(centroids[:, 0] * centroids[:, 1], kind="stable")
    centroids = centroids[order]
    mean_iou = float(shape_iou(wh, centroids).max(axis=1).mean())
    return centroids, mean_iou
