"""Text in, word ids out: the tokenizer, the vocabulary and the corpus readers.

    tokenize("The King's men, 2 of them.")  ->  ["the", "king's", "men", "2", "of", "them"]

The tokenizer lower-cases and splits punctuation off the words (a word is a
run of letters and digits, with inner apostrophes or hyphens kept:
"king's", "south-west"); punctuation marks are dropped, or kept as tokens of
their own with `keep_punctuation=True`.

A corpus is a sequence of sentences (one per line of a text file; a very
long line, such as text8's single line, is cut into sentences of at most
`max_sentence_words` words). Context windows never cross a sentence end.
"""

import collections
import dataclasses
import os
import re

import numpy as np

from apps.core.errors import UserError
from apps.core.text import utf8_lines

_WORD = r"[^\W_]+(?:['’\-][^\W_]+)*"
_WORDS_ONLY = re.compile(_WORD)
_WITH_PUNCTUATION = re.compile(_WORD + r"|[^\w\s]|_")


def tokenize(text, keep_punctuation=False):
    """Lower-cased words of `text`, punctuation split off (and dropped unless kept)."""
    pattern = _WITH_PUNCTUATION if keep_punctuation else _WORDS_ONLY
    return pattern.findall(text.lower())


@dataclasses.dataclass
class Vocabulary:
    """Words by descending count (ties in first-seen order), and their counts."""

    words: list
    counts: np.ndarray

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    def __contains__(self, word):
        return word in self.index

    def ids(self, tokens):
        """Ids of the tokens that are in the vocabulary (the others are dropped)."""
        index = self.index
        return [index[t] for t in tokens if t in index]

    @classmethod
    def build(cls, counter, min_count=1, max_size=0):
        """Words seen at least `min_count` times, the `max_size` most frequent (0 = all)."""
        # Counter keeps first-seen order, and sorted() is stable.
        kept = sorted(((w, c) for w, c in counter.items() if c >= min_count),
                      key=lambda wc: -wc[1])
        if max_size:
            kept = kept[:max_size]
        words = [w for w, _ in kept]
        return cls(words, np.array([c for _, c in kept], np.int64))


@dataclasses.dataclass
class Corpus:
    """The training text as word ids: `ids[k]` belongs to sentence `sentence[k]`."""

    ids: np.ndarray  # int32 (num_tokens,)
    sentence: np.ndarray  # int32 (num_tokens,), non-decreasing
    vocab: Vocabulary
    raw_words: int  # words before dropping those outside the vocabulary

    @property
    def sentences(self):
        """The corpus as lists of word strings (for gensim and for tests)."""
        bounds = np.flatnonzero(np.diff(self.sentence)) + 1
        words = self.vocab.words
        return [[words[i] for i in part] for part in np.split(self.ids, bounds) if len(part)]


def text_files(path):
    """The text files at `path` (a file, or every file under a folder, sorted)."""
    if not path:
        raise UserError("config.data.path is empty: give a text file or a folder of text files")
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise UserError(f"config.data.path = {path!r}: no such file or folder")
    files = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [os.path.join(root, n) for n in sorted(names) if not n.startswith(".")]
    if not files:
        raise UserError(f"config.data.path = {path!r}: the folder has no text files")
    return files


def file_lines(files):
    """The lines of the files, read strictly as UTF-8 (apps.core.text)."""
    for file in files:
        for _, line in utf8_lines(file):
            yield line


def sentences(lines, keep_punctuation=False, max_sentence_words=10_000):
    """Token lists, one per non-empty line, long lines cut at `max_sentence_words`."""
    for line in lines:
        tokens = tokenize(line, keep_punctuation)
        for start in range(0, len(tokens), max_sentence_words):
            yield tokens[start:start + max_sentence_words]


def build_corpus(make_lines, min_count=5, max_vocab=0, keep_punctuation=False,
                 max_sentence_words=10_000, max_words=0, source="the corpus"):
    """Two passes over `make_lines()`: count the words, then encode them.

    Returns a `Corpus`. `max_words` > 0 reads only that many words; `source`
    names the text in error messages (e.g. "config.data.path = 'a.txt'").
    """
    def stream():
        seen = 0
        for tokens in sentences(make_lines(), keep_punctuation, max_sentence_words):
            if max_words and seen + len(tokens) > max_words:
                tokens = tokens[:max_words - seen]
            seen += len(tokens)
            if tokens:
                yield tokens
            if max_words and seen >= max_words:
                return

    counter = collections.Counter()
    raw = 0
    for tokens in stream():
        counter.update(tokens)
        raw += len(tokens)
    if not raw:
        raise UserError(f"{source}: no words in the text (expected UTF-8 text, one sentence "
                        "or document per line)")
    vocab = Vocabulary.build(counter, min_count, max_vocab)
    if len(vocab) < 2:
        raise UserError(f"{source}: {len(vocab)} distinct word(s) of its {raw} occur "
                        f"config.data.min_count = {min_count} times or more; expected at "
                        "least 2: lower config.data.min_count or give more text")
    ids, sentence_ids = [], []
    number = 0
    for tokens in stream():
        encoded = vocab.ids(tokens)
        if encoded:
            ids.append(np.asarray(encoded, np.int32))
            sentence_ids.append(np.full(len(encoded), number, np.int32))
            number += 1
    return Corpus(np.concatenate(ids), np.concatenate(sentence_ids), vocab, raw)
