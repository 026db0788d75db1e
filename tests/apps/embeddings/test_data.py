"""Embeddings data: tokenizer, vocabulary, word2vec pairs and negatives, GloVe counts."""

import collections
import itertools

import numpy as np
import pytest
import tensorflow as tf

from apps.core.errors import UserError
from apps.embeddings import cooccurrence as glove_lib
from apps.embeddings import data as data_lib
from apps.embeddings import fused
from apps.embeddings import text as text_lib
from apps.embeddings.ondisk import DiskArray
from configs.embeddings import get_config


def test_tokenizer_lower_cases_and_splits_punctuation():
    text = "The King's men, (2 of them) went south-west... Ünïcode!"
    assert text_lib.tokenize(text) == ["the", "king's", "men", "2", "of", "them", "went",
                                       "south-west", "ünïcode"]
    assert text_lib.tokenize(text, keep_punctuation=True) == [
        "the", "king's", "men", ",", "(", "2", "of", "them", ")", "went", "south-west",
        ".", ".", ".", "ünïcode", "!"]


def test_vocabulary_min_count_max_size_and_order():
    counter = collections.Counter("b a c a b a d".split())
    vocab = text_lib.Vocabulary.build(counter, min_count=2)
    assert vocab.words == ["a", "b"] and vocab.counts.tolist() == [3, 2]
    assert text_lib.Vocabulary.build(counter, max_size=3).words == ["a", "b", "c"]  # c first seen
    assert vocab.ids(["d", "b", "a", "x"]) == [1, 0]


def test_corpus_from_a_folder_of_files_keeps_sentences_apart(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("the cat sat.\n\nThe dog sat on the mat\n")
    (tmp_path / "sub" / "b.txt").write_text("a cat and a dog " * 3)
    files = text_lib.text_files(str(tmp_path))
    assert [f.rsplit("/", 1)[-1] for f in files] == ["a.txt", "b.txt"]
    corpus = text_lib.build_corpus(lambda: text_lib.file_lines(files), min_count=2,
                                   max_sentence_words=4, scratch=str(tmp_path))
    words = corpus.vocab.words
    assert set(words) == {"the", "cat", "sat", "dog", "a", "and"}
    assert corpus.raw_words == 3 + 6 + 15
    # Lines are cut into 4-word sentences, then "on" and "mat" (below min_count) dropped.
    assert list(corpus.sentences) == [["the", "cat", "sat"], ["the", "dog", "sat"], ["the"],
                                ["a", "cat", "and", "a"], ["dog", "a", "cat", "and"],
                                ["a", "dog", "a", "cat"], ["and", "a", "dog"]]
    assert len(corpus.sentences) == 7 and np.all(np.diff(corpus.sentence) >= 0)


def test_bad_paths_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="config.data.path"):
        text_lib.text_files(str(tmp_path / "missing.txt"))
    with pytest.raises(UserError, match="no text files"):
        text_lib.text_files(str(tmp_path))
    (tmp_path / "x.txt").write_text("one two three\n")
    with pytest.raises(UserError, match="min_count"):
        text_lib.build_corpus(lambda: text_lib.file_lines([str(tmp_path / "x.txt")]),
                              min_count=5)


def test_embedded_corpus_is_the_lee_news_corpus():
    config = get_config()
    corpus = data_lib.load_corpus(config)
    assert corpus.raw_words > 55_000 and int(corpus.sentence[-1]) + 1 == 300
    assert corpus.vocab.words[:3] == ["the", "to", "of"]
    assert "australia" in corpus.vocab and "sydney" in corpus.vocab


def test_keep_probability_is_word2vecs_formula():
    counts = np.array([5000, 500, 50, 5])
    s = 1e-3
    t = s * counts.sum()
    expected = np.minimum(1, (np.sqrt(counts / t) + 1) * t / counts)
    np.testing.assert_allclose(data_lib.keep_probabilities(counts, s), expected, rtol=1e-6)
    assert expected[0] < 0.3 and expected[-1] == 1.0
    assert data_lib.keep_probabilities(counts, 0.0).tolist() == [1, 1, 1, 1]


