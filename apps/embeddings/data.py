"""Embeddings data: the corpus, word2vec's training examples and GloVe's co-occurrences.

    config.data.source = "embedded"  the Lee news corpus (gensim's test data:
                                     lee_background.cor, 300 Australian news
                                     stories, about 60,000 words)
                       = "text"      config.data.path: a text file or a folder
                                     of text files (text8 is the classic)
                       = "tfds"      config.data.name (e.g. lm1b, imdb_reviews)
                                     prepared in config.data.data_dir; the text
                                     is the feature config.data.text_key

word2vec (Mikolov et al., 2013). The corpus is cut into chunks of about
`chunk_words` consecutive words (plus a margin on each side for the contexts
of the words at the chunk's edges); one chunk is one example of the shared
trainer, and `Word2VecExamples` turns it, with stateless random ops keyed by
the trainer's per-example seed, into fixed-shape arrays, vectorised:

* subsampling of frequent words: a word of count c is kept with probability

      keep(c) = min(1, (sqrt(c / (s T)) + 1) * s T / c)    (T = corpus words,
                                                            s = config sample)

  (word2vec's C code and gensim), and dropped words are removed before the
  windows are taken, so the windows reach further;
* a reduced window b ~ uniform{1..W} per centre word; the pairs are
  (centre c, target t) for every t at most b kept words away in the same
  sentence (skip-gram: the context word predicts each target, as in the
  notes), or (the mean of those t, c) for CBOW;
* k negatives per pair (config.word2vec.share_negatives = False) or per
  centre word (CBOW; skip-gram by default, the centre's pairs sharing them,
  see model.Word2Vec) drawn from the unigram
  distribution raised to 3/4, P(w) = c_w^0.75 / sum_v c_v^0.75, by inverse
  transform sampling on its cumulative sum.

GloVe (Pennington et al., 2014). `cooccurrence` counts

    X_ij = sum over occurrences of j within `window` words of i (same sentence)
           of 1 / distance,

symmetric (X_ij = X_ji), streamed block by block through NumPy with at most
`buffer_pairs` unmerged pairs held at a time and the table limited to
`max_pairs` distinct pairs; `glove_examples` packs the nonzero X_ij into
chunks of `chunk_pairs` shuffled pairs.
"""

import importlib.util
import math
import os

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core.data import Split, load_tfds
from apps.core.errors import UserError
from apps.embeddings import text as text_lib

EMBEDDED_CORPUS = "lee_background.cor"


