"""Hand-coded losses: triplet (face recognition), style transfer, hinge.

Pure functions in `keras.ops` on the backend's tensors (anything
`keras.ops.convert_to_tensor` accepts; integer inputs are cast to
`keras.backend.floatx()`), each usable in eager code, inside `tf.function`,
under XLA (`jit_compile=True`, or `jax.jit` on the JAX backend) and in a
`tf.distribute` replica step, plus two Keras `Loss` classes for `compile`/`fit`:

  triplet_loss(anchor, positive, negative, alpha)   the course's triplet loss
  pairwise_distances(embeddings, squared)           (B, B) embedding distances
  batch_triplet_loss(labels, embeddings, ...)       triplet loss, online mining
  TripletLoss                                       Keras Loss over it
  gram_matrix(a)                                    style matrices
  layer_style_cost(a_S, a_G), style_cost(...)       style cost
  content_cost(a_C, a_G)                            content cost
  total_variation(images, kind, reduction)          smoothness penalty
  multiclass_svm_loss(labels, scores, delta)        CS231n multiclass SVM loss
  MulticlassHinge                                   Keras Loss over it

Shape mistakes raise a ValueError that names the argument and the expected
shape, as soon as the static shapes show them.

Distribution: the style, content, total-variation and `triplet_loss` costs are
sums over the batch, so in a `strategy.run` step each replica's local sum is
its share of the global sum (gradients are summed across replicas).
`multiclass_svm_loss(..., reduction="none")` gives per-example losses for
`tf.nn.compute_average_loss(per_example, global_batch_size=...)`. The mined
`batch_triplet_loss` is a batch-level quantity (triplets are mined inside each
replica's batch); average it over replicas, e.g. with
`tf.nn.scale_regularization_loss` (`Model.fit` does this by itself).
"""

from collections.abc import Mapping, Sequence

import keras
from keras import ops

__all__ = [
    "MulticlassHinge",
    "TripletLoss",
    "batch_triplet_loss",
    "content_cost",
    "gram_matrix",
    "layer_style_cost",
    "multiclass_svm_loss",
    "pairwise_distances",
    "style_cost",
    "total_variation",
    "triplet_loss",
]

MINING_MODES = ("all", "hard", "semi_hard")
DISTANCES = ("squared_l2", "l2")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def _is_float(x):
    return keras.backend.is_float_dtype(x.dtype)


def _float_tensors(fn_name, **named):
    """Converts the named inputs to tensors of one common floating dtype."""
    tensors = {k: ops.convert_to_tensor(v) for k, v in named.items()}
    floats = [_dtype(t) for t in tensors.values() if _is_float(t)]
    dtype = floats[0] if floats else keras.backend.floatx()
    for k, t in tensors.items():
        if _is_float(t) and _dtype(t) != dtype:
            raise ValueError(f"{fn_name}: `{k}` has dtype {_dtype(t)} but the other "
                             f"inputs have dtype {dtype}; cast them to one dtype.")
    return [ops.cast(t, dtype) for t in tensors.values()]


def _shape(x):
    """The static shape as a list (None for unknown dimensions), or None if the rank is unknown."""
    try:
        return list(x.shape)
    except ValueError:  # a TensorFlow graph tensor of unknown rank
        return None


def _rank(x):
    shape = _shape(x)
    return None if shape is None else len(shape)


def _check_rank(fn_name, name, x, ranks, expected):
    rank = _rank(x)
    if rank is not None and rank not in ranks:
        raise ValueError(f"{fn_name}: `{name}` must have shape {expected}; "
                         f"got shape {_shape(x)} (rank {rank}).")


def _check_same_shape(fn_name, names, a, b, expected):
    sa, sb = _shape(a), _shape(b)
    if sa is None or sb is None:
        return
    if len(sa) != len(sb) or any(x is not None and y is not None and x != y
                                 for x, y in zip(sa, sb, strict=True)):
        raise ValueError(f"{fn_name}: `{names[0]}` and `{names[1]}` must have the same "
                         f"shape {expected}; got {sa} and {sb}.")