def _corpus(sentences):
    """A Corpus of the given id lists (the vocabulary is just the ids as words)."""
    ids = np.concatenate([np.asarray(s, np.int32) for s in sentences])
    sentence = np.concatenate([np.full(len(s), k, np.int32) for k, s in enumerate(sentences)])
    size = int(ids.max()) + 1
    vocab = text_lib.Vocabulary([str(i) for i in range(size)],
                                np.bincount(ids, minlength=size).astype(np.int64))
    return text_lib.Corpus(ids, sentence, vocab, len(ids))


def _pairs(corpus, window, sample=0.0, chunk_words=7, method="skipgram", counts=None,
           seeds=range(1), negatives=3, share_negatives=False):
    """Every (centre, context) pair the generator yields, over all chunks and seeds."""
    margin = 2 * window
    split, size = data_lib.chunk_corpus(corpus, chunk_words, margin, multiple_of=2)
    counts = corpus.vocab.counts if counts is None else counts
    make = data_lib.Word2VecExamples(counts, size, margin, window, negatives, sample, method,
                                     share_negatives)
    pairs, outputs = [], []
    for seed in seeds:
        for k in range(len(split)):
            inputs = {name: tf.constant(a[k]) for name, a in split.inputs.items()}
            out, _ = make(inputs, tf.constant(0), tf.constant([seed, k], tf.int64))
            out = {name: t.numpy() for name, t in out.items()}
            # The centre slots are the middle of the row of kept words.
            out["center"] = out["tokens"][window:window + size]
            out["context"] = data_lib.Word2VecExamples.context(out)
            outputs.append(out)
            for i, j in zip(*np.nonzero(out["mask"]), strict=True):
                pairs.append((int(out["center"][i]), int(out["context"][i, j]),
                              int(make.offsets.numpy()[j])))
    return pairs, outputs


def test_skipgram_pairs_with_window_one_are_the_neighbours_in_each_sentence():
    # Distinct ids, so each pair names its positions; chunks of 7 cut the sentences.
    sentences = [list(range(0, 9)), list(range(9, 12)), [12], list(range(13, 30))]
    pairs, outputs = _pairs(_corpus(sentences), window=1)
    expected = set()
    for s in sentences:
        for a, b in itertools.pairwise(s):
            expected |= {(a, b, 1), (b, a, -1)}
    assert len(pairs) == len(expected) == 2 * (29 - 3)  # each once, none across sentences
    assert set(pairs) == expected
    # k per pair: pair j's negatives at [j k, (j + 1) k).
    assert outputs[0]["negatives"].shape == (outputs[0]["center"].shape[0], 2 * 3)


def test_skipgram_reduced_window_is_symmetric_and_at_most_the_window():
    sentence = list(range(60))
    pairs, outputs = _pairs(_corpus([sentence]), window=3, chunk_words=20, seeds=range(5))
    reach = collections.defaultdict(set)
    for c, t, d in pairs:
        assert t == c + d and 1 <= abs(d) <= 3
        reach[c].add(d)
    for c, offsets in reach.items():
        b = max(abs(d) for d in offsets)
        inside = {d for d in range(-b, b + 1) if d and 0 <= c + d < 60}
        assert offsets == inside or c < 3 or c > 56
    spans = [int(o["mask"][i].sum()) for o in outputs for i in range(o["mask"].shape[0])
             if o["center"][i] >= 3 and o["center"][i] < 57 and o["mask"][i].any()]
    # b ~ uniform{1, 2, 3}: 2b pairs, on average 4.
    assert set(spans) == {2, 4, 6} and abs(np.mean(spans) - 4) < 0.3


