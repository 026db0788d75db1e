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
  windows are taken, so the windows reach further. A chunk of `size` words
  keeps about sum keep(c) of them, so its centre words get only
  `centre_slots` slots, not `size` (fewer slots, less work a step: on the
  Lee corpus 0.78 of them), the fewest that hold every kept word except
  with a chance below `SLOT_MISS_BOUND`;
* a reduced window b ~ uniform{1..W} per centre word; the pairs are
  (centre c, target t) for every t at most b kept words away in the same
  sentence (skip-gram: the context word predicts each target, as in the
  notes), or (the mean of those t, c) for CBOW;
* negatives (see model.Word2Vec), N per block of `fused.BLOCK` consecutive
  centre slots shared by its centres (config.word2vec.negatives_per_block
  = N > 0, the default), k per centre word (N = 0), or k per pair
  (skip-gram, config.word2vec.share_negatives = False), drawn from the unigram
  distribution raised to 3/4, P(w) = c_w^0.75 / sum_v c_v^0.75, with Walker's
  alias method (two uniforms and two table lookups a draw).

Each chunk's arrays are computed as one XLA computation (`_example`): the
shapes are fixed, and the few dozen small ops that make a chunk would
otherwise cost more in TensorFlow's per-op overhead than in arithmetic.

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
from apps.embeddings import fused
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


def unigram_probabilities(counts, power=0.75):
    """P(w) = c_w^power / sum_v c_v^power, float64."""
    weights = np.asarray(counts, np.float64) ** power
    return weights / weights.sum()