def _dims(x, axes):
    """Product of the given dimensions: a Python int if static, else a tensor."""
    total = 1
    for axis in axes:
        d = x.shape[axis]
        total = total * (d if d is not None else ops.shape(x)[axis])
    return total


def _as_float(value, dtype):
    if ops.is_tensor(value):
        return ops.cast(value, dtype)
    return ops.convert_to_tensor(value, dtype=dtype)


def _masked_max(data, mask, axis):
    """max over `axis` of data where mask; the row minimum where mask is empty."""
    row_min = ops.min(data, axis=axis, keepdims=True)
    return ops.max((data - row_min) * mask, axis=axis, keepdims=True) + row_min


def _masked_min(data, mask, axis):
    """min over `axis` of data where mask; the row maximum where mask is empty."""
    row_max = ops.max(data, axis=axis, keepdims=True)
    return ops.min((data - row_max) * mask, axis=axis, keepdims=True) + row_max


# ---------------------------------------------------------------------------
# Triplet losses
# ---------------------------------------------------------------------------

def triplet_loss(anchor, positive, negative, alpha=0.2):
    """The triplet loss of FaceNet, as in the face-recognition assignment.

        J = sum_i max(||f(A_i) - f(P_i)||^2 - ||f(A_i) - f(N_i)||^2 + alpha, 0)

    with squared L2 distances over the last (embedding) axis and a plain sum
    (not a mean) over the batch.

    Args:
      anchor, positive, negative: embeddings of the same shape (..., D),
        usually (batch, D).
      alpha: the margin.

    Returns:
      A scalar tensor.
    """
    anchor, positive, negative = _float_tensors(
        "triplet_loss", anchor=anchor, positive=positive, negative=negative)
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        if _rank(t) == 0:
            raise ValueError(f"triplet_loss: `{name}` must have shape (batch, D); got a scalar.")
    _check_same_shape("triplet_loss", ("anchor", "positive"), anchor, positive, "(batch, D)")
    _check_same_shape("triplet_loss", ("anchor", "negative"), anchor, negative, "(batch, D)")
    pos_dist = ops.sum(ops.square(anchor - positive), axis=-1)
    neg_dist = ops.sum(ops.square(anchor - negative), axis=-1)
    basic_loss = pos_dist - neg_dist + _as_float(alpha, anchor.dtype)
    return ops.sum(ops.relu(basic_loss))


def pairwise_distances(embeddings, squared=True):
    """(B, B) matrix of distances between the rows of `embeddings` (B, D).

        d2[i, j] = ||e_i||^2 - 2 e_i . e_j + ||e_j||^2   (clipped at 0, d2[i, i] = 0)

    and d = sqrt(d2) when `squared` is False, with a zero (not NaN) gradient
    where d2 = 0.
    """
    (embeddings,) = _float_tensors("pairwise_distances", embeddings=embeddings)
    _check_rank("pairwise_distances", "embeddings", embeddings, (2,), "(batch, D)")
    sq_norms = ops.sum(ops.square(embeddings), axis=1)
    d2 = (sq_norms[:, None] - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings))
          + sq_norms[None, :])
    d2 = ops.maximum(d2, 0.0)
    off_diagonal = 1.0 - ops.eye(ops.shape(embeddings)[0], dtype=embeddings.dtype)
    d2 = d2 * off_diagonal
    if squared:
        return d2
    positive = d2 > 0.0
    # The inner where keeps sqrt's derivative finite at 0 (in every float dtype).
    return ops.where(positive, ops.sqrt(ops.where(positive, d2, ops.ones_like(d2))),
                     ops.zeros_like(d2))


