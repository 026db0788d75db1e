"""Pair files streamed from disk: the same examples as the text encoded whole.

The reference is the in-memory loader the app had before streaming (read
every line, split the lists, encode them whole, apps.translation.data.make_split),
transcribed here; the streamed splits must hold the same vocabularies and the
same arrays row for row, read through columns (tf.data) or cached in memory,
and the training stream must give the same batches from any step.
"""

import logging

import numpy as np
import pytest
import tensorflow as tf

from apps.core import columns as columns_lib
from apps.core.data import eval_batches, train_stream
from apps.core.errors import UserError
from apps.translation import data as data_lib
from apps.translation import pairs as pairs_lib
from apps.translation import vocab as vocab_lib
from configs.translation import get_config

WORDS = ("the cat dog sat on a mat big small red house sea by Ça été über naïve "
         "déjà garçon Straße").split()
LINES = 3000
BAD_LINE = 1500  # not UTF-8, in the middle of the file


def _sentence(rng, low, high):
    words = [str(rng.choice(WORDS)) for _ in range(rng.integers(low, high))]
    if rng.random() < 0.3:
        words[0] = words[0].upper()  # lower-cased by config.data.lowercase
    return " ".join(words) + str(rng.choice([".", "!", " ?", ""]))


def _pairs(seed=0):
    rng = np.random.default_rng(seed)
    return [(_sentence(rng, 1, 8), _sentence(rng, 1, 5)) for _ in range(LINES)]


def _tsv(path, pairs):
    """A pair file in its real-world shape: a byte-order mark, CRLF on some lines,
    a third column on others, and a few lines to leave out."""
    lines = []
    for i, (source, target) in enumerate(pairs, start=1):
        line = f" {source}\t{target}".encode()
        if i == BAD_LINE:
            line = b"caf\xe9\tcoffee"
        elif i % 97 == 0:
            line = f"{source} without a tab".encode()
        elif i % 89 == 0:
            line = f"{source}\t  ".encode()
        elif i % 7 == 0:
            line += b"\tCC-BY 2.0 (France) Attribution"
        lines.append(line + (b"\r\n" if i % 5 == 0 else b"\n"))
    path.write_bytes("\ufeff".encode() + b"".join(lines))
    return str(path)


def _config(path, tokenizer):
    config = get_config("tsv")
    config.data.path = path
    config.data.tokenizer = tokenizer
    config.data.vocab_size = 120
    config.data.max_source_length = 6 if tokenizer == "wordpiece" else 40
    config.data.max_target_length = 5 if tokenizer == "wordpiece" else 25
    return config


