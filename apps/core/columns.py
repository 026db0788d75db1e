"""Columns read on demand: what a `Split` holds when its data do not fit in memory.

A Split's inputs and targets are NumPy arrays, or `Column`s: an index-
addressable sequence (its length and value i) whose values are read when
needed. The training stream and the evaluation batches (apps.core.data)
read a column's values inside tf.data's parallel map, so nothing is decoded
before the first step and memory does not grow with the data set; the order
of indices is the same function of (seed, epoch) as for arrays, so a resumed
run and several workers see exactly the examples an uninterrupted single
worker would.

- `FileColumn`: one file per value, decoded by a Python function (image
  files through Pillow, as apps.core.images.read_image reads them).
- `H5Column`: the rows of an HDF5 data set (h5py reads only the rows asked for).
- `ExampleColumn`: a value computed from example i of an index-addressable
  source (a prepared TFDS split, apps.core.tfds_source).
- `NpyColumn`: the rows of a .npy file, memory-mapped: what a column becomes
  once cached to disk (config.data.cache = a folder, apps.core.data.cached).

A value that cannot be read (a truncated JPEG in the middle of a folder) is
reported by `read_checked`: in training it is skipped, named once in the log
and counted (`skipped_files` in metrics.json); see apps.core.data.train_stream.
"""

import copy
import hashlib
import threading

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core.errors import UserError


class Column:
    """An index-addressable sequence of values of one dtype and shape.

    Subclasses implement `_read(row)` (one value as a NumPy array, or a
    UserError naming what could not be read). `rows` maps this column's
    positions to the rows of the underlying store, so `take` is cheap.
    """

    def __init__(self, dtype, value_shape, rows):
        self.dtype = np.dtype(dtype)
        self.value_shape = tuple(value_shape)
        self.rows = np.asarray(rows, np.int64)

    def __len__(self):
        return len(self.rows)

    @property
    def shape(self):
        """(length, *value_shape), as an array's."""
        return (len(self), *self.value_shape)

    def _read(self, row):
        raise NotImplementedError

    def identity(self):
        """A string naming where the values come from and how they are decoded
        (not which rows): with the rows it keys a column's file cache."""
        raise NotImplementedError(f"{type(self).__name__} cannot be cached to a file")

    def fingerprint(self):
        """Hex digest of (identity, dtype, value shape, rows): the same values, the same digest."""
        digest = hashlib.sha256(
            f"{self.identity()}|{self.dtype.str}|{self.value_shape}".encode())
        digest.update(self.rows.tobytes())
        return digest.hexdigest()[:32]

    def take(self, index):
        """The column of the values at `index` (positions of this column)."""
        taken = copy.copy(self)
        taken.rows = self.rows[np.asarray(index)]
        return taken

    def __getitem__(self, index):
        """The values at `index` (an int or an index array), read now, stacked."""
        if np.ndim(index) == 0:
            return self._read(self.rows[index])
        rows = self.rows[np.asarray(index, np.int64)]
        values = [self._read(row) for row in rows]
        return np.stack(values) if values else np.zeros((0, *self.value_shape), self.dtype)

    def read_checked(self, position):
        """(value, True), or (zeros, False) for a value that cannot be read: the
        first time a row fails it is named in a warning and counted."""
        row = int(self.rows[position])
        try:
            return self._read(row), True
        except UserError as e:
            SKIPPED.add(str(e))
            return np.zeros(self.value_shape, self.dtype), False

    def tf_read(self, position):
        """(value, ok) of `position` (an int64 scalar tensor), for a tf.data map."""
        value, ok = tf.numpy_function(
            lambda p: self.read_checked(int(p)), [position], [tf.as_dtype(self.dtype), tf.bool],
            stateful=False)
        return tf.ensure_shape(value, self.value_shape), tf.ensure_shape(ok, [])

    def materialize(self):
        """All values read into one NumPy array (config.data.cache = memory), filled
        in place (a list of values then stacked would need twice the memory)."""
        values = np.empty(self.shape, self.dtype)
        for position, row in enumerate(self.rows):
            values[position] = self._read(row)
        return values

    def __array__(self, dtype=None, copy=None):
        """All values (so np.asarray and tf.convert_to_tensor take a small column whole,
        as evaluation pictures of a validation split do)."""
        values = self.materialize()
        return values if dtype is None else values.astype(dtype)