def batch_triplet_loss(labels, embeddings, margin=0.2, mining="semi_hard",
                       distance="squared_l2"):
    """Triplet loss over a batch of labelled embeddings, with online mining.

    With d(i, j) the distance (`distance`: "squared_l2" or "l2") between
    embeddings i and j, a positive pair (a, p) has a != p and the same label,
    a negative n has a different label, and the triplet loss is
    l(a, p, n) = max(d(a, p) - d(a, n) + margin, 0). The mining modes:

    * "all" (batch-all, Hermans et al. 2017): every valid triplet (a, p, n);
      the loss is the sum of l over all of them divided by the number of
      triplets with l > 0 (the mean over the "active" triplets; 0 if none).
    * "hard" (batch-hard, Hermans et al.): for every anchor a with at least one
      positive and one negative, max(max_p d(a, p) - min_n d(a, n) + margin, 0);
      the loss is the mean over those anchors.
    * "semi_hard" (FaceNet; the semantics of TensorFlow Addons'
      `TripletSemiHardLoss`): for every positive pair (a, p) the negative is the
      closest n with d(a, n) > d(a, p); when no negative is farther than the
      positive it falls back to the negative with the largest d(a, n) (as TFA
      does). The loss is the mean of max(d(a, p) - d(a, n) + margin, 0) over all
      positive pairs (ordered, so (a, p) and (p, a) both count). Unlike TFA,
      pairs whose anchor has no negative in the batch are left out (TFA would
      use a distance of 0 for them).

    A batch without any valid pair, anchor or triplet gives 0. Memory is
    O(B^3) for "all" and "semi_hard" and O(B^2) for "hard".

    Args:
      labels: class ids, shape (B,) or (B, 1), integer or float (compared for
        equality).
      embeddings: (B, D) floating tensor.
      margin: the margin (>= 0).
      mining: "all", "hard" or "semi_hard".
      distance: "squared_l2" or "l2".

    Returns:
      A scalar tensor.
    """
    if mining not in MINING_MODES:
        raise ValueError(f"batch_triplet_loss: `mining` must be one of {MINING_MODES}; "
                         f"got {mining!r}.")
    if distance not in DISTANCES:
        raise ValueError(f"batch_triplet_loss: `distance` must be one of {DISTANCES}; "
                         f"got {distance!r}.")
    (embeddings,) = _float_tensors("batch_triplet_loss", embeddings=embeddings)
    labels = ops.convert_to_tensor(labels)
    _check_rank("batch_triplet_loss", "embeddings", embeddings, (2,), "(batch, D)")
    _check_rank("batch_triplet_loss", "labels", labels, (1, 2), "(batch,) or (batch, 1)")
    if _rank(labels) == 2 and labels.shape[1] not in (None, 1):
        raise ValueError("batch_triplet_loss: `labels` must have shape (batch,) or "
                         f"(batch, 1); got shape {_shape(labels)}.")
    labels = ops.reshape(labels, (-1,))
    if labels.shape[0] is not None and embeddings.shape[0] is not None and \
            labels.shape[0] != embeddings.shape[0]:
        raise ValueError(f"batch_triplet_loss: `labels` has {labels.shape[0]} entries but "
                         f"`embeddings` has batch size {embeddings.shape[0]}.")

    dtype = embeddings.dtype
    margin = _as_float(margin, dtype)
    dist = pairwise_distances(embeddings, squared=(distance == "squared_l2"))
    # 0/1 masks in the embeddings' dtype.
    same = ops.cast(ops.equal(labels[:, None], labels[None, :]), dtype)
    pos_mask = same - ops.eye(ops.shape(labels)[0], dtype=dtype)  # (a, p): a != p, same label
    neg_mask = 1.0 - same                                           # (a, n)

    if mining == "hard":
        hardest_pos = ops.max(dist * pos_mask, axis=1)  # distances are >= 0
        # +inf for an anchor without negatives: its (masked) loss is relu(-inf) = 0.
        hardest_neg = ops.min(
            ops.where(neg_mask > 0.0, dist, _as_float(float("inf"), dtype)), axis=1)
        valid = ops.max(pos_mask, axis=1) * ops.cast(ops.isfinite(hardest_neg), dtype)
        per_anchor = ops.relu(hardest_pos - hardest_neg + margin) * valid
        return ops.divide_no_nan(ops.sum(per_anchor), ops.sum(valid))

    if mining == "all":
        losses = ops.relu(dist[:, :, None] - dist[:, None, :] + margin)  # (a, p, n)
        losses = losses * (pos_mask[:, :, None] * neg_mask[:, None, :])
        num_active = ops.sum(ops.cast(losses > 0.0, dtype))
        return ops.divide_no_nan(ops.sum(losses), num_active)

    # semi_hard: for each (a, p), negatives farther than the positive.
    d_an = dist[:, None, :]                                                     # (a, 1, n)
    outside = neg_mask[:, None, :] * ops.cast(d_an > dist[:, :, None], dtype)  # (a, p, n)
    negatives_outside = _masked_min(d_an, outside, axis=2)[:, :, 0]
    negatives_inside = _masked_max(dist, neg_mask, axis=1)                      # (a, 1)
    semi_hard = ops.where(ops.max(outside, axis=2) > 0.0, negatives_outside,
                          negatives_inside)
    valid = pos_mask * ops.max(neg_mask, axis=1, keepdims=True)  # anchor has a negative
    pair_losses = ops.relu(dist - semi_hard + margin) * valid
    return ops.divide_no_nan(ops.sum(pair_losses), ops.sum(valid))


