"""Data plumbing shared by the apps.

A `Split` holds its examples as NumPy arrays in memory, or as columns read
on demand (apps.core.columns: files, HDF5 rows) for data that do not fit;
this module splits them, and turns the training split into a deterministic,
resumable stream of batches:

* epoch e visits the examples in the order argsort(uniform(seed, e)), so the
  order depends only on the seed and the epoch, never on when the process
  started;
* the example at position p of the endless stream is augmented with the
  stateless seed (seed, p), so resuming at step s reproduces exactly what an
  uninterrupted run would have fed from step s on;
* under tf.distribute each input pipeline takes its slice of every global
  batch, so a global batch holds the same examples whatever the number of
  workers and replicas.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from apps.core.columns import SKIPPED, Column, NpyColumn
from apps.core.errors import UserError

#: A function for tf.data's map or filter, or an export endpoint, traced
#: without autograph. The apps' traced code is graph code already (tf.cond,
#: tf.while_loop, keras.ops), and autograph's conversion of it, which tf.data
#: and tf.function do unless told not to, costs seconds a run; the apps'
#: tf.functions pass autograph=False.
graph_code = tf.autograph.experimental.do_not_convert


@dataclasses.dataclass
class Split:
    """One split held in memory: `inputs` and `targets`, indexed together.

    Each is an array or a nested structure (dict, tuple) of arrays that share
    their first dimension, e.g. targets={"boxes": (N, 20, 4), "classes": (N, 20)};
    an array may be a `Column` read on demand (apps.core.columns).
    """

    inputs: object
    targets: object

    def __post_init__(self):
        sizes = {len(a) for a in tf.nest.flatten((self.inputs, self.targets))}
        if len(sizes) != 1:
            raise ValueError(f"inputs and targets differ in length: {sorted(sizes)}")

    def __len__(self):
        return len(tf.nest.flatten(self.inputs)[0])

    def take(self, index):
        """The examples at `index`; a column stays a column (nothing is read)."""
        return Split(*tf.nest.map_structure(
            lambda a: a.take(index) if isinstance(a, Column) else a[index],
            (self.inputs, self.targets)))

    def tensors(self):
        """(inputs, targets) for a tf.data map: arrays as constants, columns as they are."""
        return tf.nest.map_structure(lambda a: a if isinstance(a, Column) else tf.constant(a),
                                     (self.inputs, self.targets))


def gather(tensors, index):
    """Example `index` of Split.tensors(), and whether every column could read it."""
    ok = tf.constant(True)
    values = []
    for a in tf.nest.flatten(tensors):
        if isinstance(a, Column):
            value, read = a.tf_read(index)
            ok = tf.logical_and(ok, read)
        else:
            value = tf.gather(a, index)
        values.append(value)
    return tf.nest.pack_sequence_as(tensors, values), ok


def cached(split, cache):
    """`split` as config.data.cache asks.

    "none" leaves its columns streaming (decoded when a batch needs them);
    "memory" reads them into memory once (small data: then as fast as the
    embedded data); any other value is a folder where each column is decoded
    once into a .npy file (apps.core.columns.NpyColumn, memory-mapped: decoded
    pixels read from disk, for data that are slow to decode but do not fit in
    memory). A column's file is named by its fingerprint (its files, decoding
    and rows), so a second run, or another split of the same files, reuses it.
    """
    if cache == "none":
        return split
    if cache == "memory":
        def convert(a):
            return a.materialize()
    else:
        def convert(a):
            return cached_to_file(a, cache)
    return Split(*tf.nest.map_structure(
        lambda a: convert(a) if isinstance(a, Column) else a, (split.inputs, split.targets)))


def cached_to_file(column, folder, threads=None):
    """`column` decoded into FOLDER/<fingerprint>.npy (once; later calls reuse the
    file) and returned as an NpyColumn. The file is written under a temporary
    name and renamed when complete, so a killed run never leaves a partial
    cache; unreadable values are listed in <fingerprint>.json and stay unreadable."""
    import concurrent.futures
    import json
    import os

    key = column.fingerprint()
    path = os.path.join(folder, f"{key}.npy")
    bad_path = os.path.join(folder, f"{key}.json")
    if os.path.exists(path) and os.path.exists(bad_path):
        with open(bad_path, encoding="utf-8") as f:
            return NpyColumn(path, json.load(f))
    partial = os.path.join(folder, f"{key}.partial.npy")
    unreadable = {}
    try:
        os.makedirs(folder, exist_ok=True)
        values = np.lib.format.open_memmap(partial, "w+", column.dtype, column.shape)

        def read(position):
            try:
                values[position] = column[position]
            except UserError as e:  # named now; counted when training meets it
                SKIPPED.add(str(e))
                unreadable[position] = str(e)
        # Decoding (Pillow, h5py) releases the GIL: threads fill the file in parallel.
        with concurrent.futures.ThreadPoolExecutor(threads or os.cpu_count()) as pool:
            list(pool.map(read, range(len(column))))
        values.flush()
        with open(bad_path, "w", encoding="utf-8") as f:
            json.dump({str(k): v for k, v in sorted(unreadable.items())}, f)
        os.replace(partial, path)
    except OSError as e:
        for leftover in (partial, bad_path):
            if os.path.exists(leftover):
                os.remove(leftover)
        raise UserError(f"config.data.cache = {folder!r}: could not write the cache "
                        f"{path} ({e.strerror or e})") from None
    return NpyColumn(path, unreadable)


def stratified_split(labels, fractions, seed):
    """Index arrays, one per fraction, with each class spread by `fractions`.

    The first part takes what the rounding leaves; every later part with a
    fraction > 0 gets at least one example of each class that has enough.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n = len(members)
        enough = n >= len(fractions)
        counts = [max(1, round(f * n)) if f > 0 and enough else round(f * n)
                  for f in fractions[1:]]
        bounds = np.cumsum([n - sum(counts)] + counts)
        for part, chunk in zip(parts, np.split(members, bounds[:-1]), strict=True):
            part.append(chunk)
    return tuple(rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts)


