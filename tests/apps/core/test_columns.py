"""Columns read on demand stream exactly as arrays in memory do.

What makes resume exact and workers agree for arrays (the order of indices is
a function of (seed, epoch); each input pipeline takes its slice of every
global batch) must hold for files read as training goes: the same batches,
from any start step, in any pipeline's slice. An unreadable file is skipped
in training and counted; in evaluation it is an error.
"""

import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

from apps.classification.task import ClassificationTask
from apps.core import columns, data
from apps.core.columns import FileColumn, H5Column
from apps.core.errors import UserError
from apps.core.main import execute
from apps.core.workdir import read_metrics
from configs.classification import get_config


def _files(tmp_path, values):
    paths = []
    for i, value in enumerate(values):
        path = tmp_path / f"{i}.npy"
        np.save(path, value)
        paths.append(str(path))
    return paths


def _read_npy(path):
    try:
        return np.load(path)
    except ValueError as e:
        raise UserError(f"{path}: not a NumPy file ({e})") from None


@pytest.fixture
def twin_splits(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 3)).astype(np.float32)
    labels = np.arange(40, dtype=np.int64)
    column = FileColumn(_files(tmp_path, values), _read_npy, np.float32, (3,))
    return data.Split(values, labels), data.Split(column, labels)


def _batches(split, start_step, steps, context=None):
    def augment(x, y, seed):  # keyed by the example's position, as apps augment
        return x + tf.random.stateless_uniform([3], seed), y

    stream = data.train_stream(split, 8, seed=3, start_step=start_step, augment=augment,
                               input_context=context)
    return [tuple(t.numpy() for t in batch) for batch in stream.take(steps)]


@pytest.mark.parametrize("start_step", [0, 7])
def test_a_column_streams_the_batches_of_its_arrays(twin_splits, start_step):
    arrays, files = twin_splits
    for a, b in zip(_batches(arrays, start_step, 6), _batches(files, start_step, 6),
                    strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # Resuming at step 7 gives what an uninterrupted stream gives there.
    np.testing.assert_array_equal(_batches(files, 0, 9)[7][1], _batches(files, 7, 1)[0][1])


def test_each_pipeline_reads_its_slice_of_the_global_batch(twin_splits):
    arrays, files = twin_splits
    whole = _batches(arrays, 2, 3)
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        part = _batches(files, 2, 3, context)
        for full, mine in zip(whole, part, strict=True):
            np.testing.assert_array_equal(full[1][pipeline * 4:(pipeline + 1) * 4], mine[1])


def test_an_unreadable_file_is_skipped_in_training_and_an_error_in_evaluation(twin_splits,
                                                                             caplog):
    _, files = twin_splits
    with open(files.inputs.paths[5], "wb") as f:
        f.write(b"damaged")
    mark = columns.SKIPPED.mark()
    seen = np.concatenate([labels for _, labels in _batches(files, 0, 10)])
    assert 5 not in seen and len(seen) == 80  # the batches close up over it
    assert columns.SKIPPED.since(mark) == 1
    assert caplog.text.count("0.npy") == 0 and caplog.text.count("5.npy: not a NumPy") == 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="unreadable file"):
        list(data.eval_batches(files, 8))


def test_evaluation_batches_of_a_column_equal_those_of_its_arrays(twin_splits):
    arrays, files = twin_splits
    for a, b in zip(data.eval_batches(arrays, 16), data.eval_batches(files, 16), strict=True):
        np.testing.assert_array_equal(a[0], b[0])


