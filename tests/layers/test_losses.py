"""Tests for layers.losses: NumPy transcriptions, mining brute force, gradients,
Keras fit, XLA, serialization and MirroredStrategy."""

import keras
import numpy as np
import pytest
from keras import ops

from layers import losses as L
from layers.gradient_check import gradient_check
from tests import keras_testing as kt

if kt.BACKEND == "tensorflow":
    import tensorflow as tf

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-6, atol=1e-9)}
DTYPES = [np.float32, np.float64]


def rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# NumPy transcriptions (plain loops where the formula is a loop)
# ---------------------------------------------------------------------------

def np_triplet_loss(a, p, n, alpha):
    total = 0.0
    for i in range(len(a)):
        total += max(np.sum((a[i] - p[i]) ** 2) - np.sum((a[i] - n[i]) ** 2) + alpha, 0.0)
    return total


def np_distances(e, distance):
    e = e.astype(np.float64)
    b = len(e)
    d = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            d[i, j] = np.sum((e[i] - e[j]) ** 2)
    return np.sqrt(d) if distance == "l2" else d


def np_batch_triplet(labels, e, margin, mining, distance):
    labels = np.asarray(labels).reshape(-1)
    d = np_distances(e, distance)
    b = len(labels)
    pos = [[p for p in range(b) if p != a and labels[p] == labels[a]] for a in range(b)]
    neg = [[n for n in range(b) if labels[n] != labels[a]] for a in range(b)]
    if mining == "all":
        ls = [max(d[a, p] - d[a, n] + margin, 0.0)
              for a in range(b) for p in pos[a] for n in neg[a]]
        active = [x for x in ls if x > 0]
        return sum(ls) / len(active) if active else 0.0
    if mining == "hard":
        ls = [max(max(d[a, p] for p in pos[a]) - min(d[a, n] for n in neg[a]) + margin, 0.0)
              for a in range(b) if pos[a] and neg[a]]
        return float(np.mean(ls)) if ls else 0.0
    ls = []
    for a in range(b):
        if not neg[a]:
            continue
        for p in pos[a]:
            farther = [d[a, n] for n in neg[a] if d[a, n] > d[a, p]]
            d_an = min(farther) if farther else max(d[a, n] for n in neg[a])
            ls.append(max(d[a, p] - d_an + margin, 0.0))
    return float(np.mean(ls)) if ls else 0.0


def np_gram(a):
    b, h, w, c = a.shape
    g = np.zeros((b, c, c))
    for k in range(b):
        unrolled = a[k].reshape(h * w, c).astype(np.float64)
        g[k] = unrolled.T @ unrolled
    return g


def np_layer_style_cost(a_s, a_g):
    _, h, w, c = a_g.shape
    return np.sum((np_gram(a_s) - np_gram(a_g)) ** 2) / (4 * c ** 2 * (h * w) ** 2)


def np_content_cost(a_c, a_g):
    _, h, w, c = a_g.shape
    return np.sum((a_c.astype(np.float64) - a_g) ** 2) / (4 * h * w * c)


def np_total_variation(x, kind):
    f = np.abs if kind == "absolute" else np.square
    x = x.astype(np.float64)
    out = []
    for img in x:
        h, w, _ = img.shape
        tv = 0.0
        for i in range(h):
            for j in range(w):
                if i + 1 < h:
                    tv += f(img[i + 1, j] - img[i, j]).sum()
                if j + 1 < w:
                    tv += f(img[i, j + 1] - img[i, j]).sum()
        out.append(tv)
    return np.array(out)


def np_svm(labels, scores, delta):
    labels = np.asarray(labels).reshape(-1)
    per = np.zeros(len(labels))
    for i, y in enumerate(labels):
        for j in range(scores.shape[1]):
            if j != y:
                per[i] += max(0.0, scores[i, j] - scores[i, y] + delta)
    return per


def random_labelled_batch(seed, b=10, d=4, classes=3, dtype=np.float32):
    r = rng(seed)
    labels = r.integers(0, classes, size=b)
    return labels, r.normal(size=(b, d)).astype(dtype)


