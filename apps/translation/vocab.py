"""Tokenizers: characters (the date task) or WordPiece subwords (real languages).

Both map text to integer ids with four reserved ids first:

    0 [PAD]   padding (masked everywhere)
    1 [UNK]   a token not in the vocabulary
    2 [START] the decoder's first input (teacher forcing shifts the target right by it)
    3 [END]   the end of a translation

and run as TensorFlow ops, so the same tokenization runs in training and
inside the exported SavedModel (strings in, strings out):

* `CharVocab`: one id per Unicode character, looked up through a dense
  code point -> id table (plain TF ops, no lookup-table resources, so the
  export needs nothing but TensorFlow).
* `WordPieceVocab`: keras-hub's WordPiece tokenizer with a vocabulary learned
  by keras-hub's `compute_word_piece_vocabulary` on the training split. Its
  tokenizer is a tensorflow-text op: a SavedModel using it loads after
  `import tensorflow_text` (detokenization is plain TF ops).
"""

import numpy as np
import tensorflow as tf

SPECIALS = ("[PAD]", "[UNK]", "[START]", "[END]")
PAD, UNK, BOS, EOS = 0, 1, 2, 3


def normalize(strings, lowercase):
    """Strips surrounding white space, optionally lower-cases (UTF-8 aware); TF ops."""
    strings = tf.strings.strip(strings)
    return tf.strings.lower(strings, encoding="utf-8") if lowercase else strings


def normalize_texts(texts, lowercase):
    """`normalize` on a list of Python strings -> list of str (the in-graph behaviour)."""
    if not len(texts):
        return []
    out = normalize(tf.constant(list(texts)), lowercase).numpy()
    return [t.decode("utf-8") for t in out]


class _Vocab:
    tokens: list

    def __len__(self):
        return len(self.tokens)

    def ragged_ids(self, strings):
        raise NotImplementedError

    def encode(self, texts):
        """Python texts -> list of id lists (no specials added)."""
        if not len(texts):
            return []
        ragged = self.ragged_ids(tf.constant(list(texts)))
        return [list(row) for row in ragged.numpy()] if hasattr(ragged, "numpy") else []

    def ids(self, string):
        """One string (a scalar tensor) -> its ids (1-D int32): `ragged_ids` of a
        batch of one, in fewer ops (what a tf.data map runs for every example)."""
        return self.ragged_ids(tf.reshape(string, [1]))[0]

    def tf_encode(self, strings, max_length):
        """(B,) strings -> (B, <= max_length) int32 ids, padded with 0, truncated."""
        ragged = self.ragged_ids(strings)[:, :max_length]
        return tf.cast(ragged.to_tensor(default_value=PAD), tf.int32)

    def tf_decode(self, ids):
        """(B, L) ids -> (B,) strings, stopping at the first [END]; specials dropped."""
        ids = tf.cast(ids, tf.int32)
        ended = tf.cumsum(tf.cast(tf.equal(ids, EOS), tf.int32), axis=1) > 0
        keep = tf.logical_and(tf.logical_not(ended), ids >= len(SPECIALS))
        keep = tf.logical_or(keep, tf.logical_and(tf.logical_not(ended), tf.equal(ids, UNK)))
        tokens = tf.gather(tf.constant(self.tokens), ids)
        tokens = tf.where(keep, tokens, "")
        return self._join(tokens, keep)

    def decode(self, ids):
        """One id sequence -> its string (Python)."""
        return self.tf_decode(tf.constant([list(ids) or [EOS]], tf.int32))[0].numpy().decode()


