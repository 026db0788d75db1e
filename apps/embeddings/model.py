"""word2vec (skip-gram, CBOW) with negative sampling, and GloVe, as Keras models.

Both hold their embedding matrices as plain weights and look rows up with
`tf.gather`, so a training step touches (and its gradient holds) only the
rows of the words in the batch.

word2vec, for a pair (context word c, target word t) and k negatives n_1..n_k
drawn from P(w) ~ count(w)^0.75 (Mikolov et al., 2013; the notes' sigmoid
binary objective, not a softmax over the vocabulary):

    loss(c, t) = -log sigma(theta_t . e_c) - sum_i log sigma(-theta_{n_i} . e_c)

where e = the input embeddings (the word vectors kept at the end) and
theta = the output embeddings. Skip-gram takes e_c of the centre word and
one pair per target word in its window; CBOW takes, in place of e_c, the mean
of the input embeddings of the window's words and predicts the centre word.
A negative that equals the target is skipped, as in word2vec and gensim.

GloVe (Pennington et al., 2014), for every nonzero co-occurrence count X_ij:

    loss = sum_ij f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2,
    f(x) = min(1, (x / x_max)^alpha)

and the word vectors kept at the end are w + w~.
"""

import keras
import tensorflow as tf

METHODS = ("skipgram", "cbow", "glove")


class Word2Vec(keras.Model):
    """Skip-gram or CBOW: input embeddings e (V, D) and output embeddings theta (V, D).

    Initialised as word2vec does: e ~ U(-0.5 / D, 0.5 / D), theta = 0.

    Call with the batched outputs of `data.Word2VecExamples` (leading batch
    axis B). The logits are laid out in rows, each row one hidden vector h
    against S output words: the row's targets (positive_weight 1) and its
    negatives (negative_weight = how many pairs the negative stands for, 0
    where it equals the target, as in word2vec and gensim):

        skip-gram, negatives per centre word (the default): a row per centre c
            with pairs, h = e_c, S = 2W window words + k negatives. The
            centre's pairs share its k negatives: each negative n counts once
            for every pair whose target is not n, so the loss has the same
            expectation as with draws per pair, at a fraction of the work
            (all the pairs of a centre share h = e_c, so the logits
            theta_n . h are the same for them);
        skip-gram, negatives per pair: a row per pair, h = e_c, S = 1 + k;
        CBOW: a row per centre, h = the mean of e over the window, S = 1 + k
            (the centre word and k negatives).

    Returns {"logits" (R, S), "positive_weight" (R, S), "negative_weight"
    (R, S), "example" (R,): the batch index of each row}.
    """

    def __init__(self, vocab_size, dim, method="skipgram", **kwargs):
        super().__init__(**kwargs)
        if method not in ("skipgram", "cbow"):
            raise ValueError(f"method must be skipgram or cbow, not {method!r}")
        self.vocab_size, self.dim, self.method = vocab_size, dim, method
        scale = 0.5 / dim
        self.input_vectors = self.add_weight(
            shape=(vocab_size, dim), name="input_vectors",
            initializer=keras.initializers.RandomUniform(-scale, scale))
        self.output_vectors = self.add_weight(shape=(vocab_size, dim), name="output_vectors",
                                              initializer="zeros")

    def call(self, inputs):
        mask, negatives = inputs["mask"], inputs["negatives"]
        e = self.input_vectors
        centres = tf.where(tf.reduce_any(mask, -1))  # (N, 2): batch, slot
        window = tf.gather_nd(inputs["context"], centres)  # (N, 2W)
        inside = tf.gather_nd(mask, centres)
        center = tf.gather_nd(inputs["center"], centres)
        if self.method == "skipgram" and negatives.shape.rank == 3:  # k per centre
            negative = tf.gather_nd(negatives, centres)  # (N, k)
            h = tf.gather(e, center)
            ids = tf.concat([window, negative], 1)
            positive_weight = tf.concat([inside, tf.zeros_like(negative, tf.bool)], 1)
            pairs_per_negative = tf.reduce_sum(tf.cast(
                inside[:, :, None] & (window[:, :, None] != negative[:, None, :]), e.dtype), 1)
            negative_weight = tf.concat([tf.zeros_like(window, e.dtype), pairs_per_negative], 1)
            example = centres[:, 0]
        else:
            if self.method == "skipgram":  # k per pair: a row per pair
                pairs = tf.where(mask)  # (P, 3): batch, slot, offset
                target = tf.gather_nd(inputs["context"], pairs)
                negative = tf.gather_nd(negatives, pairs)  # (P, k)
                h = tf.gather(e, tf.gather_nd(inputs["center"], pairs[:, :2]))
                example = pairs[:, 0]
            else:  # CBOW: the mean of the window predicts the centre word
                weights = tf.cast(inside, e.dtype)
                h = tf.reduce_sum(weights[:, :, None] * tf.gather(e, window), 1)
                h /= tf.reduce_sum(weights, -1, keepdims=True)
                target, negative = center, tf.gather_nd(negatives, centres)
                example = centres[:, 0]
            ids = tf.concat([target[:, None], negative], 1)
            positive_weight = tf.concat(
                [tf.ones_like(target[:, None], tf.bool), tf.zeros_like(negative, tf.bool)], 1)
            negative_weight = tf.cast(tf.concat(
                [tf.zeros_like(target[:, None], tf.bool), negative != target[:, None]], 1),
                e.dtype)
        return {"logits": row_dot(tf.convert_to_tensor(self.output_vectors), ids, h),
                "positive_weight": tf.cast(positive_weight, e.dtype),
                "negative_weight": negative_weight, "example": example}

    def vectors(self):
        """The word vectors: the input embeddings e."""
        return tf.convert_to_tensor(self.input_vectors)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim,
                "method": self.method}