@keras.saving.register_keras_serializable(package="dlsuite")
class TripletLoss(keras.losses.Loss):
    """Triplet loss with online (in-batch) triplet mining, for `fit`.

    `y_true` holds integer class labels, shape (B,) or (B, 1) (Keras casts them
    to the loss dtype; labels are compared for equality, so they must be exact
    in that dtype: integers below 2**24 in float32); `y_pred` holds the
    embeddings (B, D). The loss is `batch_triplet_loss(y_true, y_pred, margin,
    mining, distance)`, a scalar for the batch; see its docstring for the
    mining modes ("all", "hard", "semi_hard") and their exact reductions.
    Because the loss is a batch-level quantity, per-sample weights are not
    meaningful: pass no `sample_weight`. Triplets are mined within each
    replica's batch under a distribution strategy, so use batches with several
    examples per class (e.g. P classes x K examples).

    Args:
      margin: the margin alpha.
      mining: "semi_hard" (FaceNet, as TFA's TripletSemiHardLoss), "hard"
        (batch-hard) or "all" (batch-all).
      distance: "squared_l2" (as in FaceNet and the course) or "l2".
      reduction, name, dtype: as for `keras.losses.Loss` (the reduction of a
        scalar leaves it unchanged, except "sum_over_batch_size" with weights).
    """

    def __init__(self, margin=0.2, mining="semi_hard", distance="squared_l2",
                 reduction="sum_over_batch_size", name="triplet_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if mining not in MINING_MODES:
            raise ValueError(f"TripletLoss: `mining` must be one of {MINING_MODES}; "
                             f"got {mining!r}.")
        if distance not in DISTANCES:
            raise ValueError(f"TripletLoss: `distance` must be one of {DISTANCES}; "
                             f"got {distance!r}.")
        if not margin >= 0:
            raise ValueError(f"TripletLoss: `margin` must be >= 0; got {margin}.")
        self.margin = float(margin)
        self.mining = mining
        self.distance = distance

    def call(self, y_true, y_pred):
        return batch_triplet_loss(y_true, y_pred, margin=self.margin, mining=self.mining,
                                  distance=self.distance)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining,
                "distance": self.distance, "dtype": self.dtype}


# ---------------------------------------------------------------------------
# Neural style transfer
# ---------------------------------------------------------------------------

def gram_matrix(a):
    """Gram (style) matrices of activations a of shape (batch, n_H, n_W, n_C).

        G = A^T A,  G[c, c'] = sum_{h, w} a[h, w, c] a[h, w, c']

    per example, with A the (n_H * n_W, n_C) unrolled activations (not
    normalised). Returns shape (batch, n_C, n_C). The gradient is the
    closed form dJ/dA = A (dJ/dG + dJ/dG^T).
    """
    (a,) = _float_tensors("gram_matrix", a=a)
    _check_rank("gram_matrix", "a", a, (4,), "(batch, n_H, n_W, n_C)")
    return _gram(a)


