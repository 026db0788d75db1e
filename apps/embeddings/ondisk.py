"""Arrays on disk for a corpus larger than memory, and the Column of their windows.

A `DiskArray` is a one-dimensional array that grows by appended blocks in an
anonymous temporary file (`tempfile.TemporaryFile`: on Linux the file never
has a name, elsewhere it is unlinked at once), then is read back a slice at
a time. So nothing is left behind, whatever way the process ends (even
SIGKILL): the disk space is freed when the array is closed or collected, or
when the process exits. The files go in the run's workdir (apps.embeddings
.task), the disk the user chose for the run, rather than in /tmp, which is
often small or held in memory (tmpfs).

Slices are read with `os.pread`, not through a memory map: a mapped page that
has been read counts in the process's resident set (RSS) until the kernel
takes it back, so an epoch over a mapped 10 GB corpus would show as a 10 GB
process; pread leaves the pages in the kernel's page cache only. pread takes
its offset as an argument, so tf.data's parallel readers share one file
without a lock.

`Windows` is the Column whose value i is the slice

    array[i * step - margin : i * step + step + margin]

with `fill` where it runs past either end of the array (word2vec's chunks of
the corpus with a margin of context on each side; GloVe's chunks of pairs).
"""

import os
import tempfile

import numpy as np

from apps.core.columns import Column
from apps.core.errors import UserError


class DiskArray:
    """A one-dimensional array of `dtype` in an anonymous file in `folder`.

    `append` blocks, then read slices (`a[lo:hi]`, `a[k]`, `np.asarray(a)`).
    `what` names the contents in the error for a disk that cannot take them.
    """

    def __init__(self, folder, dtype, what):
        self.dtype = np.dtype(dtype)
        self.folder, self.what = folder or tempfile.gettempdir(), what
        self.length = 0
        try:
            self._file = tempfile.TemporaryFile(dir=self.folder)
        except OSError as e:
            raise self._error(e) from None
        self._unflushed = False

    def _error(self, e):
        return UserError(f"{self.folder}: cannot write {self.what} to a temporary file there "
                         f"({e.strerror}); make room there or choose another --workdir")

    def append(self, values):
        values = np.ascontiguousarray(values, self.dtype).ravel()
        try:
            self._file.write(values.view(np.uint8).data)
        except OSError as e:
            raise self._error(e) from None
        self.length += len(values)
        self._unflushed = True

    def __len__(self):
        return self.length

    @property
    def shape(self):
        return (self.length,)

    def __getitem__(self, index):
        """A slice (step 1) as a new array, or one element."""
        if isinstance(index, slice):
            start, stop, step = index.indices(self.length)
            if step != 1:
                raise IndexError("a DiskArray reads slices of step 1 only")
            return self.read(start, stop)
        position = int(index) + (self.length if index < 0 else 0)
        if not 0 <= position < self.length:
            raise IndexError(f"index {index} out of range for length {self.length}")
        return self.read(position, position + 1)[0]

    def read(self, start, stop):
        """Elements [start, stop) (0 <= start, stop <= len), read from the file."""
        if self._unflushed:
            self._file.flush()
            self._unflushed = False
        count = max(0, stop - start)
        out = np.empty(count, self.dtype)
        view, size = out.view(np.uint8), out.nbytes
        done, offset = 0, start * self.dtype.itemsize
        while done < size:  # one pread returns at most about 2 GiB
            data = os.pread(self._file.fileno(), size - done, offset + done)
            if not data:
                raise OSError(f"{self.what}: the temporary file ended early")
            view[done:done + len(data)] = np.frombuffer(data, np.uint8)
            done += len(data)
        return out

    def __array__(self, dtype=None, copy=None):
        values = self.read(0, self.length)
        return values if dtype is None else values.astype(dtype)

    def close(self):
        """Frees the disk space now (it is freed anyway when the array is collected)."""
        self._file.close()


class Windows(Column):
    """Value i: array[i * step - margin : (i + 1) * step + margin], `fill` past the ends.

    `array` is anything that reads `array[lo:hi]` into a NumPy array (a
    DiskArray, an ndarray); `count` values.
    """

    def __init__(self, array, count, step, margin=0, fill=0):
        super().__init__(array.dtype, (step + 2 * margin,), np.arange(count))
        self.array, self.step, self.margin, self.fill = array, step, margin, fill

    def _read(self, row):
        start = row * self.step - self.margin
        out = np.full(self.value_shape, self.fill, self.dtype)
        lo, hi = max(start, 0), min(start + len(out), len(self.array))
        if lo < hi:
            out[lo - start:hi - start] = self.array[lo:hi]
        return out