def alias_table(p):
    """Walker's alias table of the distribution p (Vose's construction): draw
    i ~ uniform{0..V-1} and u ~ U[0, 1); the word is i if u < accept[i], else
    alias[i]. Each draw costs two uniforms and two lookups, whatever V is.

    Returns (accept float32 (V,), alias int32 (V,))."""
    n = len(p)
    scaled = np.asarray(p, np.float64) * n
    accept = np.ones(n)
    alias = np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        accept[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    # What is left is 1 up to rounding: always accepted.
    return accept.astype(np.float32), alias.astype(np.int32)


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


#: the chance, per epoch, that some chunk keeps more words than `centre_slots` gives it
SLOT_MISS_BOUND = 1e-6


def centre_slots(ids, keep_p, chunks, size, block=1 << 20):
    """The centre slots a chunk needs after subsampling, and the chance it needs more.

    Chunk i's centre words are ids[i size : (i + 1) size]; word k of them is
    kept with probability p_k = keep_p[id], independently, so the chunk keeps

        X_i = sum_k Bernoulli(p_k):   mean mu_i = sum p_k,  variance v_i = sum p_k (1 - p_k).

    By Bernstein's inequality (each term within 1 of its mean), S slots leave
    a kept word out of chunk i with probability

        P(X_i > S) <= exp(-t_i^2 / (2 (v_i + t_i / 3))),   t_i = S - mu_i > 0.

    S is the fewest slots (at most `size`) for which these bounds, summed over
    the chunks, are at most SLOT_MISS_BOUND: the chance that any word of an
    epoch is left out. The words left out are a chunk's last kept ones; they
    are no centre words in that epoch, and in its pairs only as the context of
    the last slots (the first W of them) or of the next chunk's first centre
    words (the chunk's last W). `ids` is read `block` words at a time (a
    DiskArray or an array).

    Returns (S, the summed bound; 0 for S = size, which leaves nothing out).
    """
    n = len(ids)
    keep_p = np.asarray(keep_p, np.float64)
    step = max(1, block // size) * size  # whole chunks per read
    mean, variance = [], []
    for start in range(0, n, step):
        p = keep_p[np.asarray(ids[start:min(n, start + step)])]
        starts = np.arange(0, len(p), size)
        mean.append(np.add.reduceat(p, starts))
        variance.append(np.add.reduceat(p * (1 - p), starts))
    if not mean:
        return size, 0.0
    mean, variance = np.concatenate(mean)[:chunks], np.concatenate(variance)[:chunks]

    def bound(slots):
        t = slots - mean
        return float(np.sum(np.exp(-t * t / (2 * (variance + t / 3)))))

    low, high = math.floor(float(np.max(mean))) + 1, size  # bound(high) <= the goal, or high = size
    if low >= size or bound(size) > SLOT_MISS_BOUND:
        return size, 0.0
    while low < high:
        middle = (low + high) // 2
        if bound(middle) <= SLOT_MISS_BOUND:
            high = middle
        else:
            low = middle + 1
    return high, bound(high)


class Word2VecExamples:
    """One chunk -> the words, pairs and negatives of skip-gram or CBOW (`fused.loss`).

    Call with (inputs, targets, seed) as the trainer's `train_example` hook.
    The outputs, for C = centre slots (`slots`, default the chunk's `size`:
    see `centre_slots`), W = window, k = negatives:

        tokens           int32 (C + 2W)  the kept words in a row, -1 where none: the
                                         C centre slots are tokens[W : W + C], the
                                         window of slot i is tokens[i : i + 2W + 1]
        mask             bool  (C, 2W)   the pairs (slot i, offset -W..-1, 1..W) inside
                                         the reduced window and the sentence
        negatives        int32 (C, K)    the negatives of each centre slot: K = k
                                         (CBOW; skip-gram, shared by the centre's
                                         pairs) or 2W k (skip-gram with
                                         share_negatives=False: k per pair, pair j's
                                         at [j k, (j + 1) k)); with
                                         negatives_per_block = N > 0, (blocks, N):
                                         the N of each block of fused.BLOCK slots
        negative_weight  float (C, K)    how many pairs each negative stands for:
                                         skip-gram shared, the centre's pairs whose
                                         target is not the negative; per pair, 1 if
                                         the pair is in the mask and its target is
                                         not the negative; CBOW, 1 if the centre has
                                         a window and is not the negative (a
                                         negative equal to the target is skipped, as
                                         in word2vec and gensim); per block, the
                                         same times k / N (K = N: the block's)

    `context(example)` gives the (C, 2W) target words of the mask's pairs.
    """

    def __init__(self, counts, size, margin, window, negatives, sample, method,
                 share_negatives=True, negatives_per_block=0, slots=None):
        self.size, self.margin, self.window = size, margin, window
        self.slots = size if slots is None else slots
        if not 0 < self.slots <= size:
            raise ValueError(f"slots must be in 1..size ({size}), not {slots}")
        self.negatives, self.method = negatives, method
        self.per_pair = method == "skipgram" and not share_negatives
        self.per_block = 0 if self.per_pair else negatives_per_block
        self.blocks = fused.Layout(1, self.slots, window, 0, fused.BLOCK).blocks
        self.keep = tf.constant(keep_probabilities(counts, sample))
        accept, alias = alias_table(unigram_probabilities(counts))
        self.accept, self.alias = tf.constant(accept), tf.constant(alias)
        self.vocab_size = len(counts)
        self.offsets = _offsets(window)

    def __call__(self, inputs, targets, seed):
        # The random numbers come from TensorFlow's kernels (XLA's CPU Philox is
        # some 10x slower); the rest is one XLA computation.
        length, w, k = self.size + 2 * self.margin, self.window, self.negatives
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
        draws = (self.blocks * self.per_block if self.per_block
                 else self.slots * (2 * w * k if self.per_pair else k))
        example = _EXAMPLE(inputs["tokens"], inputs["sentence"],
                           tf.random.stateless_uniform([length], seeds[0]),
                           tf.random.stateless_uniform([self.slots], seeds[1], minval=1,
                                                       maxval=w + 1, dtype=tf.int32),
                           tf.random.stateless_uniform([2, draws], seeds[2]),
                           self.keep, self.accept, self.alias, self.size, self.slots,
                           self.margin, w, k, self.method, self.per_pair, self.per_block)
        return example, targets

    def sample_negatives(self, shape, seed):
        """Word ids from P(w) ~ c_w^0.75 (`alias_table`)."""
        u = tf.random.stateless_uniform([2, math.prod(shape)], tf.cast(seed, tf.int64))
        return tf.reshape(_NEGATIVES(self.accept, self.alias, u), shape)

    @staticmethod
    def context(example):
        """The (..., C, 2W) target words of an example's (or a batch's) pair slots."""
        tokens, mask = example["tokens"], example["mask"]
        two_w, c = mask.shape[-1], mask.shape[-2]
        w = two_w // 2
        offsets = np.concatenate([np.arange(-w, 0), np.arange(1, w + 1)])
        return np.take(np.asarray(tokens), np.arange(c)[:, None] + w + offsets[None, :],
                       axis=-1)


def _offsets(window):
    return tf.constant(np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)]),
                       tf.int32)


def _cumsum(x):
    """tf.cumsum of a vector by log2(n) shifted adds (XLA's CPU cumsum takes n^2)."""
    n, shift = x.shape[0], 1
    while shift < n:
        x = x + tf.pad(x[:n - shift], [[shift, 0]])
        shift *= 2
    return x


def _negatives(accept, alias, u):
    """Alias-method draws, one per column of the uniforms u (2, n)."""
    vocab = tf.shape(accept)[0]
    i = tf.minimum(tf.cast(u[0] * tf.cast(vocab, tf.float32), tf.int32), vocab - 1)
    return tf.where(u[1] < tf.gather(accept, i), i, tf.gather(alias, i))


