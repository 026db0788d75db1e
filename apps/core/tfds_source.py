"""Random access to a prepared TFDS split: example i read when a batch needs it.

A split prepared as ArrayRecord (`tfds build --file_format=array_record`) is
read through TFDS's own random-access data source (tfds.data_source). A split
prepared only as TFRecord (TFDS's default format) has no index, so one is made
at the start: a pass over the record headers (12 bytes read per record, the
payload skipped by seeking) gives each record's offset, 8 bytes a record held
in memory (10 MB for ImageNet's 1.28 M images). Either way example i is read by
index, so the epoch order stays argsort(uniform(seed, epoch)) and a resumed run
or a second worker reads exactly what an uninterrupted single worker would
(a sequential TFRecord stream could only resume through an iterator state;
an index keeps one order rule for every source).

Image features are left encoded (tfds.decode.SkipDecoding): the columns decode
them with Pillow, as an image file of a folder is decoded (EXIF orientation,
16-bit and CMYK images), and a column that does not need the image (the label)
does not decode it.
"""

import os
import struct
import threading

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from apps.core.data import MissingSplit
from apps.core.errors import UserError


def builder(name, data_dir):
    """The TFDS builder of `name` in `data_dir` (never downloads); UserError when
    the name is empty or not a TFDS data set."""
    import tensorflow_datasets as tfds

    if not name:
        raise UserError("config.data.name is empty: give the TFDS data set's name")
    try:
        return tfds.builder(name, data_dir=data_dir or None)
    except Exception as e:  # tfds raises its own DatasetNotFoundError and friends
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"config.data.name = {name!r}: not a TFDS data set ({reason})") from None


def not_prepared(name, data_dir):
    return UserError(
        f"TFDS data set {name!r} is not prepared in config.data.data_dir = {data_dir!r}; "
        f"prepare it there first (`tfds build {name} --data_dir=DIR` on a machine with "
        "network access)")


class TFDSSource:
    """Split `split` of a prepared TFDS data set as a sequence of examples.

    `len(source)`; `source.example(i)` is example i as a dict of NumPy values
    (image features as their encoded bytes); `source.features` the data set's
    features. A split the data set lacks is MissingSplit; a data set not
    prepared in `data_dir` a UserError saying how to prepare it.
    """

    def __init__(self, name, data_dir, split):
        import tensorflow_datasets as tfds

        self.dataset, self.split, self.data_dir = name, split, data_dir
        tfds_builder = builder(name, data_dir)
        info = tfds_builder.info
        if not info.splits:
            raise not_prepared(name, tfds_builder.data_dir)
        try:
            instructions = info.splits[split].file_instructions
        except (KeyError, ValueError) as e:
            raise MissingSplit(f"TFDS data set {name!r} has no split {split!r} ({e})") from None
        self.features = info.features
        self.supervised_keys = info.supervised_keys
        self._decoders = {key: tfds.decode.SkipDecoding() for key, feature in
                          self.features.items() if isinstance(feature, tfds.features.Image)}
        try:  # ArrayRecord: TFDS's random-access source
            self._records = tfds_builder.as_data_source(split, decoders=self._decoders)
            self._decode = None
        except NotImplementedError:  # TFRecord only
            self._records = TFRecordIndex(instructions)
            self._decode = self.features.deserialize_example_np
        self.data_dir = tfds_builder.data_dir

    def __len__(self):
        return len(self._records)

    def name(self, index):
        """How an error names example `index`."""
        return f"TFDS data set {self.dataset!r} split {self.split!r} example {index}"

    def identity(self):
        """Where the examples come from, for a file cache's key (apps.core.data.cached)."""
        return f"tfds|{self.dataset}|{self.data_dir}|{self.split}"

    def example(self, index):
        try:
            record = self._records[index]
            if self._decode is not None:
                record = self._decode(record, decoders=self._decoders)
        except (OSError, ValueError, DecodeError) as e:  # a damaged file or record
            raise UserError(f"{self.name(index)}: not readable ({e})") from None
        return record