def _reference(config):
    """(splits {name: Split of arrays}, source vocab, target vocab, report): the
    loader before streaming, transcribed."""
    d = config.data
    sources, targets = [], []
    with open(d.path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                continue
            fields = line.split("\t")
            if line.strip() and len(fields) >= 2 and fields[0].strip() and fields[1].strip():
                pair = (fields[0].strip(), fields[1].strip())
                sources.append(pair[d.reverse])
                targets.append(pair[not d.reverse])
    n = len(sources)
    order = np.random.default_rng(config.seed).permutation(n)
    counts = [max(1, int(round(f * n))) for f in d.split[1:]]
    parts = np.split(order, [n - sum(counts), n - counts[1]])
    texts = {}
    for s, part in zip(data_lib.SPLITS, parts, strict=True):
        part = part[:d.max_examples] if d.max_examples else part
        src = vocab_lib.normalize_texts([sources[i] for i in part], d.lowercase)
        tgt = vocab_lib.normalize_texts([targets[i] for i in part], d.lowercase)
        texts[s] = [(a, b) for a, b in zip(src, tgt, strict=True) if a and b]
    train = texts["train"]
    if d.tokenizer == "char":
        vocabs = [vocab_lib.CharVocab.fit([p[side] for p in train]) for side in (0, 1)]
    else:
        vocabs = [vocab_lib.WordPieceVocab.fit([p[side] for p in train], d.vocab_size,
                                               d.lowercase) for side in (0, 1)]
    encoded, report = {}, {}
    for s in data_lib.SPLITS:
        ids = list(zip(*(vocabs[side].encode([p[side] for p in texts[s]]) for side in (0, 1)),
                       strict=True))
        encoded[s] = [(x, y) for x, y in ids
                      if len(x) <= d.max_source_length and len(y) + 1 <= d.max_target_length]
        report[s] = {"over_long": len(ids) - len(encoded[s]), "kept": len(encoded[s])}
    source_width = max(len(x) for s in data_lib.SPLITS for x, _ in encoded[s])
    target_width = max(len(y) for s in data_lib.SPLITS for _, y in encoded[s]) + 1
    splits = {s: data_lib.make_split([x for x, _ in encoded[s]], [y for _, y in encoded[s]],
                                     source_width, target_width) for s in data_lib.SPLITS}
    return splits, vocabs[0], vocabs[1], report


def _arrays(split):
    (src, dec), tgt = split.inputs, split.targets
    return np.asarray(src), np.asarray(dec), np.asarray(tgt)


@pytest.fixture(scope="module")
def pair_file(tmp_path_factory):
    return _tsv(tmp_path_factory.mktemp("pairs") / "pairs.tsv", _pairs())


@pytest.fixture(scope="module", params=["char", "wordpiece"])
def streamed(request, pair_file):
    config = _config(pair_file, request.param)
    return config, data_lib.load(config), _reference(config)


def test_streamed_splits_are_the_text_encoded_whole(streamed):
    config, (data, source_vocab, target_vocab, report), reference = streamed
    splits, ref_source, ref_target, ref_report = reference
    assert source_vocab.tokens == ref_source.tokens
    assert target_vocab.tokens == ref_target.tokens
    assert "\ufeff" not in source_vocab.tokens  # the byte-order mark is no character
    assert report["file"] == {"malformed": 1 + LINES // 97, "empty": LINES // 89}
    for s in data_lib.SPLITS:
        assert {k: report[s][k] for k in ("over_long", "kept")} == ref_report[s]
        streamed_split = getattr(data, s)
        # Every leaf is a column over the byte offsets; the three share one rows array.
        leaves = tf.nest.flatten((streamed_split.inputs, streamed_split.targets))
        assert all(isinstance(leaf, pairs_lib.PairColumn) for leaf in leaves)
        assert leaves[0].rows is leaves[1].rows is leaves[2].rows
        # The values read through tf.data (as training and evaluation read them)
        # and read whole equal the reference row for row.
        batches = list(eval_batches(streamed_split, 256).as_numpy_iterator())
        read = (np.concatenate([x[0] for (x, _) in batches]),
                np.concatenate([x[1] for (x, _) in batches]),
                np.concatenate([y for (_, y) in batches]))
        for ours, whole, theirs in zip(read, _arrays(streamed_split), _arrays(splits[s]),
                                       strict=True):
            np.testing.assert_array_equal(ours, theirs)
            np.testing.assert_array_equal(whole, theirs)
    assert sum(report[s]["over_long"] for s in data_lib.SPLITS) > 0  # the rule was met
    lines = leaves[0].encoder.lines
    assert lines.offsets.dtype == np.int64 and lines.offsets.shape == (
        LINES - report["file"]["malformed"] - report["file"]["empty"], 1)


def test_training_stream_from_any_step_is_the_in_memory_one(streamed):
    config, (data, _, _, _), (splits, _, _, _) = streamed

    def batches(split, start_step, count=3):
        ds = train_stream(split, 64, config.seed, start_step=start_step)
        return [tf.nest.map_structure(np.asarray, b) for b in ds.take(count)]

    steps = len(data.train) // 64
    for start in (0, steps - 1):  # the first step, and across the epoch boundary
        for ours, theirs in zip(batches(data.train, start), batches(splits["train"], start),
                                strict=True):
            tf.nest.map_structure(np.testing.assert_array_equal, ours, theirs)


def test_each_line_is_read_once_per_example(pair_file, monkeypatch):
    config = _config(pair_file, "char")
    config.data.max_examples = 200
    data, _, _, _ = data_lib.load(config)
    lines = data.test.targets.encoder.lines
    reads = []
    real = lines.pair
    monkeypatch.setattr(lines, "pair", lambda row: reads.append(row) or real(row))
    list(eval_batches(data.test, 64))
    assert sorted(reads) == sorted(data.test.targets.rows.tolist())
    reads.clear()
    cached = data_lib.cached(data.val, "memory")  # the three arrays, one read of each line
    assert sorted(reads) == sorted(data.val.targets.rows.tolist())
    for ours, whole in zip(_arrays(cached), _arrays(data.val), strict=True):
        assert isinstance(ours, np.ndarray)
        np.testing.assert_array_equal(ours, whole)


def test_cache_memory_holds_arrays(tmp_path):
    config = _config(_tsv(tmp_path / "pairs.tsv", _pairs()[:200]), "char")
    config.data.cache = "memory"
    data, _, _, _ = data_lib.load(config)
    leaves = tf.nest.flatten((data.train.inputs, data.train.targets))
    assert all(type(leaf) is np.ndarray for leaf in leaves)


def test_a_bad_line_in_the_middle_is_reported(pair_file, caplog):
    with caplog.at_level(logging.WARNING):
        pairs_lib.index_pairs(pairs_lib.TsvLayout(pair_file))
    assert (f"pairs.tsv: left out {1 + LINES // 97} malformed line(s) (e.g. line 97 194 291 "
            f"388 485), expected UTF-8 source<TAB>target; and {LINES // 89} blank or with an "
            "empty side (e.g. line 89 178") in caplog.text


def test_a_file_changed_after_indexing_is_skipped_and_named(tmp_path):
    path = _tsv(tmp_path / "pairs.tsv", _pairs()[:200])
    data, _, _, _ = data_lib.load(_config(path, "char"))
    with open(path, "ab") as f:
        f.write(b"one more\tline\n")
    value, ok = data.train.targets.tf_read(tf.constant(0, tf.int64))
    assert not ok.numpy() and not value.numpy().any()
    assert "pairs.tsv: changed since its lines were indexed" in columns_lib.SKIPPED.last


def test_parallel_files_give_the_tsv_splits(tmp_path):
    """Two files of one sentence per line (as WMT ships them) hold the same usable
    pairs as the TSV file, so the same splits; line counts must agree."""
    pair_file = _tsv(tmp_path / "pairs.tsv", _pairs()[:600])
    source_lines, target_lines = [], []
    with open(pair_file, "rb") as f:
        for raw in f:
            source, _, target = raw.partition(b"\t")
            target = target.split(b"\t")[0].rstrip(b"\r\n")
            if source.endswith(b"without a tab\n") or source.endswith(b"without a tab\r\n"):
                source, target = source.rstrip(b"\r\n"), b""  # an empty side instead
            source_lines.append(source + b"\n")
            target_lines.append(target + b"\r\n")
    (tmp_path / "train.en").write_bytes(b"".join(source_lines))
    (tmp_path / "train.fr").write_bytes(b"".join(target_lines))
    config = _config(pair_file, "char")
    parallel = _config(str(tmp_path / "train.en"), "char")
    parallel.data.source = "parallel"
    parallel.data.target_path = str(tmp_path / "train.fr")
    tsv_data, tsv_source, _, tsv_report = data_lib.load(config)
    data, source_vocab, _, report = data_lib.load(parallel)
    assert source_vocab.tokens == tsv_source.tokens
    assert sum(report["file"].values()) == sum(tsv_report["file"].values())
    for s in data_lib.SPLITS:
        for ours, theirs in zip(_arrays(getattr(data, s)), _arrays(getattr(tsv_data, s)),
                                strict=True):
            np.testing.assert_array_equal(ours, theirs)
    assert data.train.targets.encoder.lines.offsets.shape[1] == 2

    (tmp_path / "train.fr").write_bytes(b"".join(target_lines[:-1]))
    with pytest.raises(UserError, match=r"train.fr has 599 lines but .*train.en has more"):
        data_lib.load(parallel)