def test_subsampling_drops_frequent_words_and_windows_close_up():
    # Word 0 alternates with distinct rare words: 0 1 0 2 0 3 ...
    sentence = [w for k in range(1, 41) for w in (0, k)]
    corpus = _corpus([sentence])
    counts = corpus.vocab.counts.copy()
    counts[0] = 10_000_000  # keep(0) is about 1e-3 of the whole corpus's words
    pairs, outputs = _pairs(corpus, window=1, sample=1e-3, counts=counts, seeds=range(3))
    centres = [int(c) for o in outputs for c in o["center"] if c >= 0]
    assert centres.count(0) <= 2  # almost every 0 dropped ...
    assert sorted(set(centres) - {0}) == list(range(1, 41))  # ... the rare words kept
    # With the 0s gone the rare words become neighbours: k's context is k - 1 and k + 1.
    rare = [(c, t) for c, t, _ in pairs if c and t]
    assert len(rare) >= 3 * 2 * 39 - 12
    assert all(abs(c - t) == 1 for c, t in rare)


@pytest.mark.parametrize("method", ["cbow", "skipgram"])
def test_shared_negatives_are_one_set_per_centre(method):
    _, outputs = _pairs(_corpus([list(range(20))]), window=2, method=method, negatives=4,
                        share_negatives=True)
    out = outputs[0]
    assert out["negatives"].shape == (out["center"].shape[0], 4)
    assert out["mask"].shape == (out["center"].shape[0], 4)


