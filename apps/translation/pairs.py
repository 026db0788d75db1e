"""Sentence pairs streamed from files: a line index, and columns that read a pair when a batch needs it.

Two layouts of parallel text are read:

    TsvLayout       one file, "source<TAB>target[<TAB>anything]" per line (the
                    Anki / manythings.org format)
    ParallelLayout  two files of as many lines, line i of one translating line i
                    of the other (WMT's train.en / train.de)

`index_pairs` reads the file(s) once, line by line, and keeps only the byte
offset at which each usable line starts: an int64 array (pairs, files), 8
bytes a pair for a TSV file and 16 for two parallel files (36 MB for WMT14
en-de's 4.5 M pairs in one file); the split's columns add 8 bytes a pair, the
row of each example. The text itself is never held: `PairLines.pair(row)`
reads the line(s) of a row back with one `os.pread` per file. Lines are left
out by the rules of `parse` (the same rules when indexed and when read back):

    malformed  not UTF-8; in a TSV file also fewer than two tab-separated fields
    empty      blank, or a side with no text once surrounding white space is stripped

and counted and reported once for the file(s), naming the first few lines. A
UTF-8 byte-order mark at the start of a file is no character of its first line.

`PairColumn` is one of the three arrays of a split (apps.translation.data):
source ids (S,), decoder input ids [START] y (T,) and target ids y [END] (T,),
each read and encoded from the pair's text as a batch needs it.
"""

import array
import itertools
import os
import threading

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core.columns import SKIPPED, Column
from apps.core.data import graph_code
from apps.core.errors import UserError
from apps.translation.vocab import BOS, EOS, PAD, normalize

MALFORMED, EMPTY = "malformed", "empty"

#: the parts of an encoded pair, in the order of `PairEncoder.encode`'s outputs
SOURCE_IDS, DECODER_INPUT_IDS, TARGET_IDS = 0, 1, 2

#: rows read and encoded together when a pass or a cache reads many
BATCH = 4096