class CharVocab(_Vocab):
    kind = "char"

    def __init__(self, tokens):
        self.tokens = list(tokens)
        if tuple(self.tokens[:len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"the vocabulary must start with {SPECIALS}")
        points = [ord(t) for t in self.tokens[len(SPECIALS):]]
        size = (max(points) + 1) if points else 1
        table = np.full(size + 1, UNK, np.int32)  # the last entry: beyond the table
        for i, p in enumerate(points):
            table[p] = i + len(SPECIALS)
        self.table = table

    @classmethod
    def fit(cls, texts):
        """The characters of `texts`, sorted, after the reserved tokens."""
        chars = sorted(set("".join(texts)))
        return cls(list(SPECIALS) + chars)

    @staticmethod
    def code_points(strings):
        """The distinct code points of a (B,) string tensor, sorted (NumPy)."""
        points = tf.strings.unicode_decode(strings, "UTF-8", errors="replace").flat_values
        return np.unique(points.numpy())

    @classmethod
    def from_code_points(cls, points):
        """The vocabulary of these code points, in order after the reserved tokens:
        `fit` of texts whose sorted distinct code points they are (Python sorts
        characters by code point, so the texts' order does not matter)."""
        return cls(list(SPECIALS) + [chr(p) for p in points])

    def ragged_ids(self, strings):
        # On the flat code points: tf.where of ragged tensors takes a second to trace.
        return tf.ragged.map_flat_values(
            self._point_ids, tf.strings.unicode_decode(strings, "UTF-8", errors="replace"))

    def ids(self, string):
        return self._point_ids(tf.strings.unicode_decode(string, "UTF-8", errors="replace"))

    def _point_ids(self, points):
        """Code points -> ids: table[point], the last entry (unknown) past its end."""
        last = len(self.table) - 1
        return tf.gather(tf.constant(self.table), tf.where((points >= 0) & (points < last),
                                                           points, last))

    def _join(self, tokens, keep):
        return tf.strings.reduce_join(tokens, axis=1)


class WordPieceVocab(_Vocab):
    kind = "wordpiece"

    def __init__(self, tokens, lowercase=True):
        from keras_hub.tokenizers import WordPieceTokenizer

        self.tokens = list(tokens)
        self.lowercase = lowercase
        self.tokenizer = WordPieceTokenizer(vocabulary=self.tokens, lowercase=lowercase,
                                            oov_token="[UNK]", dtype="int32")

    @classmethod
    def fit(cls, texts, vocabulary_size, lowercase=True):
        """A WordPiece vocabulary of at most `vocabulary_size` learned on `texts`."""
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts))).batch(1024)
        return cls.fit_batches(ds, vocabulary_size, lowercase)

    @classmethod
    def fit_batches(cls, batches, vocabulary_size, lowercase=True):
        """`fit` on the texts of `batches`, a tf.data.Dataset of (B,) strings read
        once. keras-hub counts the words, then learns from the counts alone (its
        ties are broken alphabetically), so the texts' order and batching do not
        change the vocabulary; the one exception is a corpus of more than 5 M
        distinct words, where words of equal count at that cut are kept in the
        order first met."""
        from keras_hub.tokenizers import compute_word_piece_vocabulary

        tokens = compute_word_piece_vocabulary(batches, vocabulary_size, lowercase=lowercase,
                                               reserved_tokens=list(SPECIALS))
        return cls(tokens, lowercase)

    def ragged_ids(self, strings):
        ids = self.tokenizer(strings)
        if isinstance(ids, list):
            # Run eagerly (a split encoded in Python), keras-hub returns its
            # ragged output as Python lists, one per string, of any lengths.
            lengths = [len(row) for row in ids]
            flat = np.fromiter((i for row in ids for i in row), np.int32, sum(lengths))
            return tf.RaggedTensor.from_row_lengths(flat, tf.constant(lengths, tf.int64))
        if not isinstance(ids, tf.RaggedTensor):  # in a graph: dense when lengths agree
            ids = tf.RaggedTensor.from_tensor(ids)
        return ids

    def ids(self, string):
        return tf.convert_to_tensor(self.tokenizer(string))

    def _join(self, tokens, keep):
        # Words are joined by spaces and "##" continuation pieces glued on.
        text = tf.strings.reduce_join(tf.where(keep, tokens, ""), axis=1, separator=" ")
        text = tf.strings.regex_replace(text, r" +", " ")
        text = tf.strings.regex_replace(text, r" ##", "")
        return tf.strings.strip(text)