@ops.custom_gradient
def _gram(a):
    # G = A^T A, so dL/dA = A (dG + dG^T): one product for the backward pass
    # instead of the two that autodiff of the einsum would run (about 1.4x
    # faster forward + backward, with or without XLA; see bench/losses.py).
    def grad(*args, upstream=None):
        d_gram = args[0] if upstream is None else upstream
        return ops.einsum("bhwc,bcd->bhwd", a, d_gram + ops.swapaxes(d_gram, -1, -2))

    return ops.einsum("bhwc,bhwd->bcd", a, a), grad


def _check_style_shapes(fn_name, names, a, b):
    expected = "(batch, n_H, n_W, n_C)"
    _check_rank(fn_name, names[0], a, (4,), expected)
    _check_rank(fn_name, names[1], b, (4,), expected)
    if _rank(a) is None or _rank(b) is None:
        return
    for axis, dim in ((3, "n_C"), (1, "n_H"), (2, "n_W")):
        x, y = a.shape[axis], b.shape[axis]
        if x is not None and y is not None and x != y:
            raise ValueError(f"{fn_name}: `{names[0]}` and `{names[1]}` must have the same "
                             f"{dim}; got shapes {_shape(a)} and {_shape(b)}.")


def layer_style_cost(a_S, a_G):
    """Style cost of one layer, as in the neural-style-transfer assignment.

        J = 1 / (4 n_C^2 (n_H n_W)^2) * sum_{c, c'} (G_S[c, c'] - G_G[c, c'])^2

    with G = gram_matrix(a). Both activations have shape (batch, n_H, n_W, n_C)
    (the style batch may also be 1, shared by every generated image); the
    squared differences are summed over the batch as well, so a batch of one
    gives the course's value exactly.
    """
    a_S, a_G = _float_tensors("layer_style_cost", a_S=a_S, a_G=a_G)
    _check_style_shapes("layer_style_cost", ("a_S", "a_G"), a_S, a_G)
    b_s, b_g = a_S.shape[0], a_G.shape[0]
    if b_s is not None and b_g is not None and b_s not in (1, b_g):
        raise ValueError(f"layer_style_cost: `a_S` must have batch size 1 or that of `a_G` "
                         f"({b_g}); got shape {_shape(a_S)}.")
    n_hw = _dims(a_G, (1, 2))
    n_c = _dims(a_G, (3,))
    norm = 4 * n_c ** 2 * n_hw ** 2
    diff = gram_matrix(a_S) - gram_matrix(a_G)
    return ops.sum(ops.square(diff)) / _as_float(norm, a_G.dtype)


def _match_style_layers(style, generated, weights):
    """Returns a list of (name, a_S, a_G, weight)."""
    fn = "style_cost"
    if isinstance(style, Mapping) != isinstance(generated, Mapping):
        raise ValueError(f"{fn}: `style_activations` and `generated_activations` must both "
                         "be dicts keyed by layer name or both be lists.")
    if isinstance(weights, Sequence) and not isinstance(weights, str) and weights and \
            all(isinstance(w, (tuple, list)) and len(w) == 2 for w in weights):
        weights = dict(weights)  # the course's [(layer_name, coefficient), ...]
    if isinstance(style, Mapping):
        if set(style) != set(generated):
            raise ValueError(f"{fn}: layer names differ: style has {sorted(style)}, "
                             f"generated has {sorted(generated)}.")
        if weights is None:
            weights = {name: 1.0 / len(style) for name in style} if style else {}
        if not isinstance(weights, Mapping):
            raise ValueError(f"{fn}: with dict activations `weights` must be a dict (or "
                             "(name, weight) pairs) keyed by layer name.")
        missing = [name for name in weights if name not in style]
        if missing:
            raise ValueError(f"{fn}: `weights` names layers {missing} that are not in the "
                             f"activations {sorted(style)}.")
        items = [(name, style[name], generated[name], weights[name]) for name in weights]
    else:
        style, generated = list(style), list(generated)
        if len(style) != len(generated):
            raise ValueError(f"{fn}: {len(style)} style activations but {len(generated)} "
                             "generated activations; expected the same number of layers.")
        if weights is None:
            weights = [1.0 / len(style)] * len(style) if style else []
        if isinstance(weights, Mapping):
            raise ValueError(f"{fn}: with list activations `weights` must be a list of "
                             "numbers, one per layer.")
        weights = list(weights)
        if len(weights) != len(style):
            raise ValueError(f"{fn}: {len(weights)} weights for {len(style)} layers; "
                             "expected one weight per layer.")
        items = [(i, s, g, w) for i, (s, g, w) in enumerate(zip(style, generated, weights,
                                                                    strict=True))]
    if not items:
        raise ValueError(f"{fn}: no layers given; expected at least one.")
    return items