def _decoded(raw, at_start):
    """`raw` as text without its line ending (and without a byte-order mark at a
    file's start), or None when it is not UTF-8."""
    try:
        return raw.decode("utf-8-sig" if at_start else "utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None


class TsvLayout:
    """One tab-separated file: config.data.path."""

    def __init__(self, path, reverse=False):
        _check_file("config.data.path", path, "a tab-separated file of sentence pairs "
                    "(source<TAB>target per line)")
        self.paths, self.reverse = (path,), reverse
        self.name = path
        self.expected = "UTF-8 source<TAB>target"

    def parse(self, raws, offsets):
        """(source, target), or MALFORMED / EMPTY, of one line (read_tsv's rules)."""
        line = _decoded(raws[0], offsets[0] == 0)
        if line is None:
            return MALFORMED
        if not line.strip():
            return EMPTY
        fields = line.split("\t")
        if len(fields) < 2:
            return MALFORMED
        return _pair(fields[0], fields[1], self.reverse)

    def no_pairs(self, counts):
        return (f"config.data.path = {self.name!r}: no source<TAB>target pairs in its lines: "
                f"{counts}; expected UTF-8 text, one source<TAB>target pair per line")


class ParallelLayout:
    """Two files read in step: config.data.path (the source language) and
    config.data.target_path (its translation, line by line)."""

    def __init__(self, path, target_path, reverse=False):
        for field, value in (("config.data.path", path),
                             ("config.data.target_path", target_path)):
            _check_file(field, value, "a text file, one sentence per line, line i of "
                        "config.data.path translated by line i of config.data.target_path")
        self.paths, self.reverse = (path, target_path), reverse
        self.name = f"{path} / {target_path}"
        self.expected = "UTF-8 text"

    def parse(self, raws, offsets):
        """(source, target), or MALFORMED / EMPTY, of line i of both files."""
        lines = [_decoded(raw, offset == 0) for raw, offset in zip(raws, offsets, strict=True)]
        if None in lines:
            return MALFORMED
        return _pair(lines[0], lines[1], self.reverse)

    def no_pairs(self, counts):
        return (f"config.data.path = {self.paths[0]!r} and config.data.target_path = "
                f"{self.paths[1]!r}: no sentence pairs in their lines: {counts}; expected "
                "UTF-8 text, one sentence per line in each")


def _pair(source, target, reverse):
    source, target = source.strip(), target.strip()
    if reverse:
        source, target = target, source
    if not source or not target:
        return EMPTY
    return source, target


def _check_file(field, path, expected):
    if not path:
        raise UserError(f"{field} is empty: give {expected}")
    if os.path.isdir(path):
        raise UserError(f"{field} = {path!r}: a folder; expected {expected}")
    if not os.path.isfile(path):
        raise UserError(f"{field} = {path!r}: no such file")


def index_pairs(layout):
    """(PairLines of the usable lines, {"malformed": n, "empty": n}) in one pass
    over the file(s); what is left out is logged once, naming the first lines."""
    offsets = array.array("q")  # 8 bytes an offset while the pass grows it
    counts = {MALFORMED: 0, EMPTY: 0}
    first = {MALFORMED: [], EMPTY: []}
    files = [_open(path) for path in layout.paths]
    try:
        position = [0] * len(files)
        for number, raws in enumerate(itertools.zip_longest(*files), start=1):
            if None in raws:
                _unequal_lengths(layout, raws, number)
            kind = layout.parse(raws, position)
            if isinstance(kind, str):
                counts[kind] += 1
                if len(first[kind]) < 5:
                    first[kind].append(number)
            else:
                offsets.extend(position)
            position = [p + len(raw) for p, raw in zip(position, raws, strict=True)]
    except OSError as e:
        raise UserError(f"{layout.name}: cannot read ({e.strerror})") from None
    finally:
        for f in files:
            f.close()
    offsets = np.frombuffer(offsets, np.int64).reshape(-1, len(files))
    if counts[MALFORMED] or counts[EMPTY]:
        logging.warning(
            "%s: left out %d malformed line(s)%s, expected %s; and %d blank or with an empty "
            "side%s", layout.name, counts[MALFORMED], _lines(first[MALFORMED]), layout.expected,
            counts[EMPTY], _lines(first[EMPTY]))
    if not len(offsets):
        raise UserError(layout.no_pairs(
            f"{counts[MALFORMED]} malformed{_lines(first[MALFORMED])}, {counts[EMPTY]} blank "
            f"or with an empty side{_lines(first[EMPTY])}"))
    return PairLines(layout, offsets), counts


def _open(path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None


def _unequal_lengths(layout, raws, number):
    ended = [path for path, raw in zip(layout.paths, raws, strict=True) if raw is None]
    going = [path for path, raw in zip(layout.paths, raws, strict=True) if raw is not None]
    raise UserError(f"{ended[0]} has {number - 1} lines but {going[0]} has more; expected "
                    "as many lines in both files, line i of one translating line i of the other")


def _lines(numbers):
    """" (e.g. line 3 7 9)" for the first five line numbers, or ""."""
    return f" (e.g. line {' '.join(str(n) for n in numbers[:5])})" if numbers else ""


class PairLines:
    """The usable lines of a pair file (or of two parallel files), by row.

    Holds the byte offset of each row's line in each file and the files, open:
    `os.pread` reads a line at its offset without moving a shared position, so
    tf.data's threads read in parallel. A file changed in place since it was
    indexed (its size or modification time) makes every read a UserError, so
    an offset never lands inside another line; a file replaced by a new one is
    still read as it was indexed (its old contents stay open).
    """

    def __init__(self, layout, offsets):
        self.layout, self.offsets = layout, offsets
        self._files = [_open(path) for path in layout.paths]
        self._stats = [_stat_of(f) for f in self._files]

    def __len__(self):
        return len(self.offsets)

    def pair(self, row):
        """(source, target) of `row`: its text stripped (not yet normalised)."""
        offsets = self.offsets[row]
        raws = []
        for f, stat, offset, path in zip(self._files, self._stats, offsets, self.layout.paths,
                                         strict=True):
            if _stat_of(f) != stat:
                raise UserError(f"{path}: changed since its lines were indexed at the start "
                                "of the run; run the command again")
            raws.append(_line_at(f.fileno(), int(offset)))
        kind = self.layout.parse(raws, offsets)
        if isinstance(kind, str):  # the file's lines were checked when indexed
            raise UserError(f"{self.layout.name}: the line at byte {offsets[0]} is {kind} "
                            "now; the file changed since it was indexed")
        return kind

    def pairs(self, rows):
        """([sources], [targets]) of `rows`, in order."""
        pairs = [self.pair(row) for row in rows]
        return [s for s, _ in pairs], [t for _, t in pairs]

    def batches(self, rows, size=BATCH):
        """tf.data of (sources, targets) string batches of `rows`, in order,
        read ahead while the batches before are encoded."""
        def read(chunk):
            sources, targets = self.pairs(chunk)
            return _bytes(sources), _bytes(targets)

        def read_batch(chunk):
            sources, targets = tf.numpy_function(read, [chunk], [tf.string, tf.string],
                                                 stateful=False)
            return tf.ensure_shape(sources, [None]), tf.ensure_shape(targets, [None])

        ds = tf.data.Dataset.from_tensor_slices(np.asarray(rows, np.int64)).batch(size)
        return ds.map(graph_code(read_batch), num_parallel_calls=tf.data.AUTOTUNE,
                      deterministic=True).prefetch(2)


def _stat_of(f):
    stat = os.fstat(f.fileno())
    return stat.st_size, stat.st_mtime_ns


def _line_at(fd, offset):
    """The line starting at byte `offset` with its newline (none at the end of a file)."""
    size = 512  # most sentences fit; a longer line takes a few more reads
    while True:
        data = os.pread(fd, size, offset)
        end = data.find(b"\n")
        if end >= 0:
            return data[:end + 1]
        if len(data) < size:
            return data
        size *= 4


def _bytes(texts):
    return np.array([t.encode("utf-8") for t in texts], dtype=object)


class PairEncoder:
    """Text of a pair -> its three id arrays, as apps.translation.data.make_split
    lays them out:

        source_ids         x padded to S = source_width
        decoder_input_ids  [START] y padded to T = target_width
        target_ids         y [END] padded to T

    after `normalize` (strip, optionally lower-case) and the vocabularies'
    tokenization: the same TensorFlow ops as the in-memory path and the
    SavedModel, so a row read here equals that row encoded whole.
    """

    def __init__(self, lines, source_vocab, target_vocab, lowercase, source_width, target_width):
        self.lines = lines
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.lowercase = lowercase
        self.widths = (source_width, target_width, target_width)
        self._encode = tf.function(self.encode, autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])
        self._traced = threading.local()
        self._arrays = None  # (rows, arrays) of the latest `arrays` call

    def encode(self, sources, targets):
        """(B,) source and target strings -> (source_ids, decoder_input_ids, target_ids)."""
        x = self.source_vocab.ragged_ids(normalize(sources, self.lowercase))
        y = self.target_vocab.ragged_ids(normalize(targets, self.lowercase))
        source_width, width = self.widths[0], self.widths[1]
        # [BOS] + y and y + [EOS], cut to the width, written on the padded y (a
        # concatenation of ragged tensors takes seconds to trace).
        dense_y = tf.cast(y.to_tensor(PAD, shape=[None, width]), tf.int32)
        start = tf.fill([tf.shape(dense_y)[0], 1], BOS)
        at_end = tf.range(width)[None, :] == tf.cast(y.row_lengths(), tf.int32)[:, None]
        return (tf.cast(x.to_tensor(PAD, shape=[None, source_width]), tf.int32),
                tf.concat([start, dense_y[:, :width - 1]], axis=1),
                tf.where(at_end, EOS, dense_y))

    def arrays(self, rows):
        """The three arrays of `rows` (NumPy), read and encoded BATCH rows at a time.

        The latest result is kept for the same `rows` object, so a split's three
        columns cached in memory read and encode its lines once, not three times."""
        if self._arrays is not None and self._arrays[0] is rows:
            return self._arrays[1]
        parts = [[], [], []]
        for start in range(0, len(rows), BATCH):
            sources, targets = self.lines.pairs(rows[start:start + BATCH])
            encoded = self._encode(tf.constant(_bytes(sources), tf.string),
                                   tf.constant(_bytes(targets), tf.string))
            for part, values in zip(parts, encoded, strict=True):
                part.append(values.numpy())
        result = tuple(np.concatenate(p) if p else np.zeros((0, w), np.int32)
                       for p, w in zip(parts, self.widths, strict=True))
        self._arrays = (rows, result)
        return result

    def tf_example(self, rows, position):
        """((source_ids, decoder_input_ids, target_ids), ok) of rows[position] in a
        tf.data map; ok is False (and the line named once, apps.core.columns) when
        the line cannot be read.

        A split's three columns are read by apps.core.data.gather one after the
        other with the same `position` tensor: the first traces the read and the
        encoding, the two others reuse its outputs, so each example's line is
        read and parsed once, its source encoded once and its target once."""
        key = (position.ref(), id(rows))
        traced = getattr(self._traced, "last", None)
        if traced is not None and traced[0] == key:
            return traced[1]

        def read(p):
            try:
                source, target = self.lines.pair(rows[int(p)])
            except UserError as e:
                SKIPPED.add(str(e))
                return np.bytes_(b""), np.bytes_(b""), False
            return np.bytes_(source.encode("utf-8")), np.bytes_(target.encode("utf-8")), True

        source, target, ok = tf.numpy_function(read, [position],
                                               [tf.string, tf.string, tf.bool], stateful=False)
        x = self.source_vocab.ids(normalize(tf.ensure_shape(source, []), self.lowercase))
        y = self.target_vocab.ids(normalize(tf.ensure_shape(target, []), self.lowercase))
        ids = (x, tf.concat([[BOS], y], axis=0), tf.concat([y, [EOS]], axis=0))
        # Every row's lengths were measured when it was kept: the widths hold them.
        ok = tf.ensure_shape(ok, [])
        values = tuple(tf.ensure_shape(tf.pad(tf.cast(i, tf.int32), [[0, w - tf.shape(i)[0]]]),
                                       [w]) for i, w in zip(ids, self.widths, strict=True))
        result = (tuple(tf.where(ok, v, 0) for v in values), ok)  # zeros when unread
        self._traced.last = (key, result)
        return result


class PairColumn(Column):
    """Part `part` (SOURCE_IDS, DECODER_INPUT_IDS or TARGET_IDS) of the encoded
    pair at each of `rows` (rows of `encoder.lines`), int32 (width,)."""

    def __init__(self, encoder, part, rows):
        super().__init__(np.int32, (encoder.widths[part],), rows)
        self.encoder, self.part = encoder, part

    def _read(self, row):
        return self.encoder.arrays(np.array([row], np.int64))[self.part][0]

    def __getitem__(self, index):
        """The values at `index` (an int, an index array or a slice), read now."""
        if isinstance(index, slice):
            index = np.arange(len(self))[index]
        if np.ndim(index) == 0:
            return self._read(self.rows[index])
        return self.encoder.arrays(self.rows[np.asarray(index, np.int64)])[self.part]

    def materialize(self):
        return self.encoder.arrays(self.rows)[self.part]

    def tf_read(self, position):
        values, ok = self.encoder.tf_example(self.rows, position)
        return values[self.part], ok
