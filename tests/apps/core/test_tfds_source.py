"""apps.core.tfds_source: a prepared TFDS split read by index, from either file format."""

import numpy as np
import pytest

from apps.core.data import MissingSplit, load_tfds
from apps.core.errors import UserError
from apps.core.tfds_source import TFDSSource
from tests.apps import tfds_toys


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    splits = {"train": [0, 1, 2] * 7, "test": [2, 0]}
    return {fmt: tfds_toys.classification(root / fmt, splits, file_format=fmt)
            for fmt in ("array_record", "tfrecord")}


def test_both_formats_give_the_same_examples_by_index(both_formats):
    sources = {fmt: TFDSSource("toy_classes", d, "train") for fmt, d in both_formats.items()}
    assert {len(s) for s in sources.values()} == {21}
    by_format = [[(s.example(i)["image"], s.example(i)["label"]) for i in range(21)]
                 for s in sources.values()]
    # the same records (TFDS orders a split by its keys, whatever the format)
    assert by_format[0] == by_format[1]
    assert isinstance(by_format[0][0][0], bytes)  # images left encoded
    sliced = TFDSSource("toy_classes", both_formats["tfrecord"], "train[5:9]")
    assert [sliced.example(i)["label"] for i in range(4)] == \
        [sources["tfrecord"].example(i)["label"] for i in range(5, 9)]


def test_errors_name_the_set_and_what_is_missing(both_formats, tmp_path):
    with pytest.raises(MissingSplit, match="TFDS data set 'toy_classes' has no split 'validation'"):
        TFDSSource("toy_classes", both_formats["array_record"], "validation")
    with pytest.raises(UserError, match="'mnist' is not prepared in config.data.data_dir"):
        TFDSSource("mnist", str(tmp_path / "elsewhere"), "train")
    with pytest.raises(UserError, match="config.data.name is empty"):
        TFDSSource("", "", "train")
    source = TFDSSource("toy_classes", both_formats["tfrecord"], "train")
    source._records.offsets[3] = (0, source._records.offsets[3][1] + 5)  # a broken record
    with pytest.raises(UserError, match="split 'train' example 3: not readable"):
        source.example(3)


def test_sets_read_in_order_need_tfrecord_files(both_formats):
    ds, info = load_tfds("toy_classes", both_formats["tfrecord"], "test")
    assert sorted(int(e["label"]) for e in ds.as_numpy_iterator()) == [0, 2]
    assert np.array_equal(info.features["label"].names, ["a", "b", "c"])
    with pytest.raises(UserError, match="prepared as ArrayRecord only.*--file_format=tfrecord"):
        load_tfds("toy_classes", both_formats["array_record"], "test")
