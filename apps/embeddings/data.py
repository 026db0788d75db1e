"""Embeddings data: the corpus on disk, and word2vec's training examples read from it.

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

The corpus is read once, and kept on disk (apps.embeddings.text.build_corpus);
a chunk is read from there when the training stream needs it (a `Windows`
column), so memory does not grow with the corpus. GloVe's co-occurrence
counts and their training examples are apps/embeddings/cooccurrence.py.
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
from apps.embeddings.ondisk import Windows

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


def load_corpus(config, scratch=None):
    """The training `text.Corpus` for config.data, its arrays on disk in the folder
    `scratch` (None: the system's temporary folder). A TFDS data set streams
    through the same single pass as a text file."""
    d = config.data
    options = dict(min_count=d.min_count, max_vocab=d.max_vocab,
                   keep_punctuation=d.keep_punctuation,
                   max_sentence_words=d.max_sentence_words, max_words=d.max_words,
                   scratch=scratch)
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
                 corpus.raw_words, len(corpus.ids), corpus.num_sentences,
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
    every word is a centre word once per epoch:

        chunks = multiple_of * max(1, ceil(n / (multiple_of * chunk_words))),
        size = ceil(n / chunks),   chunk i = positions [i size - margin, (i + 1) size + margin)

    Returns (Split, size): inputs {"tokens", "sentence"}, each a `Windows`
    column of values of shape (margin + size + margin,) read from the corpus's
    arrays when the stream needs them, -1 past the corpus's ends.
    """
    n = len(corpus.ids)
    chunks = multiple_of * max(1, math.ceil(n / (multiple_of * chunk_words)))
    size = math.ceil(n / chunks)
    inputs = {"tokens": Windows(corpus.ids, chunks, size, margin, fill=-1),
              "sentence": Windows(corpus.sentence, chunks, size, margin, fill=-1)}
    return Split(inputs, np.zeros(chunks, np.int32)), size


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
