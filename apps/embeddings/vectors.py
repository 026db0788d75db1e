"""Word vectors as a table: nearest neighbours, similarity, analogies, and text files.

    vectors = WordVectors.load("glove.6B.50d.txt")       # GloVe or word2vec text format
    vectors.nearest("king", 5)                           # [(word, cosine), ...]
    vectors.similarity("king", "queen")                  # cos(u, v) = u . v / (|u| |v|)
    vectors.analogy("man", "woman", "king")              # [("queen", score), ...]

Analogies use 3CosAdd (Mikolov et al., 2013), as in the notes: for
a : b :: c : ?, the answer is

    argmax_{w not in {a, b, c}} cos(w, b - a + c)

on unit-normalised vectors (b - a + c is taken on the unit vectors, as
word2vec and gensim do).

The word2vec text format is a header line "<words> <dimension>" then one
line per word, "word x1 x2 ... xD"; GloVe's is the same without the header.
A word the table does not have is an `OutOfVocabulary` error (a UserError
with a one-line message), never a crash.
"""

import os

import numpy as np
from absl import logging

from apps.core.errors import UserError
from apps.core.text import utf8_lines


class OutOfVocabulary(UserError):
    """A query word that the vectors do not have."""


class WordVectors:
    """`words` (list of str) and their `matrix` (V, D) float32."""

    def __init__(self, words, matrix):
        self.words = list(words)
        self.matrix = np.asarray(matrix, np.float32)
        if self.matrix.ndim != 2 or len(self.words) != len(self.matrix):
            raise ValueError(f"{len(self.words)} words but a matrix of shape {self.matrix.shape}")
        self.index = {w: i for i, w in enumerate(self.words)}
        norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
        self.unit = self.matrix / np.maximum(norms, 1e-12)

    def __len__(self):
        return len(self.words)

    def __contains__(self, word):
        return word in self.index

    @property
    def dim(self):
        return self.matrix.shape[1]

    def id(self, word):
        """The row of `word` (looked up as given, then lower-cased)."""
        i = self.index.get(word, self.index.get(word.lower()))
        if i is None:
            raise OutOfVocabulary(f"{word!r} is not in the vocabulary ({len(self)} words)")
        return i

    def vector(self, word):
        return self.matrix[self.id(word)]

    def similarity(self, a, b):
        """Cosine similarity of two words."""
        return float(self.unit[self.id(a)] @ self.unit[self.id(b)])

    def nearest(self, word_or_vector, k=10, exclude=()):
        """The k words of highest cosine similarity (the query word itself excluded)."""
        if isinstance(word_or_vector, str):
            exclude = (*exclude, word_or_vector)
            query = self.unit[self.id(word_or_vector)]
        else:
            query = np.asarray(word_or_vector, np.float32)
            query = query / max(np.linalg.norm(query), 1e-12)
        scores = self.unit @ query
        for word in exclude:
            scores[self.id(word)] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        return [(self.words[i], float(scores[i])) for i in top if np.isfinite(scores[i])]

    def analogy(self, a, b, c, k=1):
        """a : b :: c : ? by 3CosAdd, the query words excluded."""
        target = self.unit[self.id(b)] - self.unit[self.id(a)] + self.unit[self.id(c)]
        return self.nearest(target, k, exclude=(a, b, c))

    def with_matrix(self, matrix):
        return WordVectors(self.words, matrix)

    # ------------------------------------------------------------------- I/O

    def save_word2vec_text(self, path):
        """Writes the word2vec text format (atomically: a temp file, then a rename)."""
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{len(self)} {self.dim}\n")
            for word, row in zip(self.words, self.matrix, strict=True):
                f.write(word + " " + " ".join(f"{x:.6g}" for x in row) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path, max_words=0):
        """Reads word2vec text format (with its header) or GloVe format (without).

        Every line must hold a word and the same number of finite numbers (the
        header's dimension, or the first line's); a header's word count must
        match the file. Anything else is a UserError naming path:line. A word
        that comes back keeps its first vector; the repeats are counted and
        logged (some published GloVe files have a few).
        """
        if os.path.isdir(path):
            raise UserError(f"{path}: a folder; expected a vectors file in GloVe or word2vec "
                            "text format")
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such vectors file")
        words, rows, dim, announced, repeats, seen = [], [], None, None, [], set()
        expected = ("GloVe or word2vec text format: save word2vec's binary vectors as text "
                    "first, e.g. with gensim's save_word2vec_format(..., binary=False)")
        for number, line in utf8_lines(path, expected):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                announced, dim = int(parts[0]), int(parts[1])  # the word2vec header
                continue
            if not line.strip():
                continue
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise UserError(f"{path}:{number}: expected a word and its vector's "
                                    f"numbers, found only {parts[0]!r}")
            if len(parts) != dim + 1:
                raise UserError(f"{path}:{number}: expected a word and {dim} numbers, "
                                f"found {len(parts) - 1}")
            row = _numbers(parts, path, number)
            if parts[0] in seen:
                repeats.append(number)
                continue
            seen.add(parts[0])
            rows.append(row)
            words.append(parts[0])
            if max_words and len(words) >= max_words:
                break
        if not words:
            raise UserError(f"{path}: no vectors found (expected GloVe or word2vec text "
                            "format: a word and its numbers per line)")
        if repeats:
            logging.warning("%s: skipped %d repeated word(s), keeping the first vector of each "
                            "(e.g. line %s)", path, len(repeats),
                            " ".join(map(str, repeats[:5])))
        if announced is not None and len(words) + len(repeats) != announced \
                and len(words) != max_words:
            raise UserError(f"{path}: the header announces {announced} words but the file "
                            f"holds {len(words)}; the file is cut short or its header is wrong")
        return cls(words, np.stack(rows))


def write_projector(vectors, logdir, max_words, counts=None):
    """vectors.tsv, metadata.tsv and projector_config.pbtxt in `logdir` (the
    `max_words` first words, the most frequent of a trained vocabulary; 0 = all),
    for TensorBoard's embedding projector."""
    from tensorboard.plugins import projector

    os.makedirs(logdir, exist_ok=True)
    n = min(len(vectors), max_words) if max_words else len(vectors)
    np.savetxt(os.path.join(logdir, "vectors.tsv"), vectors.matrix[:n], delimiter="\t",
               fmt="%.5g")
    with open(os.path.join(logdir, "metadata.tsv"), "w", encoding="utf-8") as f:
        f.write("word\tcount\n")
        for i in range(n):
            f.write(f"{vectors.words[i]}\t{int(counts[i]) if counts is not None else ''}\n")
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "word_vectors"
    embedding.tensor_path = "vectors.tsv"
    embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(logdir, config)


def _numbers(parts, path, number):
    """The vector of one line (parts = [word, x1, ..., xD]) as float32, all finite."""
    try:
        row = np.asarray(parts[1:], np.float32)
    except ValueError:
        bad = next(p for p in parts[1:] if not _is_number(p))
        raise UserError(f"{path}:{number}: {bad!r} in the vector of {parts[0]!r} is not a "
                        "number") from None
    if not np.all(np.isfinite(row)):
        bad = parts[1 + int(np.flatnonzero(~np.isfinite(row))[0])]
        raise UserError(f"{path}:{number}: the vector of {parts[0]!r} holds {bad!r}; "
                        "expected finite numbers")
    return row


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