class _Skipped:
    """Every failed read so far: each file named once in the log; counted per
    reader by `mark()` / `since(mark)` (a run counts the files it met)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.events = []  # the message of every failed read, in order
        self.named = set()
        self.last = None  # the latest, for an error that must name it

    def add(self, message):
        with self._lock:
            if message not in self.named:
                self.named.add(message)
                logging.warning("skipped %s", message)
            self.events.append(message)
            self.last = message

    def mark(self):
        with self._lock:
            return len(self.events)

    def since(self, mark):
        """How many distinct files failed to read since `mark`."""
        with self._lock:
            return len(set(self.events[mark:]))


#: every Column's unreadable values in this process
SKIPPED = _Skipped()


class FileColumn(Column):
    """One file per value: `read(path)` decodes it to `dtype`/`value_shape` (a
    UserError for an unreadable file); `decoding` names how (e.g. the image
    size and crop), for the file cache's key."""

    def __init__(self, paths, read, dtype, value_shape, decoding=""):
        super().__init__(dtype, value_shape, np.arange(len(paths)))
        self.paths = list(paths)
        self.read = read
        self.decoding = decoding or getattr(read, "__qualname__", repr(read))

    def identity(self):
        return "files|" + self.decoding + "|" + "\n".join(self.paths)

    def _read(self, row):
        value = np.asarray(self.read(self.paths[row]), self.dtype)
        if value.shape != self.value_shape:
            raise UserError(f"{self.paths[row]}: decoded to shape {value.shape}, expected "
                            f"{self.value_shape}")
        return value


class H5Column(Column):
    """The rows of data set `key` of the HDF5 file `path` (opened once per thread)."""

    def __init__(self, path, key):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if key not in f:
                    raise UserError(f"{path}: no data set {key!r} (it has "
                                    f"{', '.join(sorted(f.keys())) or 'none'})")
                dataset = f[key]
                dtype, shape, length = dataset.dtype, dataset.shape[1:], dataset.shape[0]
        except OSError as e:
            raise UserError(f"{path}: not a readable HDF5 file ({e})") from None
        super().__init__(dtype, shape, np.arange(length))
        self.path, self.key = path, key
        self._local = threading.local()

    def identity(self):
        import os

        stat = os.stat(self.path)
        return f"h5|{os.path.abspath(self.path)}|{self.key}|{stat.st_size}|{stat.st_mtime_ns}"

    def _read(self, row):
        import h5py

        if getattr(self._local, "file", None) is None:
            self._local.file = h5py.File(self.path, "r")
        return np.asarray(self._local.file[self.key][row], self.dtype)


class ExampleColumn(Column):
    """`convert(source[row])` for each row of `source`, a sequence of examples read
    by index (a prepared TFDS split: apps.core.tfds_source.TFDSSource).

    `convert` returns a `dtype`/`value_shape` value or raises UserError; an
    error reading the record itself becomes a UserError naming the example.
    `decoding` names what `convert` does, for the file cache's key.
    """

    def __init__(self, source, convert, dtype, value_shape, decoding):
        super().__init__(dtype, value_shape, np.arange(len(source)))
        self.source, self.convert, self.decoding = source, convert, decoding

    def identity(self):
        return f"examples|{self.source.identity()}|{self.decoding}"

    def _read(self, row):
        example = self.source.example(int(row))
        try:
            value = np.asarray(self.convert(example), self.dtype)
        except UserError as e:
            raise UserError(f"{self.source.name(row)}: {e}") from None
        if value.shape != self.value_shape:
            raise UserError(f"{self.source.name(row)}: converted to shape {value.shape}, "
                            f"expected {self.value_shape}")
        return value


class NpyColumn(Column):
    """The rows of a .npy file, memory-mapped (a column cached to disk); rows listed
    in `unreadable` ({row: message}) failed when the cache was written and fail again."""

    def __init__(self, path, unreadable=None):
        values = np.load(path, mmap_mode="r")
        super().__init__(values.dtype, values.shape[1:], np.arange(len(values)))
        self.path, self.values = path, values
        self.unreadable = {int(k): v for k, v in (unreadable or {}).items()}

    def identity(self):
        return f"npy|{self.path}"

    def _read(self, row):
        if int(row) in self.unreadable:
            raise UserError(self.unreadable[int(row)])
        return np.array(self.values[row])
