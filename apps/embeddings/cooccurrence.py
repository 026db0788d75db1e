"""GloVe's co-occurrence counts, in bounded memory, and its training examples.

GloVe (Pennington et al., 2014) fits the counts

    X_ij = sum over positions p, q with 0 < |p - q| <= window in one sentence,
           ids[p] = i and ids[q] = j, of 1 / |p - q|

(symmetric: X_ij = X_ji). The number of distinct (i, j) grows with the
corpus, so the table is built on disk the way GloVe's own cooccur.c does:

1. `block_tokens` positions at a time, each occurrence of words a, b at
   distance d is added to a buffer as one int64, (i V + j) 2^7 + d with
   i = min(a, b), j = max(a, b): the table is counted for i <= j only;
2. when the buffer holds `memory_pairs` occurrences it is sorted (by key,
   then distance), the 1/d of each key are summed, and the distinct keys with
   their sums are spilled to disk as one sorted run;
3. the runs are merged by key range: each step reads at most
   memory_pairs / (2 runs) records of each run, takes every record up to
   the smallest last key read among the runs not read to their end (no run
   can hold a smaller key further on), sums equal keys (`sum_by_key`) and
   appends them to the table. The table is sorted by (i, j), each pair
   i <= j once.

`glove_examples` then shuffles the table on disk, with both orders of each
pair i != j (Sanders' two-pass shuffle: each X_ij to a random bucket of at
most about memory_pairs / 2, then each bucket permuted in memory; the result
is a uniformly random permutation, drawn from the seed), into the arrays i,
j, log X_ij and f(X_ij) that the training stream reads in chunks of
`chunk_pairs`.

Memory: the buffer of memory_pairs + window block_tokens occurrences, and
some 35 bytes an occurrence at the peak of a spill (the merge and the
shuffle hold about memory_pairs / 2 records at a time, at most about as
much); it does not grow with the corpus. Disk: 16 bytes a distinct pair
i <= j in the runs and the table, and an X_ij in the buckets and the
training arrays, in anonymous files (apps.embeddings.ondisk) freed as soon
as each is done with.
"""

import dataclasses
import math

import numpy as np
from absl import logging

from apps.core.data import Split
from apps.core.errors import UserError
from apps.embeddings.ondisk import DiskArray, Windows

#: one co-occurrence on disk: its key i * V + j and X_ij
PAIR = np.dtype([("key", np.int64), ("x", np.float64)])

WHAT = "GloVe's co-occurrence counts"

#: the low bits of an occurrence's int64 that hold its distance (cooccurrence)
DISTANCE_BITS = 7


@dataclasses.dataclass
class Cooccurrence:
    """The nonzero X_ij with i <= j on disk (X is symmetric), sorted by (i, j);
    `runs`: the sorted runs that counting spilled to disk (1 when the
    occurrences never outgrew memory_pairs)."""

    pairs: DiskArray  # PAIR records
    vocab_size: int
    runs: int

    def __len__(self):
        return len(self.pairs)

    def arrays(self):
        """(rows int32, cols int32, values float64) of the whole symmetric table,
        sorted by (row, col) (read whole: for small tables)."""
        pairs = both_orders(np.asarray(self.pairs), self.vocab_size)
        pairs = pairs[np.argsort(pairs["key"])]
        rows, cols = np.divmod(pairs["key"], self.vocab_size)
        return rows.astype(np.int32), cols.astype(np.int32), pairs["x"]


def both_orders(pairs, vocab_size):
    """PAIR records of X_ij with i <= j, followed by those of X_ji for i < j."""
    rows, cols = np.divmod(pairs["key"], vocab_size)
    apart = rows != cols
    mirrored = _records(cols[apart] * vocab_size + rows[apart], pairs["x"][apart])
    return np.concatenate([pairs, mirrored])