def _example(tokens, sentence, u_keep, reach, u_negatives, keep_p, accept, alias, size, slots,
             margin, w, k, method, per_pair, per_block):
    """`Word2VecExamples.__call__`'s arrays (one XLA computation, static shapes): a chunk
    of `size` centre words (and `margin` either side) into `slots` centre slots."""
    offsets = _offsets(w)
    length = size + 2 * margin
    # Subsampling, then compaction: the kept words close up (a word dropped is
    # scattered out of range, which XLA's scatter skips), W empty slots before.
    keep = (tokens >= 0) & (u_keep < tf.gather(keep_p, tf.maximum(tokens, 0)))
    kept_before = _cumsum(tf.cast(keep, tf.int32))  # kept words up to each position
    place = tf.where(keep, kept_before - 1 + w, length + 2 * w)
    kept_tokens = tf.tensor_scatter_nd_update(tf.fill([length + 2 * w], -1), place[:, None],
                                              tokens)
    kept_sentence = tf.tensor_scatter_nd_update(tf.fill([length + 2 * w], -1),
                                                place[:, None], sentence)
    # The kept centre words are a contiguous run of the compacted chunk; the
    # first `slots` of them are the centre slots (`centre_slots`: all of them
    # but with a negligible chance).
    first = kept_before[margin - 1] if margin else 0
    centers = kept_before[margin + size - 1] - first
    span = first + tf.range(slots + 2 * w)  # the centre slots and W words either side
    row, row_sentence = tf.gather(kept_tokens, span), tf.gather(kept_sentence, span)
    slot = tf.range(slots)
    center = row[w:w + slots]
    at = slot[:, None] + w + offsets[None, :]
    context = tf.gather(row, at)
    mask = ((slot < centers)[:, None] & (context >= 0)
            & (tf.gather(row_sentence, at) == row_sentence[w:w + slots, None])
            & (tf.abs(offsets)[None, :] <= reach[:, None]))
    if per_pair:
        negatives = tf.reshape(_negatives(accept, alias, u_negatives), [slots, 2 * w, k])
        weight = mask[:, :, None] & (negatives != context[:, :, None])
        negatives = tf.reshape(negatives, [slots, 2 * w * k])
        weight = tf.reshape(weight, [slots, 2 * w * k])
    elif per_block:
        layout = fused.Layout(1, slots, w, per_block, fused.BLOCK)
        negatives = tf.reshape(_negatives(accept, alias, u_negatives),
                               [layout.blocks, per_block])
        inside = layout.pad_slots(tf.cast(mask, tf.float32)[None])  # (1, Cp, 2W)
        share = k / per_block  # each of the block's draws stands for k / K of a centre's k
        if method == "skipgram":
            # The targets equal to each negative, slot by slot: the band of the
            # block's pairs (G, G + 2W) times whether each word around the block
            # is the negative (G + 2W, K).
            words = layout.around(tf.pad(row, [[0, layout.cp - slots]], constant_values=-1)[None])
            equal = tf.cast(words[..., None] == negatives[None, :, None, :], tf.float32)
            matches = tf.einsum("bjgh,bjhn->bjgn", layout.unband(inside), equal)
            pairs = tf.add_n([inside[..., j] for j in range(2 * w)])  # (1, Cp)
            weight = share * (pairs[..., None] - tf.reshape(matches, [1, layout.cp, -1]))
        else:
            has = tf.add_n([inside[..., j] for j in range(2 * w)]) > 0
            centre = tf.reshape(tf.pad(center, [[0, layout.cp - slots]], constant_values=-1),
                                [1, layout.blocks, layout.g, 1])
            differ = tf.reshape(centre != negatives[None, :, None, :], [1, layout.cp, -1])
            weight = share * tf.cast(has[..., None] & differ, tf.float32)
        weight = weight[0, :slots]
    else:
        negatives = tf.reshape(_negatives(accept, alias, u_negatives), [slots, k])
        # Sums over the window's 2W slots as explicit adds: XLA's CPU reductions
        # over an inner axis are several times slower.
        if method == "skipgram":
            weight = tf.add_n([tf.cast(mask[:, j, None] & (context[:, j, None] != negatives),
                                       tf.int32) for j in range(2 * w)])
        else:
            has = tf.add_n([tf.cast(mask[:, j], tf.int32) for j in range(2 * w)]) > 0
            weight = has[:, None] & (negatives != center[:, None])
    return {"tokens": row, "mask": mask, "negatives": negatives,
            "negative_weight": tf.cast(weight, tf.float32)}


_EXAMPLE = tf.function(_example, jit_compile=True, autograph=False)
_NEGATIVES = tf.function(_negatives, jit_compile=True, autograph=False)
