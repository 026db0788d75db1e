"""Embeddings: the losses against NumPy, training steps, evaluation against
scipy and gensim, analogies, debiasing and the vector files."""

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

import optimizers
from apps.core import config as config_lib
from apps.core.errors import UserError
from apps.embeddings import cooccurrence as glove_lib
from apps.embeddings import data as data_lib
from apps.embeddings import debias as debias_lib
from apps.embeddings import evaluation as eval_lib
from apps.embeddings import fused
from apps.embeddings import model as model_lib
from apps.embeddings.modes import answer, run_queries
from apps.embeddings.vectors import OutOfVocabulary, WordVectors
from configs.embeddings import get_config

GLOVE_FILE = data_lib.gensim_test_data("test_glove.txt")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _chunks(method, per_pair=False, per_block=0, window=2, k=3, chunks=2, size=40, vocab=12):
    """A batch of `chunks` examples from data.Word2VecExamples on a corpus of a few
    frequent words (so that negatives often equal targets), with sentence breaks
    and subsampling; returns (batch, the example maker)."""
    rng = np.random.default_rng(0)
    n = chunks * size
    ids = rng.integers(0, vocab, n).astype(np.int32)
    sentence = np.cumsum(rng.random(n) < 0.1).astype(np.int32)
    counts = np.bincount(ids, minlength=vocab) * 50  # so that sample drops some
    margin = 2 * window
    make = data_lib.Word2VecExamples(counts, size, margin, window, k, 1e-2, method,
                                     share_negatives=not per_pair, negatives_per_block=per_block)
    examples = []
    for c in range(chunks):
        lo = c * size - margin
        span = np.arange(lo, lo + size + 2 * margin)
        inside = (span >= 0) & (span < n)
        inputs = {"tokens": np.where(inside, ids[np.clip(span, 0, n - 1)], -1),
                  "sentence": np.where(inside, sentence[np.clip(span, 0, n - 1)], -1)}
        examples.append(make(inputs, None, tf.constant([3, c], tf.int64))[0])
    return {key: np.stack([x[key].numpy() for x in examples]) for key in examples[0]}, make