class GloVe(keras.Model):
    """GloVe: w, w~ (V, D) and biases b, b~ (V,), all ~ U(-0.5 / D, 0.5 / D) as in GloVe's C code.

    Call with {"i", "j"} int32 (B, P); returns w_i . w~_j + b_i + b~_j, (B, P).
    """

    def __init__(self, vocab_size, dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim = vocab_size, dim
        scale = 0.5 / dim

        def weight(shape, name):
            return self.add_weight(shape=shape, name=name,
                                   initializer=keras.initializers.RandomUniform(-scale, scale))

        self.w = weight((vocab_size, dim), "word_vectors")
        self.w_tilde = weight((vocab_size, dim), "context_vectors")
        self.b = weight((vocab_size,), "word_biases")
        self.b_tilde = weight((vocab_size,), "context_biases")

    def call(self, inputs):
        i, j = inputs["i"], inputs["j"]
        dot = tf.reduce_sum(tf.gather(self.w, i) * tf.gather(self.w_tilde, j), -1)
        return dot + tf.gather(self.b, i) + tf.gather(self.b_tilde, j)

    def vectors(self):
        """The word vectors: w + w~."""
        return self.w + self.w_tilde

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim}


def negative_sampling_loss(outputs, batch_size):
    """Per-example sums of w+ (-log sigma(x)) + w- (-log sigma(-x)) over the logits x, (batch_size,).

    With -log sigma(-x) = softplus(x) and -log sigma(x) = softplus(x) - x, one
    softplus serves both: (w+ + w-) softplus(x) - w+ x.
    """
    x = outputs["logits"]
    positive, negative = outputs["positive_weight"], outputs["negative_weight"]
    rows = tf.reduce_sum((positive + negative) * tf.nn.softplus(x) - positive * x, -1)
    return tf.math.unsorted_segment_sum(rows, outputs["example"], batch_size)


@tf.custom_gradient
def row_dot(table, ids, h):
    """logits[r, s] = table[ids[r, s]] . h[r], with a sparse gradient for `table`.

    Autodiff of tf.gather would hand the optimizer one gradient row per
    (r, s), (R * S, D) values that it must then sum row by row per word; here
    the gradient of each distinct word u is formed directly as

        d_table[u] = sum over (r, s) with ids[r, s] = u of dlogits[r, s] h[r]

    a sparse (distinct words x R) by dense (R, D) product that skips the zero
    dlogits (slots outside the window), and returned as tf.IndexedSlices over
    the distinct words; d_h[r] = sum_s dlogits[r, s] table[ids[r, s]].
    """
    rows = tf.gather(table, ids)  # (R, S, D)
    logits = tf.reduce_sum(rows * h[:, None, :], -1)

    def grad(dlogits):
        at = tf.where(tf.not_equal(dlogits, 0))  # (nnz, 2), row-major
        words, column = tf.unique(tf.gather_nd(ids, at))
        shape = tf.cast(tf.stack([tf.shape(h)[0], tf.size(words)]), tf.int64)
        weights = tf.SparseTensor(tf.stack([at[:, 0], tf.cast(column, tf.int64)], 1),
                                  tf.gather_nd(dlogits, at), shape)
        d_table = tf.IndexedSlices(tf.sparse.sparse_dense_matmul(weights, h, adjoint_a=True),
                                   words, tf.shape(table, out_type=words.dtype))
        d_h = tf.reduce_sum(dlogits[:, :, None] * rows, 1)
        return d_table, None, d_h

    return logits, grad


def glove_loss(prediction, log_x, weight):
    """Per-example sums of f(X_ij) (prediction - log X_ij)^2 over the pairs, shape (B,)."""
    return tf.reduce_sum(weight * tf.square(prediction - log_x), -1)


def build(method, vocab_size, dim):
    if method == "glove":
        return GloVe(vocab_size, dim, name="glove")
    return Word2Vec(vocab_size, dim, method, name=method)