# ---------------------------------------------------------------------------
# Values against NumPy
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@kt.jax_subset
def test_triplet_loss_matches_numpy(dtype):
    for seed in range(4):
        a, p, n = rng(seed).normal(size=(3, 6, 5)).astype(dtype)
        for alpha in (0.2, 3.0):
            got = L.triplet_loss(a, p, n, alpha=alpha)
            assert got.dtype == dtype and got.shape == ()
            np.testing.assert_allclose(got, np_triplet_loss(a, p, n, alpha), **TOL[dtype])


def test_triplet_loss_by_hand_and_shape_errors():
    a, p = np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])
    assert float(L.triplet_loss(a, p, np.array([[0.0, 2.0]]))) == 0.0  # 1 - 4 + 0.2 < 0
    np.testing.assert_allclose(L.triplet_loss(a, p, np.array([[0.5, 0.0]])), 0.95)
    with pytest.raises(ValueError, match="`anchor` and `negative`"):
        L.triplet_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 4)))


MODES = [(m, d) for m in L.MINING_MODES for d in L.DISTANCES]


@pytest.mark.parametrize("mining, distance", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_mining_matches_brute_force(mining, distance, dtype):
    cases = [random_labelled_batch(seed, dtype=dtype) for seed in range(4)]
    cases.append(random_labelled_batch(10, b=12, classes=5, dtype=dtype))  # some singletons
    labels, emb = random_labelled_batch(11, b=6, dtype=dtype)
    cases.append((np.zeros(6, int), emb))                     # one class: no negatives
    cases.append((np.arange(6), emb))                         # no positives
    cases.append((labels.reshape(-1, 1).astype(dtype), emb))  # (B, 1) float labels
    for margin in (0.2, 1.0):
        for labels, emb in cases:
            got = L.batch_triplet_loss(labels, emb, margin, mining, distance)
            want = np_batch_triplet(labels, emb, margin, mining, distance)
            assert got.dtype == dtype and got.shape == ()
            np.testing.assert_allclose(got, want, **TOL[dtype])
    for labels, emb in cases[:2]:  # the class reduces the same way
        loss = L.TripletLoss(margin=0.2, mining=mining, distance=distance, dtype=dtype)
        np.testing.assert_allclose(loss(labels, emb),
                                   np_batch_triplet(labels, emb, 0.2, mining, distance),
                                   **TOL[dtype])


@pytest.mark.parametrize("mining, distance", MODES)
def test_degenerate_batches_have_zero_loss_and_finite_gradient(mining, distance):
    emb = rng(6).normal(size=(5, 3))
    emb[3] = emb[1]  # a duplicate: distance 0, where sqrt has no derivative
    for labels in (np.zeros(5), np.arange(5), np.array([0, 1, 1, 1, 0])):
        loss, (grad,) = kt.value_and_gradients(
            lambda e, labels=labels: L.batch_triplet_loss(labels, e, 0.5, mining, distance), emb)
        assert np.all(np.isfinite(grad)), labels
        if len(set(labels)) in (1, 5):  # no negatives, or no positives
            assert float(loss) == 0.0 and not grad.any()
        else:
            np.testing.assert_allclose(loss, np_batch_triplet(labels, emb, 0.5, mining, distance))


def test_semi_hard_selection_by_hand():
    labels = np.array([0, 0, 1, 1])
    # 1-D embeddings; squared distances from 0: to 1 -> 1, to 2.5 -> 6.25, to 4 -> 16.
    emb = np.array([[0.0], [1.0], [2.5], [4.0]])
    # Pair (0, 1): d_ap = 1; negatives 6.25 and 16 both farther: pick 6.25 -> max(1-6.25+m, 0).
    # Fallback: pair (2, 3): d_ap = 2.25; negatives d(2,0) = 6.25, d(2,1) = 2.25 (not >): 6.25.
    # Pair (1, 0): d_ap = 1; negatives 2.25 and 9: pick 2.25 -> 1 - 2.25 + 5 = 3.75 (m = 5).
    # Pair (3, 2): d_ap = 2.25; negatives 16, 9: 9 -> 2.25 - 9 + 5 = -1.75 -> 0.
    m = 5.0
    want = np.mean([max(1 - 6.25 + m, 0), 3.75, max(2.25 - 6.25 + m, 0), 0.0])
    np.testing.assert_allclose(L.batch_triplet_loss(labels, emb, m, "semi_hard"), want)
    # All negatives closer than the positive: fall back to the farthest negative.
    labels, emb = np.array([0, 0, 1]), np.array([[0.0], [3.0], [1.0]])
    want = np.mean([9 - 1 + 0.2, 9 - 4 + 0.2])  # pairs (0, 1) and (1, 0)
    np.testing.assert_allclose(L.batch_triplet_loss(labels, emb, 0.2, "semi_hard"), want)


def test_batch_triplet_errors():
    with pytest.raises(ValueError, match="mining"):
        L.TripletLoss(mining="easy")
    with pytest.raises(ValueError, match="distance"):
        L.TripletLoss(distance="cosine")
    with pytest.raises(ValueError, match="margin"):
        L.TripletLoss(margin=-1.0)
    with pytest.raises(ValueError, match="`embeddings` must have shape"):
        L.batch_triplet_loss(np.zeros(4), np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="`labels`"):
        L.batch_triplet_loss(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="3 entries"):
        L.batch_triplet_loss(np.zeros(3), np.zeros((4, 2)))


@pytest.mark.parametrize("dtype", DTYPES)
@kt.jax_subset
def test_gram_matrix_matches_numpy(dtype):
    for seed in range(3):
        a = rng(seed).normal(size=(2, 3, 4, 5)).astype(dtype)
        got = L.gram_matrix(a)
        assert got.shape == (2, 5, 5) and got.dtype == dtype
        np.testing.assert_allclose(got, np_gram(a), **TOL[dtype])
        np.testing.assert_allclose(got, np.einsum("bhwc,bhwd->bcd", a, a), **TOL[dtype])
    with pytest.raises(ValueError, match=r"`a` must have shape \(batch, n_H, n_W, n_C\)"):
        L.gram_matrix(np.ones((3, 4, 5)))


@pytest.mark.parametrize("dtype", DTYPES)
@kt.jax_subset
def test_style_and_content_cost_match_numpy(dtype):
    for seed in range(3):
        r = rng(seed)
        a_s, a_g, a_c = r.normal(size=(3, 2, 3, 4, 5)).astype(dtype)
        np.testing.assert_allclose(L.layer_style_cost(a_s, a_g), np_layer_style_cost(a_s, a_g),
                                   **TOL[dtype])
        np.testing.assert_allclose(L.content_cost(a_c, a_g), np_content_cost(a_c, a_g),
                                   **TOL[dtype])
        # A single style image is shared by every generated image.
        np.testing.assert_allclose(L.layer_style_cost(a_s[:1], a_g),
                                   np_layer_style_cost(np.concatenate([a_s[:1]] * 2), a_g),
                                   **TOL[dtype])


def test_style_cost_weighting_and_containers():
    r = rng(5)
    s1, g1 = r.normal(size=(2, 1, 4, 4, 3))
    s2, g2 = r.normal(size=(2, 1, 2, 2, 6))
    c1, c2 = np_layer_style_cost(s1, g1), np_layer_style_cost(s2, g2)
    np.testing.assert_allclose(L.style_cost([s1, s2], [g1, g2]), (c1 + c2) / 2)
    np.testing.assert_allclose(L.style_cost([s1, s2], [g1, g2], [0.3, 2.0]), 0.3 * c1 + 2 * c2)
    style, gen = {"a": s1, "b": s2}, {"b": g2, "a": g1}
    np.testing.assert_allclose(L.style_cost(style, gen), (c1 + c2) / 2)
    np.testing.assert_allclose(L.style_cost(style, gen, {"b": 0.7}), 0.7 * c2)
    np.testing.assert_allclose(L.style_cost(style, gen, [("a", 0.2), ("b", 0.4)]),
                               0.2 * c1 + 0.4 * c2)


@pytest.mark.parametrize("args, match", [
    (([1], [1, 2]), "1 style activations but 2"),
    (({"a": 1}, {"b": 1}), "layer names differ"),
    (({"a": 1}, [1]), "both be dicts"),
    (([1, 2], [1, 2], [1.0]), "1 weights for 2 layers"),
    (([1], [1], {"a": 1.0}), "list of numbers"),
    (({"a": 1}, {"a": 1}, {"c": 1.0}), r"names layers \['c'\]"),
    (({"a": 1}, {"a": 1}, [1.0]), "must be a dict"),
    (([], []), "no layers"),
])
def test_style_cost_container_errors(args, match):
    with pytest.raises(ValueError, match=match):
        L.style_cost(*args)


def test_style_and_content_shape_errors():
    a = np.ones((1, 4, 4, 3))
    with pytest.raises(ValueError, match=r"style_cost: layer 'conv2'.*same n_C"):
        L.style_cost({"conv2": a}, {"conv2": np.ones((1, 4, 4, 5))})
    with pytest.raises(ValueError, match="same n_H"):
        L.layer_style_cost(a, np.ones((1, 5, 4, 3)))
    with pytest.raises(ValueError, match="`a_S` must have batch size 1"):
        L.layer_style_cost(np.ones((2, 4, 4, 3)), np.ones((3, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"`a_G` must have shape \(batch"):
        L.layer_style_cost(a, np.ones((4, 4, 3)))
    with pytest.raises(ValueError, match="`a_C` and `a_G` must have the same shape"):
        L.content_cost(a, np.ones((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="dtype"):
        L.content_cost(a.astype(np.float32), a)


@pytest.mark.parametrize("dtype", DTYPES)
@kt.jax_subset
def test_total_variation(dtype):
    for seed in range(3):
        x = rng(seed).normal(size=(3, 4, 5, 2)).astype(dtype)
        for kind in ("absolute", "squared"):
            per_image = L.total_variation(x, kind=kind, reduction="none")
            assert per_image.shape == (3,)
            np.testing.assert_allclose(per_image, np_total_variation(x, kind), **TOL[dtype])
            np.testing.assert_allclose(L.total_variation(x, kind=kind),
                                       np_total_variation(x, kind).sum(), **TOL[dtype])
        if kt.BACKEND == "tensorflow":
            np.testing.assert_allclose(L.total_variation(x, reduction="none"),
                                       tf.image.total_variation(tf.constant(x)), **TOL[dtype])
            np.testing.assert_allclose(L.total_variation(x[0]),
                                       tf.image.total_variation(tf.constant(x[0])), **TOL[dtype])
    with pytest.raises(ValueError, match="kind"):
        L.total_variation(x, kind="l1")
    with pytest.raises(ValueError, match="reduction"):
        L.total_variation(x, reduction="mean")
    with pytest.raises(ValueError, match=r"`images` must have shape"):
        L.total_variation(np.ones((4, 4)))


@pytest.mark.parametrize("dtype", DTYPES)
@kt.jax_subset
def test_multiclass_svm_matches_numpy(dtype):
    for seed in range(4):
        r = rng(seed)
        scores = r.normal(size=(7, 5)).astype(dtype)
        labels = r.integers(0, 5, size=7)
        for delta in (1.0, 0.3, -0.2):
            want = np_svm(labels, scores, delta)
            np.testing.assert_allclose(L.multiclass_svm_loss(labels, scores, delta), want.mean(),
                                       **TOL[dtype])
            np.testing.assert_allclose(L.multiclass_svm_loss(labels[:, None], scores, delta,
                                                             reduction="none"), want, **TOL[dtype])
            np.testing.assert_allclose(L.multiclass_svm_loss(labels, scores, delta, "sum"),
                                       want.sum(), **TOL[dtype])
            sparse = L.MulticlassHinge(delta=delta, dtype=dtype)
            one_hot = L.MulticlassHinge(delta=delta, sparse=False, dtype=dtype)
            np.testing.assert_allclose(sparse(labels, scores), want.mean(), **TOL[dtype])
            np.testing.assert_allclose(one_hot(np.eye(5)[labels], scores), want.mean(),
                                       **TOL[dtype])


def test_multiclass_svm_by_hand_and_errors():
    # CS231n's example: scores (3.2, 5.1, -1.7), correct class 0 -> 2.9.
    np.testing.assert_allclose(L.multiclass_svm_loss([0], [[3.2, 5.1, -1.7]]), 2.9, rtol=1e-6)
    # Keras's CategoricalHinge keeps only the largest wrong score: here 2.9 vs 2.9 + 0.5.
    scores = np.array([[3.2, 5.1, 3.7]], np.float32)
    ours = float(L.MulticlassHinge(sparse=False)(np.eye(3)[[0]], scores))
    keras_value = float(keras.losses.CategoricalHinge()(np.eye(3)[[0]], scores))
    np.testing.assert_allclose([ours, keras_value], [2.9 + 1.5, 2.9], rtol=1e-6)
    with pytest.raises(ValueError, match=r"`scores` must have shape \(batch, num_classes\)"):
        L.multiclass_svm_loss([0], [1.0, 2.0])
    with pytest.raises(ValueError, match="sparse=False"):
        L.multiclass_svm_loss(np.eye(2), np.ones((2, 2)))
    with pytest.raises(ValueError, match="reduction"):
        L.multiclass_svm_loss([0], [[1.0, 2.0]], reduction="max")


# ---------------------------------------------------------------------------
# Gradient checks (float64)
# ---------------------------------------------------------------------------

def _away_from_kinks(values, gap=1e-3):
    assert np.min(np.abs(values)) > gap, "test input too close to a kink; change the seed"


@kt.jax_subset
def test_gradient_check_triplet_loss():
    a, p, n = rng(0).normal(size=(3, 4, 3))
    alpha = 2.0
    basic = np.sum((a - p) ** 2, -1) - np.sum((a - n) ** 2, -1) + alpha
    assert (basic > 0).any() and (basic < 0).any()
    _away_from_kinks(basic)
    assert gradient_check(lambda xs: L.triplet_loss(*xs, alpha=alpha), [a, p, n]) < 1e-7


@pytest.mark.parametrize("mining, distance", MODES)
def test_gradient_check_batch_triplet(mining, distance):
    labels, emb = random_labelled_batch(3, b=7, d=3, dtype=np.float64)
    margin = 1.0
    assert float(L.batch_triplet_loss(labels, emb, margin, mining, distance)) > 0
    d = np_distances(emb, distance)
    # No ties between distances (ties are where the mined triplet switches) ...
    _away_from_kinks(np.diff(np.sort(d[np.triu_indices(7, 1)])))
    # ... and no triplet loss at the hinge.
    same = labels[:, None] == labels[None, :]
    hinge = [d[a, p] - d[a, n] + margin for a in range(7) for p in range(7) for n in range(7)
             if a != p and same[a, p] and not same[a, n]]
    _away_from_kinks(hinge)
    fn = lambda e: L.batch_triplet_loss(labels, e, margin, mining, distance)  # noqa: E731
    assert gradient_check(fn, emb) < 1e-7


@kt.jax_subset
def test_gradient_check_nst_costs():
    r = rng(1)
    a_s, a_g, a_c = r.normal(size=(3, 1, 3, 3, 2))
    weights = r.normal(size=(1, 2, 2))
    assert gradient_check(lambda a: ops.sum(weights * L.gram_matrix(a)), a_g) < 1e-7
    assert gradient_check(lambda a: L.layer_style_cost(a_s, a), a_g) < 1e-7
    assert gradient_check(lambda a: L.layer_style_cost(a, a_g), a_s) < 1e-7
    assert gradient_check(lambda a: L.content_cost(a_c, a), a_g) < 1e-7
    s2, g2 = r.normal(size=(2, 1, 2, 2, 3))
    assert gradient_check(lambda gs: L.style_cost([a_s, s2], gs, [0.4, 1.5]), [a_g, g2]) < 1e-7


@pytest.mark.parametrize("kind", ["absolute", "squared"])
def test_gradient_check_total_variation(kind):
    x = rng(2).normal(size=(2, 3, 3, 2))
    _away_from_kinks(np.diff(x, axis=1))
    _away_from_kinks(np.diff(x, axis=2))
    assert gradient_check(lambda t: L.total_variation(t, kind=kind), x) < 1e-7


@kt.exact_float64("the mean over the batch (ops.mean)")
def test_gradient_check_multiclass_svm():
    r = rng(4)
    scores = r.normal(size=(5, 4)) * 2
    labels = r.integers(0, 4, size=5)
    margins = scores - scores[np.arange(5), labels][:, None] + 1.0
    margins[np.arange(5), labels] = 1.0
    assert (margins > 0).any() and (margins < 0).any()
    _away_from_kinks(margins)
    assert gradient_check(lambda s: L.multiclass_svm_loss(labels, s), scores) < 1e-7
    hinge = L.MulticlassHinge(delta=1.0, dtype="float64")
    assert gradient_check(lambda s: hinge(labels, s), scores) < 1e-7


# ---------------------------------------------------------------------------
# Graph mode, XLA, fit, serialization
# ---------------------------------------------------------------------------

def _xla_cases():
    r = rng(7)
    labels, emb = random_labelled_batch(8, b=12)
    a = r.normal(size=(4, 2, 3, 3, 4)).astype(np.float32)
    scores = r.normal(size=(6, 5)).astype(np.float32)
    svm_labels = r.integers(0, 5, size=6)
    cases = {f"triplet_{m}_{d}": (lambda e, m=m, d=d: L.TripletLoss(0.5, m, d)(labels, e), emb)
             for m, d in MODES}
    cases.update({
        "triplet_loss": (lambda e: L.triplet_loss(e[:4], e[4:8], e[8:]), emb),
        "gram": (lambda x: ops.sum(ops.sin(L.gram_matrix(x))), a[0]),
        "style": (lambda x: L.style_cost({"l": a[1]}, {"l": x}), a[0]),
        "content": (lambda x: L.content_cost(a[2], x), a[0]),
        "tv_absolute": (lambda x: L.total_variation(x), a[0]),
        "tv_squared": (lambda x: L.total_variation(x, "squared"), a[0]),
        "svm": (lambda s: L.multiclass_svm_loss(svm_labels, s), scores),
        "hinge": (lambda s: L.MulticlassHinge()(svm_labels, s), scores),
    })
    return cases


@pytest.mark.parametrize("name", list(_xla_cases()))
def test_xla_and_graph_match_eager(name):
    fn, x = _xla_cases()[name]
    if kt.BACKEND != "tensorflow":  # JAX: op by op against jax.jit (shapes are static)
        import jax

        value_and_grad = jax.value_and_grad(fn)
        eager = value_and_grad(x)
        assert np.isfinite(float(eager[0])) and float(np.abs(eager[1]).sum()) > 0
        for g, e in zip(jax.jit(value_and_grad)(x), eager, strict=True):
            np.testing.assert_allclose(g, e, rtol=2e-5, atol=1e-5)
        return
    x = tf.constant(x)

    def value_and_grad(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            value = fn(t)
        return value, tape.gradient(value, t)

    eager = value_and_grad(x)
    dynamic = tf.function(value_and_grad, input_signature=[
        tf.TensorSpec([None] * x.shape.rank, x.dtype)])
    xla = tf.function(value_and_grad, jit_compile=True)
    assert np.isfinite(eager[0].numpy()) and float(tf.reduce_sum(tf.abs(eager[1]))) > 0
    for got in (dynamic(x), xla(x)):
        for g, e in zip(got, eager, strict=True):
            np.testing.assert_allclose(g, e, rtol=2e-5, atol=1e-5)


def _clustered_embeddings_data(seed=0, classes=4, per_class=8, dim=5):
    r = rng(seed)
    centers = r.normal(size=(classes, dim)) * 2
    labels = np.repeat(np.arange(classes), per_class)
    x = (centers[labels] + r.normal(size=(len(labels), dim))).astype(np.float32)
    return x, labels


@pytest.mark.parametrize("mining", L.MINING_MODES)
def test_triplet_loss_in_fit(mining):
    x, labels = _clustered_embeddings_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3), keras.layers.UnitNormalization()])
    loss = L.TripletLoss(margin=0.5, mining=mining)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, labels, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    # evaluate on one batch reports exactly the loss of that batch.
    np.testing.assert_allclose(model.evaluate(x, labels, batch_size=len(x), verbose=0),
                               loss(labels, model(x)), rtol=1e-5)


def test_multiclass_hinge_in_fit():
    x, labels = _clustered_embeddings_data(seed=1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=L.MulticlassHinge())
    history = model.fit(x, labels, batch_size=8, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_allclose(model.evaluate(x, labels, batch_size=len(x), verbose=0),
                               np_svm(labels, model.predict(x, verbose=0), 1.0).mean(),
                               rtol=1e-5)


@pytest.mark.parametrize("loss", [
    L.TripletLoss(margin=0.7, mining="hard", distance="l2", name="tl"),
    L.TripletLoss(),
    L.MulticlassHinge(delta=0.5, sparse=False, reduction="sum"),
    L.MulticlassHinge(),
], ids=["triplet_custom", "triplet_default", "hinge_custom", "hinge_default"])
def test_serialization_round_trip(loss):
    config = loss.get_config()
    clone = type(loss).from_config(config)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert keras.losses.serialize(loss)["registered_name"] == f"dlsuite>{type(loss).__name__}"
    labels, emb = random_labelled_batch(2, b=8, classes=3)
    y_true = np.eye(4)[labels % 4] if getattr(loss, "sparse", True) is False else labels
    for other in (clone, restored):
        assert type(other) is type(loss) and other.get_config() == config
        np.testing.assert_allclose(other(y_true, emb), loss(y_true, emb))


def test_compiled_loss_survives_keras_save_and_load(tmp_path):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=L.TripletLoss(margin=0.3, mining="hard", distance="l2"))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, L.TripletLoss)
    assert loaded.loss.get_config() == model.loss.get_config()


# ---------------------------------------------------------------------------
# MirroredStrategy: two replicas against one device
# ---------------------------------------------------------------------------

def _dense_model(in_dim, out_dim, seed):
    r = rng(seed)
    model = keras.Sequential([keras.Input((in_dim,)), keras.layers.Dense(out_dim)])
    model.set_weights([r.normal(size=(in_dim, out_dim)).astype(np.float32) * 0.5,
                       r.normal(size=(out_dim,)).astype(np.float32) * 0.1])
    return model


def _conv_model(seed):
    r = rng(seed)
    model = keras.Sequential([keras.Input((4, 4, 2)),
                              keras.layers.Conv2D(3, 3, padding="same", activation="tanh")])
    model.set_weights([r.normal(size=(3, 3, 2, 3)).astype(np.float32) * 0.5,
                       r.normal(size=(3,)).astype(np.float32) * 0.1])
    return model


def _strategy_cases():
    """name -> (build_model, x, y, loss(y, out, global_batch, replicas), decomposable)."""
    r = rng(3)
    images = r.normal(size=(8, 4, 4, 2)).astype(np.float32)
    targets = r.normal(size=(8, 4, 4, 3)).astype(np.float32)
    a_s = r.normal(size=(1, 4, 4, 3)).astype(np.float32)
    a_s2 = r.normal(size=(1, 2, 2, 3)).astype(np.float32)
    x_emb = r.normal(size=(8, 5)).astype(np.float32)
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])  # both classes in each replica's half
    x_svm = r.normal(size=(8, 5)).astype(np.float32)
    y_svm = r.integers(0, 4, size=8)
    triplet_x = r.normal(size=(8, 3, 5)).astype(np.float32)

    def pool(t):
        return tf.nn.avg_pool2d(t, 2, 2, "VALID")

    def triplet_model():
        model = keras.Sequential([keras.Input((3, 5)), keras.layers.Dense(4)])
        model.set_weights(_dense_model(5, 4, 7).get_weights())
        return model

    mined = L.TripletLoss(margin=4.0, mining="semi_hard")
    return {
        "triplet_loss": (triplet_model, triplet_x, np.zeros(8, np.float32),
                         lambda y, o, b, n: L.triplet_loss(o[:, 0], o[:, 1], o[:, 2], 1.0), True),
        "TripletLoss": (lambda: _dense_model(5, 3, 0), x_emb, labels,
                        lambda y, o, b, n: tf.nn.scale_regularization_loss(mined(y, o)), False),
        "multiclass_svm_loss": (lambda: _dense_model(5, 4, 1), x_svm, y_svm,
                                lambda y, o, b, n: tf.nn.compute_average_loss(
                                    L.multiclass_svm_loss(y, o, reduction="none"),
                                    global_batch_size=b), True),
        "MulticlassHinge": (lambda: _dense_model(5, 4, 1), x_svm, y_svm,
                            lambda y, o, b, n: L.MulticlassHinge(reduction="sum")(y, o) / b,
                            True),
        "content_cost": (lambda: _conv_model(4), images, targets,
                         lambda y, o, b, n: L.content_cost(y, o), True),
        "style_cost": (lambda: _conv_model(5), images, targets,
                       lambda y, o, b, n: L.style_cost([a_s, a_s2], [o, pool(o)], [1.0, 0.5]),
                       True),
        "total_variation": (lambda: _conv_model(6), images, targets,
                            lambda y, o, b, n: L.total_variation(o) +
                            L.total_variation(o, "squared"), True),
    }