def test_h5_columns_read_rows_and_name_what_is_missing(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["train_set_x"] = np.arange(24, dtype=np.uint8).reshape(4, 2, 3, 1)
    column = H5Column(str(path), "train_set_x")
    assert len(column) == 4 and column.shape == (4, 2, 3, 1)
    np.testing.assert_array_equal(column.take([3, 1])[np.arange(2)][0],
                                  np.arange(18, 24).reshape(2, 3, 1))
    with pytest.raises(UserError, match="x.h5: no data set 'test_set_x' .it has train_set_x"):
        H5Column(str(path), "test_set_x")
    (tmp_path / "not.h5").write_text("text")
    with pytest.raises(UserError, match="not.h5: not a readable HDF5 file"):
        H5Column(str(tmp_path / "not.h5"), "train_set_x")


def _course_files(tmp_path, classes=3, per_class=12, size=16):
    """Files in the layout of the course's SIGNS / happy-house data sets."""
    rng = np.random.default_rng(1)
    paths = {}
    for part, count in (("train", per_class), ("test", per_class // 3)):
        labels = np.repeat(np.arange(classes), count)
        images = (rng.uniform(size=(len(labels), size, size, 3)) * 60
                  + labels[:, None, None, None] * 60).astype(np.uint8)
        paths[part] = tmp_path / f"{part}_signs.h5"
        with h5py.File(paths[part], "w") as f:
            f[f"{part}_set_x"] = images
            f[f"{part}_set_y"] = labels
            f["list_classes"] = np.array([b"zero", b"one", b"two"][:classes])
    return paths


def test_the_course_h5_files_train_as_they_are(tmp_path):
    paths = _course_files(tmp_path)
    config = get_config("tiny")
    config.data.source = "h5"
    config.data.path, config.data.test_path = str(paths["train"]), str(paths["test"])
    config.data.channels = 3
    config.data.split = (0.8, 0.1, 0.1)
    config.train.batch_size = 8
    metrics = execute(ClassificationTask, config, str(tmp_path / "run"))
    assert metrics == read_metrics(str(tmp_path / "run"))
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["steps"] > 0


def test_h5_errors_name_the_file_and_key(tmp_path):
    paths = _course_files(tmp_path)
    config = get_config("tiny")
    config.data.source = "h5"
    config.data.path = str(paths["train"])
    with pytest.raises(UserError, match="config.data.test_path is empty"):
        execute(ClassificationTask, config, str(tmp_path / "run"))
    config.data.test_path = str(paths["train"])  # a training file has no test_set_x
    with pytest.raises(UserError, match="train_signs.h5: no data set 'test_set_x'"):
        execute(ClassificationTask, config, str(tmp_path / "run"))


def test_a_damaged_image_is_counted_in_training_and_named_in_evaluation(tmp_path):
    from PIL import Image

    from apps.classification import data as classification_data

    rng = np.random.default_rng(2)
    for c in range(2):
        (tmp_path / "pets" / f"c{c}").mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                tmp_path / "pets" / f"c{c}" / f"{i}.png")
    config = get_config("tiny")
    config.data.update({"source": "folder", "path": str(tmp_path / "pets"), "channels": 3})
    config.train.batch_size = 4
    data_ = classification_data.load(config)[0]
    train_file, val_file = (split.inputs.paths[split.inputs.rows[0]]
                            for split in (data_.train, data_.val))

    def damage(path):
        whole = open(path, "rb").read()
        with open(path, "wb") as f:
            f.write(whole[:len(whole) // 3])

    damage(train_file)
    # One of the 14 training images is more than the default 1% allowed ...
    with pytest.raises(UserError, match="1 training files could not be read .named in the "
                                        "log., more than config.train.max_skipped_fraction"):
        execute(ClassificationTask, config, str(tmp_path / "one"))
    assert os.listdir(tmp_path / "one" / "ckpt")
    # ... and within 10%: the same workdir resumes, and the file is counted.
    config.train.max_skipped_fraction = 0.1
    metrics = execute(ClassificationTask, config, str(tmp_path / "one"))
    assert metrics["skipped_files"] == 1 and read_metrics(str(tmp_path / "one")) == metrics
    damage(val_file)
    config.train.max_skipped_fraction = 0.1
    with pytest.raises(UserError, match=f"the validation split has a file that cannot be read "
                                        f".{val_file}: not a readable image"):
        execute(ClassificationTask, config, str(tmp_path / "two"))
    assert os.listdir(tmp_path / "two" / "ckpt")  # the epoch's checkpoint is kept


def test_a_column_cached_to_a_folder_is_decoded_once_and_reads_the_same(tmp_path):
    values = [np.full((2, 3), i, np.float32) for i in range(5)]
    paths = _files(tmp_path, values)
    (tmp_path / "2.npy").write_bytes(b"not numpy")  # unreadable
    reads = []

    def read(path):
        reads.append(path)
        return _read_npy(path)

    column = FileColumn(paths, read, np.float32, (2, 3), decoding="npy").take([4, 2, 0, 1])
    split = data.Split(column, np.arange(4))
    cache = tmp_path / "cache"
    cached = data.cached(split, str(cache)).inputs
    assert isinstance(cached, columns.NpyColumn) and len(reads) == 4
    assert sorted(os.listdir(cache)) == [f"{column.fingerprint()}.{e}" for e in ("json", "npy")]
    for position, expected in ((0, 4), (2, 0), (3, 1)):
        np.testing.assert_array_equal(cached[position], values[expected])
    with pytest.raises(UserError, match="2.npy: not a NumPy file"):
        cached[1]  # unreadable when cached, unreadable after: skipped in training
    # A second run reuses the file; other rows or another decoding are another file.
    again = data.cached(split, str(cache)).inputs
    assert len(reads) == 4 and np.array_equal(again[0], values[4])
    assert column.take([0]).fingerprint() != column.fingerprint()
    other = FileColumn(paths, read, np.float32, (2, 3), decoding="npy v2").take([4, 2, 0, 1])
    assert other.fingerprint() != column.fingerprint()


def test_a_cache_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path):
    paths = _files(tmp_path, [np.zeros(2, np.float32)] * 3)
    column = FileColumn(paths, _read_npy, np.float32, (2,), decoding="npy")
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    with pytest.raises(UserError, match="config.data.cache = .*: could not write the cache"):
        data.cached(data.Split(column, np.arange(3)), str(blocked / "cache"))


def test_a_tfrecord_index_reads_records_by_offset_and_refuses_a_cut_file(tmp_path):
    from apps.core.tfds_source import TFRecordIndex, _record_offsets

    path = str(tmp_path / "x.tfrecord")
    payloads = [bytes([i]) * (i * 37 % 100) for i in range(20)]
    with tf.io.TFRecordWriter(path) as writer:
        for payload in payloads:
            writer.write(payload)

    class Instruction:
        filename, skip, take = path, 3, 10

    index = TFRecordIndex([Instruction()])
    assert len(index) == 10
    assert [index[i] for i in (9, 0, 4)] == [payloads[12], payloads[3], payloads[7]]
    with open(path, "rb") as f:
        whole = f.read()
    with open(path, "wb") as f:
        f.write(whole[:-7])
    with pytest.raises(UserError, match="x.tfrecord: a TFRecord file cut short"):
        _record_offsets(path)
