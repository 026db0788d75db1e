"""Text in, word ids out: the tokenizer, the vocabulary and the corpus readers.

    tokenize("The King's men, 2 of them.")  ->  ["the", "king's", "men", "2", "of", "them"]

The tokenizer lower-cases and splits punctuation off the words (a word is a
run of letters and digits, with inner apostrophes or hyphens kept:
"king's", "south-west"); punctuation marks are dropped, or kept as tokens of
their own with `keep_punctuation=True`.

A corpus is a sequence of sentences (one per line of a text file; a very
long line, such as text8's single line, is cut into sentences of at most
`max_sentence_words` words). Context windows never cross a sentence end.
`build_corpus` reads the text once and keeps the corpus on disk as word ids
and sentence numbers (apps.embeddings.ondisk), so memory holds the distinct
words and a block of text, whatever the size of the corpus.
"""

import array
import dataclasses
import os
import re

import numpy as np

from apps.core.errors import UserError
from apps.core.text import utf8_lines
from apps.embeddings.ondisk import DiskArray

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
        counts = np.fromiter(counter.values(), np.int64, len(counter))
        return cls.ranked(list(counter), counts, min_count, max_size)[0]

    @classmethod
    def ranked(cls, words, counts, min_count=1, max_size=0):
        """(vocabulary, kept): `words` in first-seen order with their `counts`, ranked
        as `build` ranks them; kept[k] is the position in `words` of word k."""
        counts = np.asarray(counts, np.int64)
        kept = np.argsort(-counts, kind="stable")
        kept = kept[counts[kept] >= min_count]
        if max_size:
            kept = kept[:max_size]
        return cls([words[k] for k in kept], counts[kept]), kept


@dataclasses.dataclass
class Corpus:
    """The training text as word ids: `ids[k]` belongs to sentence `sentence[k]`.

    The two arrays are NumPy arrays or `ondisk.DiskArray`s (what build_corpus
    writes): both read `a[lo:hi]`, `len(a)` and `np.asarray(a)`.
    """

    ids: object  # int32 (num_tokens,)
    sentence: object  # int32 (num_tokens,), non-decreasing from 0, no number skipped
    vocab: Vocabulary
    raw_words: int  # words before dropping those outside the vocabulary

    @property
    def num_sentences(self):
        return int(self.sentence[len(self.sentence) - 1]) + 1 if len(self.sentence) else 0

    @property
    def sentences(self):
        """The corpus as lists of word strings, read from the arrays on each pass
        (for gensim, which iterates once per epoch, and for tests)."""
        return Sentences(self)


class Sentences:
    """The sentences of a `Corpus` as lists of words: a sized iterable that reads
    `block` tokens at a time, so the corpus is never held whole."""

    def __init__(self, corpus, block=1 << 20):
        self.corpus, self.block = corpus, block

    def __len__(self):
        return self.corpus.num_sentences

    def __iter__(self):
        words, ids, sentence = self.corpus.vocab.words, self.corpus.ids, self.corpus.sentence
        pending, last = [], None  # the last sentence of a block (it may go on), its number
        for start in range(0, len(ids), self.block):
            block_ids = ids[start:start + self.block]
            block_sentence = sentence[start:start + self.block]
            if pending and block_sentence[0] != last:
                yield pending
                pending = []
            last = block_sentence[-1]
            bounds = np.flatnonzero(np.diff(block_sentence)) + 1
            parts = np.split(block_ids, bounds)
            for k, part in enumerate(parts):
                pending += [words[i] for i in part]
                if k < len(parts) - 1:
                    yield pending
                    pending = []
        if pending:
            yield pending


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
                 max_sentence_words=10_000, max_words=0, source="the corpus", scratch=None,
                 block_tokens=1 << 20):
    """One pass over `make_lines()`: the words counted and written to disk as they come.

    Each word gets a provisional id, its first-seen rank, and the provisional
    ids and sentence numbers go to anonymous files in `scratch` (a folder;
    None: the system's temporary folder) `block_tokens` at a time. Then the
    vocabulary is ranked (Vocabulary.ranked) and a pass over those files, not
    over the text, maps each provisional id to its word's id, drops the
    words outside the vocabulary and numbers the sentences that keep a word
    0, 1, 2, ... So the text is read and tokenized once, and memory holds the
    distinct words and one block, never the corpus.

    Returns a `Corpus` of `ondisk.DiskArray`s. `max_words` > 0 reads only that
    many words; `source` names the text in error messages (e.g.
    "config.data.path = 'a.txt'").
    """
    index = {}  # word -> provisional id
    counts = np.zeros(0, np.int64)  # by provisional id
    seen_ids = DiskArray(scratch, np.int32, "the corpus's word ids")
    seen_sentence = DiskArray(scratch, np.int32, "the corpus's sentence numbers")
    block_ids, lengths = array.array("i"), []  # the block's ids, its sentences' lengths
    raw = numbered = 0  # words read, sentences written

    def flush():
        nonlocal counts, numbered
        encoded = np.frombuffer(block_ids, np.int32).copy()  # block_ids is cleared below
        seen_ids.append(encoded)
        seen_sentence.append(np.repeat(np.arange(numbered, numbered + len(lengths)), lengths))
        numbered += len(lengths)
        grown = np.zeros(len(index), np.int64)
        grown[:len(counts)] = counts
        counts = grown + np.bincount(encoded, minlength=len(index))
        del block_ids[:]
        lengths.clear()

    for tokens in sentences(make_lines(), keep_punctuation, max_sentence_words):
        if max_words and raw + len(tokens) > max_words:
            tokens = tokens[:max_words - raw]
        if tokens:
            # setdefault gives a new word the next id: len(index) before it is added.
            block_ids.extend([index.setdefault(t, len(index)) for t in tokens])
            lengths.append(len(tokens))
            raw += len(tokens)
            if len(block_ids) >= block_tokens:
                flush()
        if max_words and raw >= max_words:
            break
    flush()
    if not raw:
        raise UserError(f"{source}: no words in the text (expected UTF-8 text, one sentence "
                        "or document per line)")
    vocab, kept = Vocabulary.ranked(list(index), counts, min_count, max_vocab)
    index.clear()  # the words outside the vocabulary are not needed any more
    if len(vocab) < 2:
        raise UserError(f"{source}: {len(vocab)} distinct word(s) of its {raw} occur "
                        f"config.data.min_count = {min_count} times or more; expected at "
                        "least 2: lower config.data.min_count or give more text")
    word_id = np.full(len(counts), -1, np.int32)  # provisional id -> id, -1: dropped
    word_id[kept] = np.arange(len(kept), dtype=np.int32)
    ids = DiskArray(scratch, np.int32, "the corpus's word ids")
    sentence = DiskArray(scratch, np.int32, "the corpus's sentence numbers")
    last, number = -1, 0  # the last provisional sentence kept; sentences kept so far
    for start in range(0, len(seen_ids), block_tokens):
        encoded = word_id[seen_ids[start:start + block_tokens]]
        inside = encoded >= 0
        provisional = seen_sentence[start:start + block_tokens][inside]
        if not len(provisional):
            continue
        # A sentence starts where the provisional number changes (across blocks too).
        starts = np.diff(provisional, prepend=last) != 0
        ids.append(encoded[inside])
        sentence.append(number + np.cumsum(starts, dtype=np.int64) - 1)
        number += int(starts.sum())
        last = provisional[-1]
    seen_ids.close()
    seen_sentence.close()
    return Corpus(ids, sentence, vocab, raw)