class TFRecordIndex:
    """The serialized records of TFRecord files by index, from their offsets.

    `instructions` are TFDS's FileInstructions (a file, how many records to
    skip and to take). A TFRecord record is: length (uint64), its masked CRC
    (uint32), the payload, the payload's masked CRC (uint32); the CRCs are not
    checked, a record shorter than its length is an OSError.
    """

    def __init__(self, instructions):
        self.files, self.offsets = [], []
        for instruction in instructions:
            filename = instruction.filename
            offsets = _record_offsets(filename)
            stop = len(offsets) if instruction.take in (None, -1) else \
                instruction.skip + instruction.take
            file_number = len(self.files)
            self.files.append(filename)
            self.offsets += [(file_number, o) for o in offsets[instruction.skip:stop]]
        self._local = threading.local()

    def __len__(self):
        return len(self.offsets)

    def __getitem__(self, index):
        file_number, offset = self.offsets[index]
        handles = self._local.__dict__.setdefault("handles", {})
        if file_number not in handles:
            handles[file_number] = open(self.files[file_number], "rb")  # noqa: SIM115
        f = handles[file_number]
        f.seek(offset)
        (length,) = struct.unpack("<Q", f.read(12)[:8].ljust(8, b"\0"))
        # A damaged header could claim any length: never read past the file.
        if offset + 12 + length + 4 > os.fstat(f.fileno()).st_size:
            raise OSError(f"{self.files[file_number]}: the record at byte {offset} runs "
                          "past the end of the file")
        return f.read(length)


def _record_offsets(filename):
    """The byte offset of every record of a TFRecord file (headers read, payloads skipped)."""
    offsets = []
    size = os.path.getsize(filename)
    with open(filename, "rb") as f:
        position = 0
        while position < size:
            header = f.read(12)
            if len(header) < 12:
                raise UserError(f"{filename}: a TFRecord file cut short at byte {position}")
            (length,) = struct.unpack("<Q", header[:8])
            offsets.append(position)
            position += 12 + length + 4
            f.seek(position)
    if position != size:
        raise UserError(f"{filename}: a TFRecord file cut short (its last record ends at "
                        f"byte {position}, the file at {size})")
    return offsets


def tfds_data(data, seed, make_split, split_names=("train", "validation", "test")):
    """(train, val, test) Splits of the prepared TFDS set config.data.name.

    `data` is config.data (name, data_dir, split fractions, max_examples: 0 or
    the most examples read from each split); `make_split(source)` turns a
    TFDSSource into a Split of columns. The data set's own validation and test
    splits (`split_names`) are used where it has them; a missing one is carved
    at random out of train, of config.data.split's fraction of it (by index:
    a class-stratified split would read every label first, a pass over the
    whole data set). Example 0 of each split is read now, so a data set that
    does not fit the config fails before training, with its error.
    """
    from apps.core.data import random_split

    def split_of(split_name):
        source = TFDSSource(data.name, data.data_dir, split_name)
        split = make_split(source)
        if data.max_examples and data.max_examples < len(split):
            split = split.take(np.arange(data.max_examples))
        if not len(split):
            raise UserError(f"TFDS data set {data.name!r} split {split_name!r} is empty")
        return split

    train = split_of(split_names[0])
    own = []
    for split_name in split_names[1:]:
        try:
            own.append(split_of(split_name))
        except MissingSplit:
            own.append(None)
    fractions = [data.split[0]] + [f for f, split in zip(data.split[1:], own, strict=True)
                                   if split is None]
    parts = iter(random_split(len(train), fractions, seed,
                              f"TFDS data set {data.name!r} split {split_names[0]!r}"))
    splits = [train.take(next(parts))] + [split if split is not None else train.take(next(parts))
                                          for split in own]
    for split in splits:
        for column in tf.nest.flatten((split.inputs, split.targets)):
            column[0]  # raises the UserError of a data set that does not fit the config
    return splits