def random_split(count, fractions, seed, where):
    """Index arrays, one per fraction, of a seeded permutation of range(count):
    every part after the first gets round(fraction * count) examples (at least
    one), the first the rest; a part left empty is a UserError naming `where`."""
    order = np.random.default_rng(seed).permutation(count).astype(np.int64)
    sizes = [max(1, round(f * count)) for f in fractions[1:]]
    first = count - sum(sizes)
    if first < 1:
        raise UserError(f"{where}: {count} examples are too few to split by "
                        f"fractions {tuple(fractions)}; expected at least one in each part")
    return tuple(np.split(order, np.cumsum([first] + sizes)[:-1]))


def steps_per_epoch(num_examples, global_batch_size, note=""):
    """Whole batches of an epoch; `note` follows the count in the error of too few."""
    if num_examples < global_batch_size:
        raise UserError(f"the training split has {num_examples} examples{note}, fewer than "
                        f"config.train.batch_size = {global_batch_size}")
    return num_examples // global_batch_size


def uniform_order(num_examples):
    """The default epoch order: a fresh permutation of all examples per epoch."""
    def order(epoch_seed):
        keys = tf.random.stateless_uniform([num_examples], seed=epoch_seed)
        return tf.cast(tf.argsort(keys, stable=True), tf.int64)

    return order