def _notes_loss(batch, e, theta, method, window, k, per_pair, per_block):
    """The notes' objective, pair by pair: -log s(theta_t . h) - sum_n w log s(-theta_n . h),
    a negative equal to the target skipped, w = 1 (or k / N for a block's N draws)."""
    context = data_lib.Word2VecExamples.context(batch)
    losses = np.zeros(len(batch["tokens"]))
    for b in range(len(losses)):
        for c in range(batch["mask"].shape[1]):
            m = batch["mask"][b, c]
            centre = batch["tokens"][b, window + c]
            if per_block:
                negatives = batch["negatives"][b, c // fused.BLOCK]
                weight = k / per_block
            else:
                negatives, weight = batch["negatives"][b, c], 1.0
            if method == "skipgram":  # the centre word predicts each target in its window
                items = [(e[centre], context[b, c, j],
                          negatives[j * k:(j + 1) * k] if per_pair else negatives)
                         for j in np.flatnonzero(m)]
            elif m.any():  # CBOW: the mean of the window predicts the centre word
                items = [(e[context[b, c][m]].mean(axis=0), centre, negatives)]
            else:
                items = []
            for h, target, draws in items:
                losses[b] -= np.log(_sigmoid(theta[target] @ h))
                for n in draws:
                    if n != target:
                        losses[b] -= weight * np.log(_sigmoid(-theta[n] @ h))
    return losses


@pytest.mark.parametrize("method,per_pair,per_block", [
    ("skipgram", True, 0), ("skipgram", False, 0), ("skipgram", False, 5),
    ("cbow", False, 0), ("cbow", False, 5)])
def test_negative_sampling_loss_matches_a_numpy_transcription(method, per_pair, per_block):
    # The data pipeline's arrays (pairs, negatives and their weights) and the model's
    # fused loss together against the objective written pair by pair.
    window, k = 2, 3
    batch, _ = _chunks(method, per_pair, per_block, window, k)
    model = model_lib.build(method, 12, 8, per_block > 0)
    rng = np.random.default_rng(1)
    model.input_vectors.assign(rng.normal(size=(12, 8)).astype(np.float32))
    model.output_vectors.assign(rng.normal(size=(12, 8)).astype(np.float32))
    got = model(batch)["loss"].numpy()
    expected = _notes_loss(batch, model.input_vectors.numpy(), model.output_vectors.numpy(),
                           method, window, k, per_pair, per_block)
    assert batch["mask"].sum() > 20
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def _random_inputs(method, per_block, seed=0, vocab=9, batch=4, slots=37, window=2, k=3,
                   block=8):
    rng = np.random.default_rng(seed)
    blocks = -(-slots // block)
    return dict(
        method=method,
        tokens=rng.integers(-1, vocab, (batch, slots + 2 * window)).astype(np.int32),
        mask=rng.random((batch, slots, 2 * window)) < 0.6,
        negatives=rng.integers(0, vocab, (batch, blocks if per_block else slots, k)).astype(
            np.int32),
        negative_weight=rng.random((batch, slots, k)), block=block, per_block=per_block)


def _gather_loss(e, theta, method, tokens, mask, negatives, negative_weight, block, per_block,
                 dense=None):
    """fused.loss's sum written with tf.gather, for autodiff to differentiate."""
    w = mask.shape[-1] // 2
    c = mask.shape[1]
    offsets = np.concatenate([np.arange(-w, 0), np.arange(1, w + 1)])
    tokens = np.maximum(tokens, 0)
    centre, context = tokens[:, w:w + c], tokens[:, w + np.arange(c)[:, None] + offsets]
    if per_block:
        negatives = negatives[:, np.arange(c) // block]
    inside = tf.constant(mask, e.dtype)
    if method == "skipgram":
        h = tf.gather(e, centre)
        x = tf.reduce_sum(tf.gather(theta, context) * h[:, :, None], -1)
        positive = tf.reduce_sum(inside * tf.nn.softplus(-x), [1, 2])
    else:
        count = tf.reduce_sum(inside, -1, keepdims=True)
        h = tf.reduce_sum(inside[..., None] * tf.gather(e, context), 2) / tf.maximum(count, 1)
        x = tf.reduce_sum(tf.gather(theta, centre) * h, -1)
        positive = tf.reduce_sum(tf.cast(count[..., 0] > 0, e.dtype) * tf.nn.softplus(-x), 1)
    x = tf.reduce_sum(tf.gather(theta, negatives) * h[:, :, None], -1)
    return positive + tf.reduce_sum(negative_weight * tf.nn.softplus(x), [1, 2])


@pytest.mark.parametrize("method", ["skipgram", "cbow"])
@pytest.mark.parametrize("per_block", [False, True])
@pytest.mark.parametrize("dense", [False, True])
def test_fused_gradient_matches_numeric_and_autodiff_gradients(method, per_block, dense):
    from layers import gradient_check

    rng = np.random.default_rng(7)
    inputs = {**_random_inputs(method, per_block), "dense": dense}
    e, theta = rng.normal(size=(9, 5)), rng.normal(size=(9, 5))
    weights = tf.constant(rng.normal(size=4))  # a different weight per example

    def total(loss_fn, e, theta):
        return tf.reduce_sum(weights * loss_fn(e, theta, **inputs))

    if dense:  # numeric vs automatic gradients, float64 (the sparse ones equal these below)
        check = tf.function(lambda t: total(fused.loss, t[0] * 1.0, t[1] * 1.0))
        assert gradient_check(check, [e, theta]) < 1e-7
    # Against autodiff of the same sum written with tf.gather: the same loss, and each
    # table's gradient one row per distinct word of the batch, summed.
    tables = [tf.constant(e), tf.constant(theta)]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(tables)
        ours = total(fused.loss, *tables)
        reference = total(_gather_loss, *tables)
    assert float(ours) == pytest.approx(float(reference), rel=1e-12)
    for got, autodiff in zip(tape.gradient(ours, tables), tape.gradient(reference, tables),
                             strict=True):
        expected = tf.convert_to_tensor(autodiff).numpy()
        np.testing.assert_allclose(tf.convert_to_tensor(got).numpy(), expected,
                                   rtol=1e-10, atol=1e-13)
        if dense:
            assert not isinstance(got, tf.IndexedSlices) and got.shape == (9, 5)
        else:  # one row per distinct word of the batch
            assert isinstance(got, tf.IndexedSlices)
            words = got.indices.numpy()
            assert len(set(words)) == len(words)
            assert np.abs(expected).sum(1).nonzero()[0].tolist() == sorted(
                w for w in words if np.abs(expected[w]).sum())


@pytest.mark.parametrize("method", ["skipgram", "cbow"])
@pytest.mark.parametrize("dense", [False, True])
def test_fused_loss_in_shards_equals_one_computation(method, dense):
    # The batch cut in 2 parts, each its own forward and backward computation.
    inputs = {**_random_inputs(method, True, seed=3), "dense": dense}
    rng = np.random.default_rng(4)
    tables = [tf.constant(rng.normal(size=(9, 5))), tf.constant(rng.normal(size=(9, 5)))]
    results = []
    for shards in (1, 2):
        with tf.GradientTape() as tape:
            tape.watch(tables)
            loss = fused.loss(*tables, **inputs, shards=shards)
            total = tf.reduce_sum(loss * tf.range(1.0, 5.0, dtype=tf.float64))
        grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(total, tables)]
        results.append((loss.numpy(), grads))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    for a, b in zip(results[1][1], results[0][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_fused_loss_with_a_batch_known_only_when_it_runs():
    # As a replica's batch under tf.distribute (rebatched): shape (None, ...).
    inputs = _random_inputs("skipgram", True, seed=5)
    method, block = inputs.pop("method"), inputs.pop("block")
    per_block = inputs.pop("per_block")
    rng = np.random.default_rng(6)
    e, theta = (tf.constant(rng.normal(size=(9, 5))) for _ in range(2))
    arrays = [inputs[k] for k in ("tokens", "mask", "negatives", "negative_weight")]
    signature = [tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in arrays]

    def run(*arrays):
        with tf.GradientTape() as tape:
            tape.watch([e, theta])
            loss = fused.loss(e, theta, method, *arrays, block=block, per_block=per_block)
            total = tf.reduce_sum(loss)
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(total, [e, theta])]

    loss, grads = tf.function(run, input_signature=signature)(*arrays)
    expected_loss, expected_grads = run(*arrays)
    np.testing.assert_allclose(loss.numpy(), expected_loss.numpy(), rtol=1e-12)
    for got, expected in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-14)


def test_banded_layout_takes_out_and_puts_back_each_window():
    # band: row g of block j at column g + W + o is the pair (slot jG + g, offset o).
    layout = fused.Layout(batch=1, c=10, w=2, k=1, block=4)
    assert (layout.blocks, layout.cp) == (3, 12)
    slot, column = np.meshgrid(np.arange(4), np.arange(4 + 4), indexing="ij")
    product = np.stack([100 * (4 * j + slot) + column for j in range(3)])[None]  # (1, 3, 4, 8)
    band = layout.band(tf.constant(product)).numpy()[0]  # (12, 4)
    offsets = np.array([-2, -1, 1, 2])
    for i in range(12):
        np.testing.assert_array_equal(band[i], 100 * i + i % 4 + 2 + offsets)
    x = np.arange(12 * 4).reshape(1, 12, 4)
    back = layout.unband(tf.constant(x)).numpy()
    np.testing.assert_array_equal(layout.band(tf.constant(back)).numpy(), x)
    assert back.sum() == x.sum()  # zeros off the band
    # CBOW's window sums: slot i adds weights[i, o] rows[i + W + o]; and the transpose.
    rng = np.random.default_rng(8)
    weights, rows = rng.random((1, 12, 4)), rng.random((1, 16, 3))
    summed = layout.window_sum(tf.constant(weights), tf.constant(rows)).numpy()
    for i in range(12):
        expected = sum(weights[0, i, j] * rows[0, i + 2 + o] for j, o in enumerate(offsets))
        np.testing.assert_allclose(summed[0, i], expected, rtol=1e-12)
    x = rng.random((1, 12, 3))
    transposed = layout.window_sum_transposed(tf.constant(weights), tf.constant(x)).numpy()
    assert transposed.shape == rows.shape
    np.testing.assert_allclose(np.sum(transposed * rows), np.sum(summed * x), rtol=1e-12)


def test_glove_loss_matches_a_numpy_transcription():
    model = model_lib.build("glove", 20, 4)
    rng = np.random.default_rng(2)
    i, j = rng.integers(0, 20, (2, 5)), rng.integers(0, 20, (2, 5))
    log_x, weight = rng.normal(size=(2, 5)), rng.random((2, 5))
    got = model_lib.glove_loss(model({"i": i, "j": j}), log_x.astype(np.float32),
                               weight.astype(np.float32)).numpy()
    w, wt = model.w.numpy(), model.w_tilde.numpy()
    b, bt = model.b.numpy(), model.b_tilde.numpy()
    expected = (weight * ((w[i] * wt[j]).sum(-1) + b[i] + bt[j] - log_x) ** 2).sum(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(model.vectors().numpy(), w + wt)


def _losses(model, optimizer, batch, loss_fn, steps):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(model(batch)))
        variables = model.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return [float(step()) for _ in range(steps)]


def test_skipgram_loss_decreases_with_gradient_descent():
    corpus_ids = np.tile(np.arange(12, dtype=np.int32), 20)
    make = data_lib.Word2VecExamples(np.full(12, 20), 240, 4, 2, 3, 0.0, "skipgram",
                                     share_negatives=False)
    inputs = {"tokens": np.pad(corpus_ids, 4, constant_values=-1),
              "sentence": np.pad(np.zeros(240, np.int32), 4, constant_values=-1)}
    example, _ = make(inputs, tf.constant(0), tf.constant([0, 0], tf.int64))
    batch = {k: v.numpy()[None] for k, v in example.items()}
    model = model_lib.build("skipgram", 12, 8)
    losses = _losses(model, optimizers.Momentum(0.01, momentum=0.0), batch,
                     lambda out: out["loss"], 40)
    # The output vectors start at zero (ln 2 per logit); random negatives that are
    # true neighbours keep the loss from going to zero.
    logits = np.sum(batch["mask"]) + np.sum(batch["negative_weight"])
    assert losses[0] == pytest.approx(np.log(2) * logits, rel=1e-5)
    assert losses[-1] < 0.6 * losses[0]


def test_glove_loss_decreases_with_the_projects_adagrad():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 15, 400)
    table = glove_lib.cooccurrence(ids, np.zeros(400), 15, window=3)
    split = glove_lib.glove_examples(table, 64, 1, 0, 100.0, 0.75)
    model = model_lib.build("glove", 15, 6)
    packed = {k: np.asarray(column) for k, column in split.inputs.items()}
    inputs = {k: packed[k] for k in ("i", "j")}
    losses = _losses(model, optimizers.AdaGrad(0.1), inputs,
                     lambda out: model_lib.glove_loss(out, packed["log_x"], packed["weight"]),
                     40)
    assert losses[-1] < 0.3 * losses[0]


def test_spearman_equals_scipys_with_ties():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 6, 50).astype(float)  # many ties
    y = x + rng.normal(size=50)
    assert eval_lib.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-12)
    np.testing.assert_allclose(eval_lib.rank([3, 1, 3, 2]), [3.5, 1, 3.5, 2])