def sum_by_key(keys, values):
    """(distinct keys ascending, the sum of the values of each), each sum taken one
    value after another in the order the values come (a stable sort, then bincount)."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.diff(keys, prepend=keys[:1] - 1) != 0
    return keys[starts], np.bincount(np.cumsum(starts) - 1, weights=values[order])


def _records(keys, values):
    records = np.empty(len(keys), PAIR)
    records["key"], records["x"] = keys, values
    return records


def cooccurrence(ids, sentence, vocab_size, window, block_tokens=100_000,
                 memory_pairs=4_000_000, scratch=None):
    """The symmetric co-occurrence counts with 1/distance weighting (module docstring).

    `ids`, `sentence`: the corpus's arrays (NumPy or ondisk.DiskArray), read a
    block at a time; `scratch`: the folder of the files on disk (None: the
    system's temporary folder). Returns a `Cooccurrence`.

    Two positions at distance d holding words a and b are one occurrence of
    (i, j) = (min(a, b), max(a, b)), held as the one int64 (i V + j) 2^7 + d
    (d <= 100 < 2^7), so that a plain sort orders them by key and, within a
    key, by distance. A run's X_ij is the sum of 1/d over its key's
    occurrences, in that order, doubled when i = j: the formula counts the
    positions (p, q) and (q, p) once each in X_ij and in X_ji, which are the
    same entry when i = j.
    """
    if window >= 1 << DISTANCE_BITS:
        raise ValueError(f"window {window}: at most {(1 << DISTANCE_BITS) - 1}")
    if vocab_size ** 2 << DISTANCE_BITS >= 1 << 63:
        raise UserError(f"a vocabulary of {vocab_size} words is too large for GloVe's "
                        "co-occurrence keys; lower config.data.max_vocab")
    n, v = len(ids), np.int64(vocab_size)
    # Occurrences waiting to be spilled: memory_pairs, and room for one block more.
    held = np.empty(memory_pairs + window * block_tokens, np.int64)
    count = 0
    runs = []
    for start in range(0, n, block_tokens):
        stop = min(n, start + block_tokens)
        # The block's left positions, and `window` more to pair the last ones with.
        block_ids = np.asarray(ids[start:stop + window], np.int64)
        block_sentence = np.asarray(sentence[start:stop + window])
        left = np.arange(stop - start)
        for d in range(1, window + 1):
            p = left[left + d < len(block_ids)]
            p = p[block_sentence[p] == block_sentence[p + d]]
            a, b = block_ids[p], block_ids[p + d]
            key = np.minimum(a, b) * v + np.maximum(a, b)
            held[count:count + len(p)] = key << DISTANCE_BITS | d
            count += len(p)
        if count >= memory_pairs:
            runs.append(_spill(held[:count], v, scratch))
            count = 0
    if count or not runs:
        runs.append(_spill(held[:count], v, scratch))
    held = None  # the merge's memory
    return Cooccurrence(_merge(runs, memory_pairs, scratch), vocab_size, len(runs))


def _spill(occurrences, vocab_size, scratch):
    """The sorted run on disk of a buffer of occurrences (cooccurrence's docstring)."""
    occurrences.sort()
    keys = occurrences >> DISTANCE_BITS
    starts = np.diff(keys, prepend=-1) != 0
    x = np.bincount(np.cumsum(starts) - 1,
                    weights=1.0 / (occurrences & ((1 << DISTANCE_BITS) - 1)))
    keys = keys[starts]
    rows, cols = np.divmod(keys, vocab_size)
    x[rows == cols] *= 2
    run = DiskArray(scratch, PAIR, WHAT)
    run.append(_records(keys, x))
    return run


def _merge(runs, memory_pairs, scratch):
    """The sorted runs merged into one, equal keys summed (module docstring, 3)."""
    if len(runs) == 1:
        return runs[0]
    table = DiskArray(scratch, PAIR, WHAT)
    # Half of memory_pairs read at a time: a record takes twice an occurrence's bytes.
    step = max(1, memory_pairs // (2 * len(runs)))
    position = [0] * len(runs)
    while True:
        heads = [run[at:at + step] for run, at in zip(runs, position, strict=True)]
        if not any(len(h) for h in heads):
            break
        # A run read short of its end may hold larger keys only after its head.
        unfinished = [h["key"][-1] for h, run, at in zip(heads, runs, position, strict=True)
                      if at + len(h) < len(run)]
        taken = []
        for r, head in enumerate(heads):
            if unfinished:
                head = head[:np.searchsorted(head["key"], min(unfinished), side="right")]
            position[r] += len(head)
            taken.append(head)
        merged = np.concatenate(taken)
        table.append(_records(*sum_by_key(merged["key"], merged["x"])))
    for run in runs:
        run.close()
    return table


def glove_weight(x, x_max=100.0, alpha=0.75):
    """GloVe's weighting f(x) = min(1, (x / x_max)^alpha)."""
    return np.minimum(1.0, (np.asarray(x, np.float64) / x_max) ** alpha)


def glove_examples(table, chunk_pairs, multiple_of, seed, x_max, alpha,
                   memory_pairs=4_000_000, scratch=None):
    """Every nonzero X_ij of `table` (a Cooccurrence: both orders of each pair i != j),
    shuffled once from `seed`, in chunks of `chunk_pairs` (the last ones padded
    with i = j = 0, weight 0).

    Returns a Split with inputs {"i", "j", "log_x", "weight"}, each a `Windows`
    column of values of shape (chunk_pairs,) read from disk; the number of
    chunks is a multiple of `multiple_of`.
    """
    v = table.vocab_size
    rng = np.random.default_rng(seed)
    # At most 2 len(table) examples: buckets of about memory_pairs / 2 at most.
    buckets = [DiskArray(scratch, PAIR, WHAT)
               for _ in range(max(1, math.ceil(4 * len(table) / memory_pairs)))]
    block, n = max(1, memory_pairs // 4), 0
    for start in range(0, len(table), block):
        pairs = both_orders(table.pairs[start:start + block], v)
        n += len(pairs)
        # 16-bit bucket numbers, which NumPy's stable sort orders by radix.
        bucket = rng.integers(0, len(buckets), len(pairs),
                              dtype=np.uint16 if len(buckets) <= 1 << 16 else np.int64)
        bounds = np.cumsum(np.bincount(bucket, minlength=len(buckets)))[:-1]
        grouped = np.split(pairs[np.argsort(bucket, kind="stable")], bounds)
        for out, part in zip(buckets, grouped, strict=True):
            out.append(part)
    arrays = {"i": DiskArray(scratch, np.int32, WHAT), "j": DiskArray(scratch, np.int32, WHAT),
              "log_x": DiskArray(scratch, np.float32, WHAT),
              "weight": DiskArray(scratch, np.float32, WHAT)}
    for bucket in buckets:
        pairs = np.asarray(bucket)
        bucket.close()
        pairs = pairs[rng.permutation(len(pairs))]
        rows, cols = np.divmod(pairs["key"], v)
        arrays["i"].append(rows)
        arrays["j"].append(cols)
        arrays["log_x"].append(np.log(pairs["x"]))
        arrays["weight"].append(glove_weight(pairs["x"], x_max, alpha))
    chunks = multiple_of * max(1, math.ceil(n / (multiple_of * chunk_pairs)))
    logging.info("GloVe: %d nonzero X_ij in %d chunks of %d, shuffled in %d bucket(s)", n,
                 chunks, chunk_pairs, len(buckets))
    inputs = {name: Windows(array, chunks, chunk_pairs) for name, array in arrays.items()}
    return Split(inputs, np.zeros(chunks, np.int32))