def style_cost(style_activations, generated_activations, weights=None):
    """Weighted style cost over several layers.

        J_style = sum_l lambda_l * layer_style_cost(a_S[l], a_G[l])

    Args:
      style_activations, generated_activations: both lists (same length) or both
        dicts keyed by layer name (same keys) of (batch, n_H, n_W, n_C)
        activations.
      weights: the lambda_l: None (equal weights 1 / number of layers), a list
        of numbers (list activations), or a dict / list of (name, weight) pairs
        as the course's STYLE_LAYERS (dict activations; only the named layers
        are used).

    Returns:
      A scalar tensor.
    """
    items = _match_style_layers(style_activations, generated_activations, weights)
    total = None
    for name, a_s, a_g, weight in items:
        try:
            cost = layer_style_cost(a_s, a_g)
        except ValueError as e:
            raise ValueError(f"style_cost: layer {name!r}: {e}") from None
        term = _as_float(weight, cost.dtype) * cost
        total = term if total is None else total + term
    return total


def content_cost(a_C, a_G):
    """Content cost, as in the neural-style-transfer assignment.

        J_content = 1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2

    over activations of shape (batch, n_H, n_W, n_C); the sum runs over the
    batch as well.
    """
    a_C, a_G = _float_tensors("content_cost", a_C=a_C, a_G=a_G)
    _check_rank("content_cost", "a_C", a_C, (4,), "(batch, n_H, n_W, n_C)")
    _check_rank("content_cost", "a_G", a_G, (4,), "(batch, n_H, n_W, n_C)")
    _check_same_shape("content_cost", ("a_C", "a_G"), a_C, a_G, "(batch, n_H, n_W, n_C)")
    norm = 4 * _dims(a_G, (1, 2, 3))
    return ops.sum(ops.square(a_C - a_G)) / _as_float(norm, a_G.dtype)


def total_variation(images, kind="absolute", reduction="sum"):
    """Total variation: differences between neighbouring pixels.

        kind="absolute": TV(x) = sum |x[i+1, j, c] - x[i, j, c]| + |x[i, j+1, c] - x[i, j, c]|
        kind="squared":  TV(x) = sum (x[i+1, j, c] - x[i, j, c])^2 + (x[i, j+1, c] - x[i, j, c])^2

    "absolute" equals `tf.image.total_variation`; "squared" is smooth
    (differentiable at 0).

    Args:
      images: (batch, H, W, C) or a single image (H, W, C).
      kind: "absolute" or "squared".
      reduction: "sum" (one scalar for the whole batch) or "none" (one value
        per image, shape (batch,); a scalar for a single image).
    """
    if kind not in ("absolute", "squared"):
        raise ValueError(f"total_variation: `kind` must be 'absolute' or 'squared'; got {kind!r}.")
    if reduction not in ("sum", "none"):
        raise ValueError(f"total_variation: `reduction` must be 'sum' or 'none'; "
                         f"got {reduction!r}.")
    (images,) = _float_tensors("total_variation", images=images)
    _check_rank("total_variation", "images", images, (3, 4), "(batch, H, W, C) or (H, W, C)")
    if _rank(images) is None:
        raise ValueError("total_variation: `images` must have a known rank (3 or 4).")
    dh = images[..., 1:, :, :] - images[..., :-1, :, :]
    dw = images[..., :, 1:, :] - images[..., :, :-1, :]
    elementwise = ops.abs if kind == "absolute" else ops.square
    axes = (-3, -2, -1)
    per_image = ops.sum(elementwise(dh), axis=axes) + ops.sum(elementwise(dw), axis=axes)
    return ops.sum(per_image) if reduction == "sum" else per_image


