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

from apps.embeddings import fused

METHODS = ("skipgram", "cbow", "glove")


class Word2Vec(keras.Model):
    """Skip-gram or CBOW: input embeddings e (V, D) and output embeddings theta (V, D).

    Initialised as word2vec does: e ~ U(-0.5 / D, 0.5 / D), theta = 0.

    Call with the batched outputs of `data.Word2VecExamples` (leading batch
    axis B); returns {"loss": (B,)}, each chunk's sum of the loss above over
    its pairs, computed by `fused.loss`. The negatives, k per pair in
    expectation:

        per block (`negatives_per_block`, the default config): the centre
            words of each block of `fused.BLOCK` consecutive slots share N
            draws, each weighted k / N for each of a centre's pairs whose
            target it is not; a block's logits are then one small matrix
            product, and a step gathers a fraction of the rows;
        per centre word: h against c's own k negatives, each counting once
            for every pair whose target is not n (all the pairs of a centre
            share h = e_c, so the logits theta_n . h are the same for them);
        skip-gram, per pair (share_negatives=False): each pair's own k.

    Each has the loss's expectation of k draws per pair. The gradients of the
    tables are tf.IndexedSlices over the batch's distinct words, summed
    (`sparse.SparseAdaGrad` updates those rows only).
    """

    def __init__(self, vocab_size, dim, method="skipgram", negatives_per_block=False, **kwargs):
        super().__init__(**kwargs)
        if method not in ("skipgram", "cbow"):
            raise ValueError(f"method must be skipgram or cbow, not {method!r}")
        self.vocab_size, self.dim, self.method = vocab_size, dim, method
        self.negatives_per_block = bool(negatives_per_block)
        scale = 0.5 / dim
        self.input_vectors = self.add_weight(
            shape=(vocab_size, dim), name="input_vectors",
            initializer=keras.initializers.RandomUniform(-scale, scale))
        self.output_vectors = self.add_weight(shape=(vocab_size, dim), name="output_vectors",
                                              initializer="zeros")

    def call(self, inputs):
        return {"loss": fused.loss(
            tf.convert_to_tensor(self.input_vectors), tf.convert_to_tensor(self.output_vectors),
            self.method, inputs["tokens"], inputs["mask"], inputs["negatives"],
            inputs["negative_weight"], per_block=self.negatives_per_block)}

    def vectors(self):
        """The word vectors: the input embeddings e."""
        return tf.convert_to_tensor(self.input_vectors)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim,
                "method": self.method, "negatives_per_block": self.negatives_per_block}


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


def glove_loss(prediction, log_x, weight):
    """Per-example sums of f(X_ij) (prediction - log X_ij)^2 over the pairs, shape (B,)."""
    return tf.reduce_sum(weight * tf.square(prediction - log_x), -1)


def build(method, vocab_size, dim, negatives_per_block=False):
    if method == "glove":
        return GloVe(vocab_size, dim, name="glove")
    return Word2Vec(vocab_size, dim, method, negatives_per_block, name=method)