def test_word_similarity_and_analogies_agree_with_gensim(tmp_path):
    from gensim.models import KeyedVectors

    # Vectors where country = city + a shared offset + noise, so some analogies are right.
    analogies = eval_lib.load_analogies(data_lib.gensim_test_data("questions-words.txt"))
    name, questions = analogies.sections[0]  # capital-common-countries
    capitals = sorted({(q[0], q[1]) for q in questions} | {(q[2], q[3]) for q in questions})
    rng = np.random.default_rng(5)
    offset = rng.normal(size=20)
    words, rows = [], []
    for city, country in capitals:
        base = rng.normal(size=20)
        words += [city, country]
        rows += [base, base + offset + rng.normal(scale=1.2, size=20)]
    pairs = eval_lib.load_word_pairs(data_lib.gensim_test_data("wordsim353.tsv"), "ws353")
    for word in sorted({w for p in pairs.pairs[:80] for w in p} - set(words)):
        words.append(word)
        rows.append(rng.normal(size=20))
    vectors = WordVectors(words, np.array(rows))
    path = vectors.save_word2vec_text(str(tmp_path / "v.txt"))
    theirs = KeyedVectors.load_word2vec_format(path)

    ours = eval_lib.word_similarity(vectors, pairs)
    _, (rho, _), oov_percent = theirs.evaluate_word_pairs(
        data_lib.gensim_test_data("wordsim353.tsv"))
    assert ours["spearman"] == pytest.approx(rho, abs=1e-4)
    assert ours["coverage"] == pytest.approx(1 - oov_percent / 100)
    assert ours["pairs"] >= 80

    subset = tmp_path / "questions.txt"
    subset.write_text(f": {name}\n" + "\n".join(" ".join(q) for q in questions) + "\n")
    result = eval_lib.analogy(vectors, eval_lib.load_analogies(str(subset)))
    accuracy, _ = theirs.evaluate_word_analogies(str(subset), case_insensitive=True)
    assert 0.1 < result["analogy_accuracy"] < 0.95
    assert result["analogy_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert result["analogy_semantic_accuracy"] == result["analogy_accuracy"]
    assert result["analogy_syntactic_questions"] == 0


def _hand_built():
    # Axes: gender (+ female), royalty, job, noise, pronoun.
    words = ["man", "woman", "king", "queen", "nurse", "doctor", "he", "she"]
    rows = [[-1, 0, 0, .1, 0], [1, 0, 0, .1, 0], [-1, 2, 0, .2, 0], [1, 2, 0, .2, 0],
            [.5, 0, 1, 0, 0], [-.3, 0, 1, .1, 0], [-1, 0, 0, 0, 1], [1, 0, 0, 0, 1]]
    return WordVectors(words, np.array(rows, np.float32))


def test_analogy_nearest_and_similarity_on_hand_built_vectors():
    vectors = _hand_built()
    assert vectors.analogy("man", "woman", "king")[0][0] == "queen"
    assert vectors.analogy("woman", "man", "queen")[0][0] == "king"
    # The query words are excluded even where they score highest.
    assert {w for w, _ in vectors.analogy("man", "woman", "king", k=5)}.isdisjoint(
        {"man", "woman", "king"})
    assert vectors.nearest("queen", 1)[0][0] == "king"
    a, b = vectors.unit[2], vectors.unit[3]
    assert vectors.similarity("king", "queen") == pytest.approx(float(a @ b))
    assert answer(vectors, "man:woman::king:?")[1][0][0] == "queen"
    assert answer(vectors, "King, Queen") == ("similarity", pytest.approx(float(a @ b)))


def test_out_of_vocabulary_queries_are_a_clear_message(capsys):
    vectors = _hand_built()
    with pytest.raises(OutOfVocabulary, match="'prince' is not in the vocabulary \\(8 words\\)"):
        vectors.analogy("man", "woman", "prince")
    run_queries(vectors, ["prince", "king"], k=2)  # one unknown: reported, not fatal
    out = capsys.readouterr().out
    assert "prince: 'prince' is not in the vocabulary" in out and "king: queen" in out
    with pytest.raises(UserError, match="not in the vocabulary"):
        run_queries(vectors, ["prince"])
    with pytest.raises(UserError, match="a:b::c:"):
        answer(vectors, "man:woman::")


def test_bias_direction_neutralize_and_equalize():
    vectors = _hand_built()
    g, _ = debias_lib.bias_direction(vectors, [("woman", "man")], "difference")
    unit = vectors.unit
    expected = unit[1] - unit[0]
    np.testing.assert_allclose(g, expected / np.linalg.norm(expected), atol=1e-6)
    # With parallel pair differences, the first principal component is that direction too.
    g_pca, _ = debias_lib.bias_direction(vectors, [("woman", "man"), ("she", "he")], "pca")
    np.testing.assert_allclose(g_pca, [1, 0, 0, 0, 0], atol=1e-6)

    nurse = debias_lib.neutralize(vectors.vector("nurse"), g_pca)
    assert debias_lib.projection(vectors.vector("nurse"), g_pca) > 0.4
    assert nurse @ g_pca == pytest.approx(0, abs=1e-12)
    assert np.linalg.norm(nurse) == pytest.approx(1)

    a, b = debias_lib.equalize(vectors.vector("queen"), vectors.vector("king"), g_pca)
    assert a @ g_pca == pytest.approx(-(b @ g_pca)) and a @ g_pca > 0
    assert np.linalg.norm(a) == pytest.approx(1) and np.linalg.norm(b) == pytest.approx(1)
    np.testing.assert_allclose(a - (a @ g_pca) * g_pca, b - (b @ g_pca) * g_pca, atol=1e-12)
    # A neutralized word is then equally similar to both words of the pair.
    assert nurse @ a == pytest.approx(nurse @ b)


def test_debias_on_pretrained_glove_vectors():
    vectors = WordVectors.load(GLOVE_FILE)
    debiased, report = debias_lib.debias(
        vectors, debias_lib.parse_pairs("she:he,her:his"), debias_lib.parse_pairs("she:he"),
        [], ["people", "year", "percent"], method="pca")
    assert report["definitional_pairs_used"] == ["she:he", "her:his"]
    assert report["neutralized_words"] == len(vectors) - 4
    assert max(abs(p["before"]) for p in report["words"].values()) > 0.01
    for p in report["words"].values():
        assert p["after"] == pytest.approx(0, abs=1e-6)
    before, after = report["equalized"]["she:he"]["before"], report["equalized"]["she:he"]["after"]
    assert after[0] == pytest.approx(-after[1]) and abs(before[0] + before[1]) > 1e-3
    g, _ = debias_lib.bias_direction(vectors, [("she", "he"), ("her", "his")], "pca")
    she, he = debiased.vector("she"), debiased.vector("he")
    people = debiased.vector("people")
    assert people @ g == pytest.approx(0, abs=1e-6)
    assert people @ she == pytest.approx(people @ he, abs=1e-6)


def test_glove_format_loader_matches_gensim(tmp_path):
    from gensim.models import KeyedVectors

    ours = WordVectors.load(GLOVE_FILE)
    theirs = KeyedVectors.load_word2vec_format(GLOVE_FILE, no_header=True)
    assert ours.words == list(theirs.index_to_key) and ours.dim == 50
    np.testing.assert_allclose(ours.matrix, theirs.vectors)
    # word2vec text format round trip (with its header line).
    path = ours.save_word2vec_text(str(tmp_path / "w2v.txt"))
    assert open(path).readline() == f"{len(ours)} 50\n"
    again = WordVectors.load(path)
    assert again.words == ours.words
    np.testing.assert_allclose(again.matrix, ours.matrix, rtol=1e-5)
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(UserError, match="bad.txt:2: expected a word and 3 numbers"):
        WordVectors.load(str(bad))


def test_config_rules_name_the_field():
    for variant in ("", "tiny", "cbow", "glove", "text", "tfds"):
        config_lib.check_app(get_config(variant))
    for field, value, words in [("method", "fasttext", "config.method = 'fasttext'"),
                                ("word2vec.window", 0, "config.word2vec.window = 0"),
                                ("debias.equalize", "she-he", "config.debias.equalize"),
                                ("xla", True, "config.xla = True")]:
        config = get_config()
        section, _, name = field.rpartition(".")
        (config[section] if section else config)[name] = value
        with pytest.raises(UserError, match=words.replace(".", r"\.").replace("(", r"\(")):
            config_lib.check_app(config)


@pytest.mark.parametrize("indices", [[3, 1, 3, 7, 3], [3, 1, 7]],
                         ids=["duplicate rows", "distinct rows"])
@pytest.mark.parametrize("shape", [(10, 4), (10,)])
@pytest.mark.parametrize("strategy", [False, True])
def test_sparse_adagrad_equals_the_projects_adagrad_on_the_dense_gradient(
        indices, shape, strategy, monkeypatch):
    from apps.embeddings import sparse

    xla_calls = []
    for name in ("_update_rows", "_update_all"):
        update = getattr(sparse, name)
        monkeypatch.setattr(sparse, name, lambda *args, update=update, name=name: (
            xla_calls.append(name), update(*args))[1])
    rng = np.random.default_rng(6)
    start = rng.normal(size=shape).astype(np.float32)
    indices = tf.constant(indices)  # duplicate rows: their slices add up
    # Outside tf.distribute the rows are updated by one XLA computation; under a
    # strategy by TensorFlow's scatter ops.
    scope = (tf.distribute.OneDeviceStrategy("/cpu:0") if strategy
             else tf.distribute.get_strategy())
    results = []
    # SparseAdaGrad on the sparse gradient and on the same gradient made dense.
    for make, dense in ((optimizers.AdaGrad, True), (sparse.SparseAdaGrad, False),
                        (sparse.SparseAdaGrad, True)):
        with scope.scope():
            table = tf.Variable(start)
            optimizer = make(0.1)
            optimizer.build([table])

        @tf.function
        def step(table=table, optimizer=optimizer, dense=dense):
            def replica():
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(tf.gather(table, indices) ** 3)
                grad = tape.gradient(loss, table)
                assert isinstance(grad, tf.IndexedSlices)
                optimizer.apply([tf.convert_to_tensor(grad) if dense else grad], [table])

            scope.run(replica)

        for _ in range(3):
            step()
        results.append(table.numpy())
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-6)
        assert not np.allclose(result, start) and np.array_equal(result[0], start[0])
    assert sorted(set(xla_calls)) == ([] if strategy else ["_update_all", "_update_rows"])


def test_padded_sizes_are_powers_of_two_within_the_limit():
    from apps.embeddings.sparse import padded_size

    got = [int(padded_size(n)) for n in (1, 2, 3, 4, 5, 1023, 1024, 1025, 2**20 + 1)]
    assert got == [1, 2, 4, 4, 8, 1024, 1024, 2048, 2**21]
    assert [int(padded_size(n, 2859)) for n in (2000, 2500, 2859)] == [2048, 2859, 2859]
    assert int(padded_size(3000, 2859)) == 3000  # never below n