def gensim_test_data(name):
    """Path of a file shipped in gensim's test data (the embedded corpus and eval sets)."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the embedded file {name} ships with gensim: `pip install gensim`, "
                        "or give your own file in the config")
    path = os.path.join(spec.submodule_search_locations[0], "test", "test_data", name)
    if not os.path.exists(path):
        raise UserError(f"{path}: missing from the installed gensim")
    return path


# ----------------------------------------------------------------- the corpus


def load_corpus(config):
    """The training `text.Corpus` for config.data."""
    d = config.data
    options = dict(min_count=d.min_count, max_vocab=d.max_vocab,
                   keep_punctuation=d.keep_punctuation,
                   max_sentence_words=d.max_sentence_words, max_words=d.max_words)
    if d.source == "tfds":
        def lines():
            ds, info = load_tfds(d.name, d.data_dir, d.split)
            if d.text_key not in info.features:
                raise UserError(f"config.data.text_key = {d.text_key!r}: TFDS data set "
                                f"{d.name!r} has the features {sorted(info.features)}")
            for example in ds.as_numpy_iterator():
                yield example[d.text_key].decode("utf-8", errors="replace")

        corpus = text_lib.build_corpus(lines, source=f"TFDS data set {d.name!r}", **options)
    else:
        path = d.path if d.source == "text" else (d.path or gensim_test_data(EMBEDDED_CORPUS))
        files = text_lib.text_files(path)
        corpus = text_lib.build_corpus(lambda: text_lib.file_lines(files),
                                       source=f"config.data.path = {path!r}", **options)
    logging.info("corpus: %d words (%d in the vocabulary), %d sentences, vocabulary %d",
                 corpus.raw_words, len(corpus.ids), int(corpus.sentence[-1]) + 1,
                 len(corpus.vocab))
    return corpus


# ------------------------------------------------------------------ word2vec


def keep_probabilities(counts, sample):
    """P(keep) of each word: min(1, (sqrt(c / (s T)) + 1) s T / c); all 1 for s = 0."""
    counts = np.asarray(counts, np.float64)
    if sample <= 0:
        return np.ones(len(counts), np.float32)
    threshold = sample * counts.sum()
    keep = (np.sqrt(counts / threshold) + 1) * threshold / counts
    return np.minimum(keep, 1.0).astype(np.float32)


def unigram_cdf(counts, power=0.75):
    """Cumulative distribution of P(w) = c_w^power / sum_v c_v^power."""
    weights = np.asarray(counts, np.float64) ** power
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf.astype(np.float32)


def chunk_corpus(corpus, chunk_words, margin, multiple_of=1):
    """Cuts the corpus into chunks of `size` words with `margin` words either side.

    The number of chunks is a multiple of `multiple_of` (the batch size), so
    every word is a centre word once per epoch. Returns (Split, size): inputs
    {"tokens", "sentence"} of shape (chunks, margin + size + margin), -1 past
    the corpus's ends.
    """
    n = len(corpus.ids)
    chunks = multiple_of * max(1, math.ceil(n / (multiple_of * chunk_words)))
    size = math.ceil(n / chunks)
    positions = (np.arange(chunks) * size)[:, None] + np.arange(-margin, size + margin)
    inside = (positions >= 0) & (positions < n)
    clipped = np.clip(positions, 0, n - 1)
    tokens = np.where(inside, corpus.ids[clipped], -1).astype(np.int32)
    sentence = np.where(inside, corpus.sentence[clipped], -1).astype(np.int32)
    split = Split({"tokens": tokens, "sentence": sentence}, np.zeros(chunks, np.int32))
    return split, size


class Word2VecExamples:
    """One chunk -> the (centre, context, negatives) arrays of skip-gram or CBOW.

    Call with (inputs, targets, seed) as the trainer's `train_example` hook.
    The outputs, for C = chunk size, W = window, k = negatives:

        center     int32 (C,)        the centre word of each slot (-1: empty slot)
        context    int32 (C, 2W)     the words at offsets -W..-1, 1..W (kept words)
        mask       bool  (C, 2W)     the pairs inside the reduced window and sentence
        negatives  int32 (C, 2W, k)  k per pair (skip-gram with share_negatives=False),
                   or (C, k)         k per centre (CBOW; skip-gram, shared by its pairs)
    """

    def __init__(self, counts, size, margin, window, negatives, sample, method,
                 share_negatives=True):
        self.size, self.margin, self.window = size, margin, window
        self.negatives, self.method = negatives, method
        self.per_pair = method == "skipgram" and not share_negatives
        self.keep = tf.constant(keep_probabilities(counts, sample))
        self.cdf = tf.constant(unigram_cdf(counts))
        self.vocab_size = len(counts)
        length = size + 2 * margin
        self.is_center = tf.constant((np.arange(length) >= margin)
                                     & (np.arange(length) < margin + size))
        offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
        self.offsets = tf.constant(offsets, tf.int32)

    def __call__(self, inputs, targets, seed):
        tokens, sentence = inputs["tokens"], inputs["sentence"]
        w, size = self.window, self.size
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        # Subsampling, then compaction: the kept words close up.
        keep_p = tf.gather(self.keep, tf.maximum(tokens, 0))
        keep = (tokens >= 0) & (tf.random.stateless_uniform(tf.shape(tokens), seeds[0]) < keep_p)
        kept = tf.where(keep)[:, 0]
        pad = tf.shape(tokens)[0] - tf.size(kept) + w
        kept_tokens = tf.concat([tf.fill([w], -1), tf.gather(tokens, kept), tf.fill([pad], -1)], 0)
        kept_sentence = tf.concat([tf.fill([w], -1), tf.gather(sentence, kept),
                                   tf.fill([pad], -1)], 0)
        # The kept centre words are a contiguous run of the compacted chunk.
        first = tf.reduce_sum(tf.cast(keep[:self.margin], tf.int32))
        centers = tf.reduce_sum(tf.cast(keep & self.is_center, tf.int32))
        slot = tf.range(size)
        where = first + slot + w  # index in kept_tokens
        occupied = slot < centers
        center = tf.where(occupied, tf.gather(kept_tokens, where), -1)
        center_sentence = tf.gather(kept_sentence, where)
        at = where[:, None] + self.offsets[None, :]
        context = tf.gather(kept_tokens, at)
        reach = tf.random.stateless_uniform([size], seeds[1], minval=1, maxval=w + 1,
                                            dtype=tf.int32)
        mask = (occupied[:, None] & (context >= 0)
                & (tf.gather(kept_sentence, at) == center_sentence[:, None])
                & (tf.abs(self.offsets)[None, :] <= reach[:, None]))
        shape = [size, 2 * w, self.negatives] if self.per_pair else [size, self.negatives]
        negatives = self.sample_negatives(shape, seeds[2])
        example = {"center": center, "context": tf.where(mask, context, 0), "mask": mask,
                   "negatives": negatives}
        return example, targets

    def sample_negatives(self, shape, seed):
        """Word ids from P(w) ~ c_w^0.75: the first w with cdf(w) > u, u ~ U[0, 1)."""
        u = tf.random.stateless_uniform([math.prod(shape)], seed)
        ids = tf.searchsorted(self.cdf, u, side="right", out_type=tf.int32)
        return tf.reshape(tf.minimum(ids, self.vocab_size - 1), shape)


# --------------------------------------------------------------------- GloVe


def cooccurrence(ids, sentence, vocab_size, window, block_tokens=1_000_000,
                 buffer_pairs=20_000_000, max_pairs=100_000_000):
    """The symmetric co-occurrence counts with 1/distance weighting.

    X_ij = sum over positions p, q with 0 < |p - q| <= window in one sentence,
    ids[p] = i and ids[q] = j, of 1 / |p - q|.

    Streamed: `block_tokens` positions at a time are counted and reduced
    (np.unique) into sorted partial tables, which are merged into the running
    table whenever more than `buffer_pairs` of them are waiting. A table of
    more than `max_pairs` distinct pairs is a UserError (the memory bound).

    Returns (rows, cols, values): int32, int32, float64, sorted by (row, col).
    """
    ids = np.asarray(ids, np.int64)
    sentence = np.asarray(sentence)
    n, v = len(ids), np.int64(vocab_size)
    table = (np.zeros(0, np.int64), np.zeros(0, np.float64))
    waiting, waiting_pairs = [], 0

    def merge(parts):
        keys = np.concatenate([p[0] for p in parts])
        values = np.concatenate([p[1] for p in parts])
        unique, inverse = np.unique(keys, return_inverse=True)
        return unique, np.bincount(inverse, weights=values, minlength=len(unique))

    for start in range(0, n, block_tokens):
        left = np.arange(start, min(n, start + block_tokens))
        keys, values = [], []
        for d in range(1, window + 1):
            p = left[left + d < n]
            p = p[sentence[p] == sentence[p + d]]
            i, j = ids[p], ids[p + d]
            keys += [i * v + j, j * v + i]  # both orders: X is symmetric
            values += [np.full(2 * len(p), 1.0 / d)]
        if not len(np.concatenate(keys)):
            continue
        part = merge([(np.concatenate(keys), np.concatenate(values))])
        waiting.append(part)
        waiting_pairs += len(part[0])
        if waiting_pairs > buffer_pairs:
            table = merge([table, *waiting])
            waiting, waiting_pairs = [], 0
            _check_pairs(len(table[0]), max_pairs)
    table = merge([table, *waiting])
    _check_pairs(len(table[0]), max_pairs)
    keys, values = table
    return (keys // v).astype(np.int32), (keys % v).astype(np.int32), values


def _check_pairs(count, max_pairs):
    if count > max_pairs:
        raise UserError(
            f"the co-occurrence table has more than config.glove.max_pairs = {max_pairs} "
            "pairs; raise it (about 12 bytes per pair) or shrink the vocabulary "
            "(config.data.min_count, config.data.max_vocab) or config.glove.window")


def glove_weight(x, x_max=100.0, alpha=0.75):
    """GloVe's weighting f(x) = min(1, (x / x_max)^alpha)."""
    return np.minimum(1.0, (np.asarray(x, np.float64) / x_max) ** alpha)


def glove_examples(rows, cols, values, chunk_pairs, multiple_of, seed, x_max, alpha):
    """The nonzero X_ij, shuffled once, in chunks of `chunk_pairs` (padded with weight 0).

    Returns a Split with inputs {"i", "j", "log_x", "weight"} of shape
    (chunks, chunk_pairs); the number of chunks is a multiple of `multiple_of`.
    """
    order = np.random.default_rng(seed).permutation(len(values))
    chunks = multiple_of * max(1, math.ceil(len(values) / (multiple_of * chunk_pairs)))
    total = chunks * chunk_pairs

    def packed(a, dtype):
        out = np.zeros(total, dtype)
        out[:len(a)] = a[order]
        return out.reshape(chunks, chunk_pairs)

    inputs = {"i": packed(rows, np.int32), "j": packed(cols, np.int32),
              "log_x": packed(np.log(values), np.float32),
              "weight": packed(glove_weight(values, x_max, alpha), np.float32)}
    return Split(inputs, np.zeros(chunks, np.int32))
