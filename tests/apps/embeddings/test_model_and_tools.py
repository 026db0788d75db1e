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
from apps.embeddings import model as model_lib
from apps.embeddings.modes import answer, run_queries
from apps.embeddings.vectors import OutOfVocabulary, WordVectors
from configs.embeddings import get_config

GLOVE_FILE = data_lib.gensim_test_data("test_glove.txt")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _word2vec_batch(per_pair, seed=0, vocab=30, size=6, window=2, k=3, batch=2):
    rng = np.random.default_rng(seed)
    negatives_shape = (batch, size, 2 * window, k) if per_pair else (batch, size, k)
    mask = rng.random((batch, size, 2 * window)) < 0.6
    mask[0, 0] = False  # a slot with no pairs
    return {"center": rng.integers(0, vocab, (batch, size)).astype(np.int32),
            "context": rng.integers(0, vocab, (batch, size, 2 * window)).astype(np.int32),
            "mask": mask,
            # a small range, so that some negatives equal their pair's target
            "negatives": rng.integers(0, 8, negatives_shape).astype(np.int32)}


@pytest.mark.parametrize("method,per_pair", [("skipgram", True), ("skipgram", False),
                                             ("cbow", False)])
def test_negative_sampling_loss_matches_a_numpy_transcription(method, per_pair):
    model = model_lib.build(method, 30, 8)
    rng = np.random.default_rng(1)
    model.input_vectors.assign(rng.normal(size=(30, 8)).astype(np.float32))
    model.output_vectors.assign(rng.normal(size=(30, 8)).astype(np.float32))
    batch = _word2vec_batch(per_pair)
    got = model_lib.negative_sampling_loss(model(batch), 2).numpy()

    # The notes' objective, pair by pair: -log s(theta_t . h) - sum_n log s(-theta_n . h),
    # a negative equal to the target skipped.
    e, theta = model.input_vectors.numpy(), model.output_vectors.numpy()
    expected = np.zeros(2)
    skipped = 0
    for b in range(2):
        for s in range(6):
            m = batch["mask"][b, s]
            if method == "skipgram":  # the centre word predicts each target in its window
                negatives = [batch["negatives"][b, s, j] if per_pair else batch["negatives"][b, s]
                             for j in range(4)]
                items = [(e[batch["center"][b, s]], batch["context"][b, s, j], negatives[j])
                         for j in np.flatnonzero(m)]
            elif m.any():  # CBOW: the mean of the window predicts the centre word
                h = e[batch["context"][b, s][m]].mean(axis=0)
                items = [(h, batch["center"][b, s], batch["negatives"][b, s])]
            else:
                items = []
            for h, target, negatives in items:
                loss = -np.log(_sigmoid(theta[target] @ h))
                for n in negatives:
                    if n != target:
                        loss -= np.log(_sigmoid(-theta[n] @ h))
                    skipped += n == target
                expected[b] += loss
    assert skipped > 0 or method == "cbow"
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_row_dot_gradient_is_sparse_and_matches_numeric_and_gather_gradients():
    from layers import gradient_check

    rng = np.random.default_rng(7)
    table = rng.normal(size=(12, 5))
    ids = tf.constant(rng.integers(0, 6, (7, 4)).astype(np.int32))  # rows repeat
    h = rng.normal(size=(7, 5))
    weight = (rng.random((7, 4)) < 0.6).astype(np.float64)  # zero dlogits are skipped
    weight[:, 0] = 0.0  # so words may appear only where the gradient is zero

    def loss(logits):
        return tf.reduce_sum(weight * tf.sin(logits))

    # Numeric vs automatic gradients, float64 (Mul densifies the sparse table gradient).
    assert gradient_check(lambda t: loss(model_lib.row_dot(t[0] * 1.0, ids, t[1])),
                          [table, h]) < 1e-7
    # The table's gradient: one row per distinct word with a nonzero dlogit, and the
    # values tf.gather's autodiff gives after summing the duplicate rows.
    table_t, h_t = tf.constant(table), tf.constant(h)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([table_t, h_t])
        ours = loss(model_lib.row_dot(table_t, ids, h_t))
        reference = loss(tf.reduce_sum(tf.gather(table_t, ids) * h_t[:, None, :], -1))
    assert float(ours) == pytest.approx(float(reference), rel=1e-12)
    sparse, d_h = tape.gradient(ours, [table_t, h_t])
    dense, d_h_reference = tape.gradient(reference, [table_t, h_t])
    assert isinstance(sparse, tf.IndexedSlices)
    words = sparse.indices.numpy()
    active = np.unique(ids.numpy()[weight != 0])
    assert len(set(words)) == len(words) and sorted(words) == active.tolist()
    expected = tf.convert_to_tensor(dense).numpy()
    np.testing.assert_allclose(sparse.values.numpy(), expected[words], rtol=1e-12)
    np.testing.assert_allclose(np.delete(expected, words, axis=0), 0.0)
    np.testing.assert_allclose(d_h.numpy(), d_h_reference.numpy(), rtol=1e-12)


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
                     lambda out: model_lib.negative_sampling_loss(out, 1), 40)
    # The output vectors start at zero (ln 2 per logit); random negatives that are
    # true neighbours keep the loss from going to zero.
    logits = np.sum(batch["mask"]) + np.sum(model(batch)["negative_weight"])
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


def test_sparse_adagrad_equals_the_projects_adagrad_on_the_dense_gradient():
    from apps.embeddings.sparse import SparseAdaGrad

    rng = np.random.default_rng(6)
    start = rng.normal(size=(10, 4)).astype(np.float32)
    indices = tf.constant([3, 1, 3, 7, 3])  # duplicate rows: their slices add up
    results = []
    for optimizer, dense in ((optimizers.AdaGrad(0.1), True), (SparseAdaGrad(0.1), False)):
        table = tf.Variable(start)

        @tf.function
        def step(table=table, optimizer=optimizer, dense=dense):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.gather(table, indices) ** 3)
            grad = tape.gradient(loss, table)
            assert isinstance(grad, tf.IndexedSlices)
            optimizer.apply([tf.convert_to_tensor(grad) if dense else grad], [table])

        for _ in range(3):
            step()
        results.append(table.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)
    assert not np.allclose(results[1], start) and np.array_equal(results[1][0], start[0])
