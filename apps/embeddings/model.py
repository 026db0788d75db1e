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
    axis B). Skip-gram's negatives are either drawn per pair, (B, C, 2W, k),
    or per centre word, (B, C, k), and then shared by the centre's pairs: each
    of the centre's k negatives n counts once for every pair whose target is
    not n, so the loss has the same expectation as with draws per pair, at a
    fraction of the work (all the pairs of a centre share h = e_c, so the
    logits theta_n . h are the same for them). Returns the logits inside the
    mask, flattened:

        positive           (P,)     theta_t . h   (h = e_c, or CBOW's window mean)
        positive_example   (P,)     the batch index of each pair
        negative           (N, k)   theta_n . h   (N = P, or the centres with pairs)
        negative_weight    (N, k)   how many pairs each negative stands for
                                    (0 where it equals the target)
        negative_example   (N,)
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
        center, context, mask = inputs["center"], inputs["context"], inputs["mask"]
        negatives = inputs["negatives"]
        e, theta = self.input_vectors, self.output_vectors
        centres = tf.where(tf.reduce_any(mask, -1))  # (N, 2): batch, slot
        if self.method == "skipgram":
            pairs = tf.where(mask)  # (P, 3): batch, slot, offset
            target = tf.gather_nd(context, pairs)
            positive = tf.reduce_sum(
                tf.gather(e, tf.gather_nd(center, pairs[:, :2])) * tf.gather(theta, target), -1)
            if negatives.shape.rank == 4:  # k per pair
                at, negative = pairs, tf.gather_nd(negatives, pairs)
                h = tf.gather(e, tf.gather_nd(center, pairs[:, :2]))
                weight = tf.cast(negative != target[:, None], e.dtype)
            else:  # k per centre, shared by its pairs
                at, negative = centres, tf.gather_nd(negatives, centres)
                h = tf.gather(e, tf.gather_nd(center, centres))
                window = tf.gather_nd(context, centres)[:, :, None]  # (N, 2W, 1)
                inside = tf.gather_nd(mask, centres)[:, :, None]
                weight = tf.reduce_sum(
                    tf.cast(inside & (window != negative[:, None, :]), e.dtype), 1)
            return {"positive": positive, "positive_example": pairs[:, 0],
                    "negative": tf.reduce_sum(h[:, None, :] * tf.gather(theta, negative), -1),
                    "negative_weight": weight, "negative_example": at[:, 0]}
        words = tf.gather_nd(context, centres)
        weights = tf.cast(tf.gather_nd(mask, centres), e.dtype)
        h = tf.reduce_sum(weights[:, :, None] * tf.gather(e, words), 1)
        h /= tf.reduce_sum(weights, -1, keepdims=True)
        target = tf.gather_nd(center, centres)
        negative = tf.gather_nd(negatives, centres)
        return {"positive": tf.reduce_sum(h * tf.gather(theta, target), -1),
                "positive_example": centres[:, 0],
                "negative": tf.reduce_sum(h[:, None, :] * tf.gather(theta, negative), -1),
                "negative_weight": tf.cast(negative != target[:, None], e.dtype),
                "negative_example": centres[:, 0]}

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
    """Per-example sums of -log sigma(pos) - sum_n weight_n log sigma(-neg_n), shape (batch_size,).

    -log sigma(x) = softplus(-x), computed stably.
    """
    positive = tf.math.unsorted_segment_sum(tf.nn.softplus(-outputs["positive"]),
                                            outputs["positive_example"], batch_size)
    negative = tf.reduce_sum(outputs["negative_weight"] * tf.nn.softplus(outputs["negative"]), -1)
    return positive + tf.math.unsorted_segment_sum(negative, outputs["negative_example"],
                                                   batch_size)


def glove_loss(prediction, log_x, weight):
    """Per-example sums of f(X_ij) (prediction - log X_ij)^2 over the pairs, shape (B,)."""
    return tf.reduce_sum(weight * tf.square(prediction - log_x), -1)


def build(method, vocab_size, dim):
    if method == "glove":
        return GloVe(vocab_size, dim, name="glove")
    return Word2Vec(vocab_size, dim, method, name=method)