# ---------------------------------------------------------------------------
# Multiclass SVM (hinge) loss
# ---------------------------------------------------------------------------

def _svm_per_example(true_mask, scores, delta):
    # Summing over every j, the j = y_i term is max(0, delta): subtract it
    # instead of masking it out (one op less per score).
    delta = _as_float(delta, scores.dtype)
    correct = ops.sum(scores * true_mask, axis=-1, keepdims=True)
    margins = ops.relu(scores - correct + delta)
    return ops.sum(margins, axis=-1) - ops.maximum(delta, 0.0)


def multiclass_svm_loss(labels, scores, delta=1.0, reduction="mean"):
    """Multiclass SVM (hinge) loss of CS231n.

        L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + delta),   L = mean_i L_i

    Args:
      labels: integer class ids y_i in [0, C), shape (B,) or (B, 1) (ids out of
        range are not detected, to stay graph and XLA friendly: they give
        meaningless values).
      scores: class scores s, shape (B, C).
      delta: the margin.
      reduction: "mean" (default), "sum", or "none" (the per-example L_i, shape
        (B,), e.g. for `tf.nn.compute_average_loss`).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"multiclass_svm_loss: `reduction` must be 'mean', 'sum' or "
                         f"'none'; got {reduction!r}.")
    (scores,) = _float_tensors("multiclass_svm_loss", scores=scores)
    labels = ops.convert_to_tensor(labels)
    _check_rank("multiclass_svm_loss", "scores", scores, (2,), "(batch, num_classes)")
    _check_rank("multiclass_svm_loss", "labels", labels, (1, 2), "(batch,) or (batch, 1)")
    if _rank(labels) == 2 and labels.shape[1] not in (None, 1):
        raise ValueError("multiclass_svm_loss: `labels` must be class ids of shape (batch,) "
                         f"or (batch, 1); got shape {_shape(labels)} (for one-hot "
                         "labels use MulticlassHinge(sparse=False)).")
    labels = ops.reshape(labels, (-1,))
    if _is_float(labels):
        labels = ops.round(labels)
    num_classes = scores.shape[-1] if scores.shape[-1] is not None else ops.shape(scores)[-1]
    true_mask = ops.one_hot(ops.cast(labels, "int32"), num_classes, dtype=scores.dtype)
    per_example = _svm_per_example(true_mask, scores, delta)
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return ops.sum(per_example)
    return ops.mean(per_example)


@keras.saving.register_keras_serializable(package="dlsuite")
class MulticlassHinge(keras.losses.Loss):
    """Multiclass SVM loss of CS231n as a Keras loss.

        L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + delta)

    per example, reduced by `reduction` (default: mean over the batch, as
    `multiclass_svm_loss`). Unlike `keras.losses.CategoricalHinge`, which uses
    only the largest wrong score (max(0, max_{j != y} s_j - s_y + 1)), every
    wrong class contributes.

    Args:
      delta: the margin.
      sparse: True: `y_true` holds class ids (B,) or (B, 1); False: one-hot
        (B, C).
      reduction, name, dtype: as for `keras.losses.Loss`.
    """

    def __init__(self, delta=1.0, sparse=True, reduction="sum_over_batch_size",
                 name="multiclass_hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = float(delta)
        self.sparse = bool(sparse)

    def call(self, y_true, y_pred):
        if self.sparse:
            return multiclass_svm_loss(y_true, y_pred, delta=self.delta, reduction="none")
        _check_rank("MulticlassHinge", "y_pred", y_pred, (2,), "(batch, num_classes)")
        _check_same_shape("MulticlassHinge", ("y_true", "y_pred"), y_true, y_pred,
                          "(batch, num_classes) (one-hot labels)")
        return _svm_per_example(ops.cast(y_true, y_pred.dtype), y_pred, self.delta)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta, "sparse": self.sparse,
                "dtype": self.dtype}