def train_stream(split, global_batch_size, seed, start_step=0, augment=None,
                 input_context=None, order=None, epoch_length=None):
    """The endless, deterministic stream of training batches from `start_step` on.

    Args:
      split: the training `Split`.
      global_batch_size: examples per step over all replicas.
      seed: the run's seed.
      start_step: the step to resume at.
      augment: optional fn(inputs, targets, seed[2]) -> (inputs, targets),
        using only stateless random ops keyed by `seed`.
      input_context: the tf.distribute.InputContext when called from
        `strategy.distribute_datasets_from_function`; this pipeline then yields
        per-replica batches of its slice of each global batch.
      order: fn(epoch_seed[2]) -> int64 indices of length `epoch_length`, the
        examples of one epoch in order (default: a permutation of all; an
        app may sample differently, e.g. P identities x K images per batch).
      epoch_length: the length of every epoch's order (default: the split's size).
    """
    n = epoch_length or len(split)
    order = order or uniform_order(len(split))
    tensors = split.tensors()
    start = start_step * global_batch_size
    first_epoch = start // n
    seed = tf.constant(seed, tf.int64)

    def epoch(e):
        positions = e * n + tf.range(n, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices((positions, order(tf.stack([seed, e]))))

    def example(position, index):
        (x, y), ok = gather(tensors, index)
        if augment is not None:
            x, y = augment(x, y, tf.stack([seed, position]))
        return x, y, ok

    ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
    ds = ds.skip(start - first_epoch * n)
    ds = ds.map(graph_code(example), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # An unreadable file (a column's value) is skipped: the batches close up
    # over it, the same way in every run, since reading a file is deterministic.
    ds = ds.filter(graph_code(_readable)).map(graph_code(_without_flag))
    ds = ds.batch(global_batch_size, drop_remainder=True)
    if input_context is not None and (input_context.num_input_pipelines > 1
                                      or input_context.num_replicas_in_sync > 1):
        pipes = input_context.num_input_pipelines
        share = global_batch_size // pipes
        lo = input_context.input_pipeline_id * share
        per_replica = input_context.get_per_replica_batch_size(global_batch_size)
        ds = ds.map(graph_code(
            lambda *batch: tf.nest.map_structure(lambda a: a[lo:lo + share], batch)))
        ds = ds.rebatch(per_replica, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    # Each pipeline already takes its own slice; tf.data must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _readable(x, y, ok):
    return ok


def _without_flag(x, y, ok):
    return x, y


#: the message of the error that evaluating a split with an unreadable file raises
UNREADABLE_IN_EVALUATION = "an unreadable file in an evaluation split"


def eval_batches(split, batch_size, example_fn=None):
    """The split in order, each example through `example_fn`, in batches.

    Every example must be read: evaluation's metrics pair outputs with the
    split's targets by position, so an unreadable file here is a UserError
    naming it (training, by contrast, skips it)."""
    tensors = split.tensors()

    def example(index):
        (x, y), ok = gather(tensors, index)
        tf.debugging.assert_equal(ok, True, message=UNREADABLE_IN_EVALUATION)
        return example_fn(x, y) if example_fn is not None else (x, y)

    ds = tf.data.Dataset.range(len(split)).map(graph_code(example),
                                                num_parallel_calls=tf.data.AUTOTUNE,
                                                deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_tfds(name, data_dir, split, **kwargs):
    """A prepared TFDS data set by name from `data_dir` (never downloads), read in
    order: for text and audio sets read in one pass (image sets are read by index,
    apps.core.tfds_source).

    Returns (tf.data.Dataset, tfds.core.DatasetInfo). A data set that is not
    in `data_dir` is a UserError saying how to prepare it.
    """
    from apps.core.tfds_source import builder, not_prepared

    tfds_builder = builder(name, data_dir)
    try:
        ds = tfds_builder.as_dataset(split=split, shuffle_files=False, **kwargs)
    except AssertionError:  # tfds's way of saying the files are not there
        raise not_prepared(name, tfds_builder.data_dir) from None
    except (KeyError, ValueError) as e:
        raise MissingSplit(f"TFDS data set {name!r} has no split {split!r} ({e})") from None
    except NotImplementedError:  # tf.data cannot read ArrayRecord files
        raise UserError(f"TFDS data set {name!r} is prepared as ArrayRecord only; this app "
                        "reads it in order through tf.data: prepare it as TFRecord too "
                        f"(`tfds build {name} --file_format=tfrecord`)") from None
    return ds, tfds_builder.info


class MissingSplit(UserError):
    """The TFDS data set exists but lacks the split asked for."""