@pytest.mark.parametrize("method", ["skipgram", "cbow"])
def test_negatives_per_block_and_their_weights(method):
    # Each block of fused.BLOCK slots draws N negatives; slot c's weight of
    # negative n is k / N for each of its pairs whose target is not n (skip-gram),
    # or k / N if its window has a word and its centre is not n (CBOW).
    k, n, window = 3, 4, 2
    sentences = [list(np.random.default_rng(s).integers(0, 6, 30)) for s in range(8)]
    corpus = _corpus(sentences)
    margin = 2 * window
    split, size = data_lib.chunk_corpus(corpus, 100, margin)
    make = data_lib.Word2VecExamples(corpus.vocab.counts, size, margin, window, k, 0.0,
                                     method, negatives_per_block=n)
    blocks = -(-size // fused.BLOCK)
    checked = 0
    for chunk in range(len(split)):
        inputs = {name: tf.constant(a[chunk]) for name, a in split.inputs.items()}
        out = {key: v.numpy() for key, v in
               make(inputs, None, tf.constant([0, chunk], tf.int64))[0].items()}
        assert out["negatives"].shape == (blocks, n)
        assert out["negative_weight"].shape == (size, n)
        context = data_lib.Word2VecExamples.context(out)
        for c in range(size):
            draws = out["negatives"][c // fused.BLOCK]
            m = out["mask"][c]
            if method == "skipgram":
                expected = [k / n * np.sum(context[c][m] != d) for d in draws]
            else:
                expected = [k / n * (m.any() and out["tokens"][window + c] != d) for d in draws]
            np.testing.assert_allclose(out["negative_weight"][c], expected, rtol=1e-6)
            checked += int(m.any())
    assert checked > 100


def _bernstein(slots, p_chunks):
    """The summed bound of centre_slots' docstring, transcribed from it chunk by chunk."""
    total = 0.0
    for p in p_chunks:
        mu, v = np.sum(p), np.sum(p * (1 - p))
        t = slots - mu
        total += np.exp(-t * t / (2 * (v + t / 3)))
    return total


def test_centre_slots_are_the_fewest_within_the_bound():
    rng = np.random.default_rng(0)
    counts = np.concatenate([[50_000, 20_000, 5_000], rng.integers(1, 50, 400)])
    ids = rng.choice(len(counts), 29_500, p=counts / counts.sum()).astype(np.int32)
    keep = data_lib.keep_probabilities(counts, 1e-3).astype(np.float64)
    chunks = 30
    size = -(-len(ids) // chunks)  # as chunk_corpus cuts: the last chunk is shorter
    starts = np.arange(0, len(ids), size)
    assert len(starts) == chunks and len(ids) - starts[-1] < size
    slots, bound = data_lib.centre_slots(ids, keep, chunks, size, block=4096)
    p_chunks = [keep[ids[i * size:(i + 1) * size]] for i in range(chunks)]
    assert 0 < slots < size
    np.testing.assert_allclose(bound, _bernstein(slots, p_chunks), rtol=1e-9)
    assert bound <= data_lib.SLOT_MISS_BOUND < _bernstein(slots - 1, p_chunks)
    # Read in one block or many, the same answer.
    assert data_lib.centre_slots(ids, keep, chunks, size, block=1 << 20) == (slots, bound)
    # And no draw of the subsampling keeps more than the slots hold (2,000
    # epochs, drawn 100 at a time).
    most = 0
    for _ in range(20):
        kept = rng.random((100, len(ids))) < keep[ids]
        most = max(most, int(np.add.reduceat(kept, starts, axis=1).max()))
    assert most <= slots


def test_centre_slots_without_subsampling_are_the_chunk():
    ids = np.arange(500, dtype=np.int32) % 7
    assert data_lib.centre_slots(ids, np.ones(7), 5, 100) == (100, 0.0)
    # An empty corpus, and keep probabilities that leave no room below the chunk.
    assert data_lib.centre_slots(np.zeros(0, np.int32), np.ones(7), 1, 100) == (100, 0.0)
    assert data_lib.centre_slots(ids, np.full(7, 0.999), 5, 100) == (100, 0.0)


@pytest.mark.parametrize("too_few", [False, True])
@pytest.mark.parametrize("method", ["skipgram", "cbow"])
def test_fewer_centre_slots_cut_the_example_to_its_first_slots(method, too_few):
    """An example with C slots is the full one's first C centre slots: every kept
    centre when C is centre_slots' (with these draws), its first C otherwise."""
    window, k, margin = 2, 3, 4
    often = np.r_[np.full(3, 0.2), np.full(37, 0.4 / 37)]  # words 0-2: 60% of the text
    sentences = [list(np.random.default_rng(s).choice(40, 50, p=often)) for s in range(6)]
    corpus = _corpus(sentences)
    split, size = data_lib.chunk_corpus(corpus, 150, margin)
    counts = np.full(40, 10)
    counts[:3] = 1_000_000  # kept with probability about 0.2
    keep = data_lib.keep_probabilities(counts, 1e-2)
    slots, _ = data_lib.centre_slots(corpus.ids, keep, len(split), size)
    assert slots < size
    if too_few:
        slots = 20  # fewer than the kept centres of every chunk: the rest left out
    full = data_lib.Word2VecExamples(counts, size, margin, window, k, 1e-2, method)
    cut = data_lib.Word2VecExamples(counts, size, margin, window, k, 1e-2, method, slots=slots)
    for chunk in range(len(split)):
        inputs = {name: tf.constant(a[chunk]) for name, a in split.inputs.items()}
        seed = tf.constant([3, chunk], tf.int64)
        a = {key: v.numpy() for key, v in full(inputs, None, seed)[0].items()}
        b = {key: v.numpy() for key, v in cut(inputs, None, seed)[0].items()}
        # Centre slots used past the cut: none with enough slots, some with too few.
        assert a["mask"][slots:].any() == too_few
        np.testing.assert_array_equal(b["tokens"], a["tokens"][:slots + 2 * window])
        np.testing.assert_array_equal(b["mask"], a["mask"][:slots])
        assert b["negatives"].shape == (slots, k)
    with pytest.raises(ValueError, match="slots must be in 1..size"):
        data_lib.Word2VecExamples(counts, size, margin, window, k, 1e-2, method, slots=size + 1)


def test_alias_table_holds_the_distribution_exactly():
    p = np.random.default_rng(5).random(50) ** 4
    p /= p.sum()
    accept, alias = data_lib.alias_table(p)
    # Word i comes from its own column (probability accept_i / V) and from the
    # columns whose alias it is (1 - accept_j each, over V).
    got = accept.astype(np.float64).copy()
    np.add.at(got, alias, 1.0 - accept)
    np.testing.assert_allclose(got / len(p), p, rtol=1e-5, atol=1e-9)
    assert accept.min() >= 0 and accept.max() <= 1


def test_negatives_follow_the_unigram_distribution_to_the_three_quarters():
    counts = np.array([1000, 300, 100, 10, 1])
    make = data_lib.Word2VecExamples(counts, 4, 2, 1, 5, 0.0, "skipgram")
    ids = make.sample_negatives([200_000], tf.constant([1, 2], tf.int64)).numpy()
    frequencies = np.bincount(ids, minlength=5) / len(ids)
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    np.testing.assert_allclose(frequencies, expected, atol=4e-3)
    assert ids.min() >= 0 and ids.max() <= 4


def _brute_force_cooccurrence(ids, sentence, window):
    counts = collections.defaultdict(float)
    for p in range(len(ids)):
        for q in range(len(ids)):
            if p != q and abs(p - q) <= window and sentence[p] == sentence[q]:
                counts[(ids[p], ids[q])] += 1.0 / abs(p - q)
    return counts


def test_glove_cooccurrence_against_a_hand_computed_example():
    # Sentence 1: a b c a (a=0, b=1, c=2); sentence 2: b b.
    ids = np.array([0, 1, 2, 0, 1, 1])
    sentence = np.array([0, 0, 0, 0, 1, 1])
    rows, cols, values = glove_lib.cooccurrence(ids, sentence, 3, window=2).arrays()
    x = np.zeros((3, 3))
    x[rows, cols] = values
    # a-b: distance 1 (a1 b2) and 2 (b2 a4) -> 1.5; a-c: 2 (a1 c3) and 1 (c3 a4) -> 1.5;
    # b-c: 1; a-a: distance 3 > window -> 0; b-b: distance 1 in sentence 2, both orders -> 2.
    expected = np.array([[0, 1.5, 1.5], [1.5, 2, 1], [1.5, 1, 0]])
    np.testing.assert_allclose(x, expected)


def test_glove_cooccurrence_in_blocks_equals_brute_force():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 12, 300)
    sentence = np.sort(rng.integers(0, 9, 300))
    rows, cols, values = glove_lib.cooccurrence(ids, sentence, 12, window=4,
                                                block_tokens=37).arrays()
    expected = _brute_force_cooccurrence(ids, sentence, 4)
    assert len(values) == len(expected)
    for r, c, v in zip(rows, cols, values, strict=True):
        assert v == pytest.approx(expected[(r, c)])


def test_glove_examples_hold_both_orders_of_every_pair_once_and_f_of_x(tmp_path):
    pairs = DiskArray(str(tmp_path), glove_lib.PAIR, "pairs")  # X_01 = 1, X_22 = 400
    pairs.append(np.array([(0 * 3 + 1, 1.0), (2 * 3 + 2, 400.0)], glove_lib.PAIR))
    table = glove_lib.Cooccurrence(pairs, vocab_size=3, runs=1)
    split = glove_lib.glove_examples(table, chunk_pairs=2, multiple_of=2, seed=0, x_max=100.0,
                                     alpha=0.75, scratch=str(tmp_path))
    inputs = {k: np.asarray(column) for k, column in split.inputs.items()}
    assert inputs["i"].shape == (2, 2) and len(split) == 2
    weight, log_x = inputs["weight"].ravel(), inputs["log_x"].ravel()
    real = weight > 0
    assert real.sum() == 3 and not real[-1]  # the padding is at the end
    got = sorted(zip(inputs["i"].ravel()[real], inputs["j"].ravel()[real],
                     np.exp(log_x[real]).round(3), weight[real].round(6), strict=True))
    f = 0.01 ** 0.75  # f(x) = min(1, (x / 100)^0.75)
    assert got == [(0, 1, 1.0, round(f, 6)), (1, 0, 1.0, round(f, 6)), (2, 2, 400.0, 1.0)]


def test_tfds_text_by_name_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    config = get_config("tfds")
    config.data.name = "imdb_reviews"
    config.data.data_dir = str(tmp_path)
    config.data.min_count = 1
    with tfds.testing.mock_data(num_examples=20):
        corpus = data_lib.load_corpus(config)
    assert int(corpus.sentence[-1]) + 1 == 20 and len(corpus.ids) > 20
    config.data.text_key = "review"
    with tfds.testing.mock_data(num_examples=5), pytest.raises(
            UserError, match="config.data.text_key = 'review'"):
        data_lib.load_corpus(config)