def _train(strategy, build, x, y, loss_fn, steps=2):
    replicas = strategy.num_replicas_in_sync
    global_batch = len(x)
    with strategy.scope():
        model = build()
        optimizer = keras.optimizers.SGD(0.05)

    def value_fn(ctx):
        per = global_batch // replicas
        i = ctx.replica_id_in_sync_group
        return tf.constant(x[i * per:(i + 1) * per]), tf.constant(y[i * per:(i + 1) * per])

    inputs = strategy.experimental_distribute_values_from_function(value_fn)

    @tf.function
    def step(xb, yb):
        def replica_step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True), global_batch, replicas)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss
        per_replica = strategy.run(replica_step, args=(xb, yb))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    step_losses = [float(step(*inputs)) for _ in range(steps)]
    return step_losses, model.get_weights()


@pytest.mark.parametrize("name", list(_strategy_cases()))
def test_mirrored_strategy_matches_one_device(name, two_cpu_strategy):
    build, x, y, loss_fn, decomposable = _strategy_cases()[name]
    assert two_cpu_strategy.num_replicas_in_sync == 2
    mirrored_losses, mirrored_weights = _train(two_cpu_strategy, build, x, y, loss_fn)
    assert np.all(np.isfinite(mirrored_losses)) and mirrored_losses[0] > 0
    initial = build().get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(initial, mirrored_weights, strict=True))
    if decomposable:
        one_losses, one_weights = _train(tf.distribute.get_strategy(), build, x, y, loss_fn)
        np.testing.assert_allclose(mirrored_losses, one_losses, rtol=1e-5, atol=1e-6)
        for a, b in zip(mirrored_weights, one_weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    else:
        # The first step's loss is the mean of the two halves' batch losses.
        model = build()
        halves = [loss_fn(y[i:i + 4], model(x[i:i + 4]), 8, 1) for i in (0, 4)]
        np.testing.assert_allclose(mirrored_losses[0], np.mean(halves), rtol=1e-5)
