"""The corpus and GloVe's table on disk: the same data as the in-memory code gave.

Each test writes with blocks far smaller than its data, so that every
boundary (a flush of the text pass, a sentence cut by a block, a spilled
run, a merge step, a shuffle bucket) is crossed many times, and compares
with a transcription of the in-memory code these files replaced.
"""

import collections
import gc
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from apps.core.data import Split, train_stream
from apps.core.errors import UserError
from apps.core.main import execute
from apps.core.workdir import read_metrics
from apps.embeddings import cooccurrence as glove_lib
from apps.embeddings import data as data_lib
from apps.embeddings import text as text_lib
from apps.embeddings.ondisk import DiskArray
from apps.embeddings.task import EmbeddingsTask
from configs.embeddings import get_config

WORDS = [f"w{k}" for k in range(60)]


def _write_text(path, lines=400, seed=0):
    """Lines of words drawn from a Zipf-like law: some empty, some only of rare
    words (dropped whole by min_count), some longer than max_sentence_words."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, len(WORDS) + 1)
    text = []
    for k in range(lines):
        if k % 37 == 0:
            text.append("")
        elif k % 41 == 0:
            text.append(f"rare{k} only{k}")
        else:
            n = rng.integers(1, 40)
            text.append(" ".join(rng.choice(WORDS, n, p=p / p.sum())))
    path.write_text("\n".join(text) + "\n")
    return path


def _corpus_in_memory(lines, min_count, max_vocab, max_sentence_words, max_words):
    """The in-memory build this app had: count every word, then encode each
    sentence, numbering those that keep a word."""
    def stream():
        seen = 0
        for tokens in text_lib.sentences(lines(), False, max_sentence_words):
            if max_words and seen + len(tokens) > max_words:
                tokens = tokens[:max_words - seen]
            seen += len(tokens)
            if tokens:
                yield tokens
            if max_words and seen >= max_words:
                return

    counter = collections.Counter()
    for tokens in stream():
        counter.update(tokens)
    vocab = text_lib.Vocabulary.build(counter, min_count, max_vocab)
    ids, sentence = [], []
    for tokens in stream():
        encoded = vocab.ids(tokens)
        if encoded:
            sentence += [sentence[-1] + 1 if sentence else 0] * len(encoded)
            ids += encoded
    return vocab, np.array(ids, np.int32), np.array(sentence, np.int32), sum(counter.values())


@pytest.mark.parametrize("min_count,max_vocab,max_words", [(2, 0, 0), (1, 25, 3000)])
def test_corpus_on_disk_equals_the_corpus_encoded_in_memory(tmp_path, min_count, max_vocab,
                                                            max_words):
    path = _write_text(tmp_path / "text.txt")
    lines = lambda: text_lib.file_lines([str(path)])  # noqa: E731
    corpus = text_lib.build_corpus(lines, min_count, max_vocab, max_sentence_words=30,
                                   max_words=max_words, scratch=str(tmp_path), block_tokens=50)
    vocab, ids, sentence, raw = _corpus_in_memory(lines, min_count, max_vocab, 30, max_words)
    assert corpus.vocab.words == vocab.words and corpus.vocab.counts.tolist() == \
        vocab.counts.tolist()
    np.testing.assert_array_equal(np.asarray(corpus.ids), ids)
    np.testing.assert_array_equal(np.asarray(corpus.sentence), sentence)
    assert corpus.raw_words == raw and len(corpus.ids) == corpus.vocab.counts.sum()
    # Read back in blocks that cut sentences, as gensim would iterate them.
    expected = [[vocab.words[i] for i in part]
                for part in np.split(ids, np.flatnonzero(np.diff(sentence)) + 1)]
    assert list(text_lib.Sentences(corpus, block=13)) == expected
    assert len(corpus.sentences) == len(expected) == sentence[-1] + 1


def _chunks_in_memory(ids, sentence, chunk_words, margin, multiple_of):
    """The (chunks, margin + size + margin) arrays this app built in memory."""
    n = len(ids)
    chunks = multiple_of * max(1, -(-n // (multiple_of * chunk_words)))
    size = -(-n // chunks)
    positions = (np.arange(chunks) * size)[:, None] + np.arange(-margin, size + margin)
    inside = (positions >= 0) & (positions < n)
    clipped = np.clip(positions, 0, n - 1)
    return (np.where(inside, ids[clipped], -1).astype(np.int32),
            np.where(inside, sentence[clipped], -1).astype(np.int32), size)


def test_chunks_read_from_disk_equal_the_in_memory_chunks_and_their_examples(tmp_path):
    path = _write_text(tmp_path / "text.txt")
    corpus = text_lib.build_corpus(lambda: text_lib.file_lines([str(path)]), min_count=2,
                                   scratch=str(tmp_path), block_tokens=64)
    ids, sentence = np.asarray(corpus.ids), np.asarray(corpus.sentence)
    # Several chunks a batch, a margin wider than a chunk, one chunk for all.
    for chunk_words, margin, multiple_of in [(97, 10, 4), (7, 12, 3), (10**6, 4, 1)]:
        split, size = data_lib.chunk_corpus(corpus, chunk_words, margin, multiple_of)
        tokens, sentences, expected_size = _chunks_in_memory(ids, sentence, chunk_words, margin,
                                                             multiple_of)
        assert size == expected_size and len(split) == len(tokens)
        np.testing.assert_array_equal(np.asarray(split.inputs["tokens"]), tokens)
        np.testing.assert_array_equal(np.asarray(split.inputs["sentence"]), sentences)

    # So word2vec's training stream is the same, example for example.
    split, size = data_lib.chunk_corpus(corpus, 97, 10, 4)
    tokens, sentences, _ = _chunks_in_memory(ids, sentence, 97, 10, 4)
    in_memory = Split({"tokens": tokens, "sentence": sentences}, split.targets)
    examples = data_lib.Word2VecExamples(corpus.vocab.counts, size, 10, 5, 3, 1e-3, "skipgram")
    streams = [train_stream(s, 4, seed=7, start_step=3, augment=examples).take(4)
               for s in (split, in_memory)]
    for (x, _), (y, _) in zip(*streams, strict=True):
        for name in x:
            np.testing.assert_array_equal(x[name].numpy(), y[name].numpy())


def _brute_force_cooccurrence(ids, sentence, window):
    counts = collections.defaultdict(float)
    for p in range(len(ids)):
        for d in range(1, window + 1):
            if p + d < len(ids) and sentence[p] == sentence[p + d]:
                counts[(ids[p], ids[p + d])] += 1.0 / d
                counts[(ids[p + d], ids[p])] += 1.0 / d
    return counts


@pytest.mark.parametrize("tokens,block_tokens,memory_pairs", [(3000, 100, 400), (600, 20, 3)])
def test_cooccurrence_spilled_to_disk_equals_the_table_counted_in_memory(
        tmp_path, tokens, block_tokens, memory_pairs):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 40, tokens)
    sentence = np.sort(rng.integers(0, tokens // 20, tokens))
    in_memory = glove_lib.cooccurrence(ids, sentence, 40, 5, block_tokens=tokens,
                                       memory_pairs=10**6, scratch=str(tmp_path))
    spilled = glove_lib.cooccurrence(ids, sentence, 40, 5, block_tokens=block_tokens,
                                     memory_pairs=memory_pairs, scratch=str(tmp_path))
    assert in_memory.runs == 1 and spilled.runs >= 3
    expected = _brute_force_cooccurrence(ids, sentence, 5)
    rows, cols, values = spilled.arrays()
    keys = rows.astype(np.int64) * 40 + cols
    assert np.all(np.diff(keys) > 0) and len(keys) == len(expected)  # sorted, each pair once
    np.testing.assert_allclose(values, [expected[(r, c)] for r, c in zip(rows, cols,
                                                                         strict=True)],
                               rtol=1e-12)
    reference = in_memory.arrays()
    np.testing.assert_array_equal(rows, reference[0])
    np.testing.assert_array_equal(cols, reference[1])
    np.testing.assert_allclose(values, reference[2], rtol=1e-12)


def test_glove_shuffle_is_a_permutation_drawn_from_the_seed(tmp_path):
    rng = np.random.default_rng(2)
    ids, sentence = rng.integers(0, 30, 2000), np.zeros(2000, np.int64)
    table = glove_lib.cooccurrence(ids, sentence, 30, 3, scratch=str(tmp_path))
    rows, cols, values = table.arrays()

    def packed(seed, memory_pairs):
        split = glove_lib.glove_examples(table, 64, 2, seed, 100.0, 0.75, memory_pairs,
                                         str(tmp_path))
        return {k: np.asarray(column).ravel() for k, column in split.inputs.items()}

    first = packed(0, memory_pairs=40)  # about 45 buckets
    real = first["weight"] > 0
    assert real.sum() == len(values) and not real[len(values):].any()
    keys = first["i"][real].astype(np.int64) * 30 + first["j"][real]
    order = np.argsort(keys)
    np.testing.assert_array_equal(keys[order], rows.astype(np.int64) * 30 + cols)
    np.testing.assert_allclose(np.exp(first["log_x"][real][order]), values, rtol=1e-6)
    assert np.mean(np.diff(keys) > 0) < 0.6  # shuffled, not in the table's order
    again = packed(0, memory_pairs=40)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    other = packed(1, memory_pairs=40)
    assert not np.array_equal(first["i"], other["i"])


def _files_open_in(folder):
    """How many of this process's file descriptors point into `folder`."""
    folder = os.path.realpath(folder)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used
            continue
        count += target.startswith(folder + os.sep)
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/self/fd (Linux)")
def test_temporary_files_are_never_named_and_are_freed(tmp_path):
    texts, scratch = tmp_path / "texts", tmp_path / "scratch"
    texts.mkdir()
    scratch.mkdir()
    _write_text(texts / "a.txt")
    corpus = text_lib.build_corpus(lambda: text_lib.file_lines([str(texts / "a.txt")]),
                                   min_count=2, scratch=str(scratch), block_tokens=64)
    table = glove_lib.cooccurrence(corpus.ids, corpus.sentence, len(corpus.vocab), 5,
                                   block_tokens=200, memory_pairs=500, scratch=str(scratch))
    split = glove_lib.glove_examples(table, 64, 2, 0, 100.0, 0.75, 500, str(scratch))
    assert table.runs >= 3 and os.listdir(scratch) == []  # nothing has a name
    assert _files_open_in(scratch) == 2 + 1 + 4  # the corpus, the table, the examples
    del corpus, table, split
    gc.collect()
    assert _files_open_in(scratch) == 0

    # A line that is not UTF-8, met after several blocks of the text pass.
    (texts / "b.txt").write_bytes(b"w1 w2\n" * 200 + b"the caf\xe9\n")
    files = text_lib.text_files(str(texts))
    with pytest.raises(UserError, match=r"b.txt:201: not UTF-8 text \(byte 0xe9"):
        text_lib.build_corpus(lambda: text_lib.file_lines(files), scratch=str(scratch),
                              block_tokens=64)
    gc.collect()
    assert os.listdir(scratch) == [] and _files_open_in(scratch) == 0


def test_disk_array_reads_slices_and_names_a_folder_it_cannot_write(tmp_path):
    array = DiskArray(str(tmp_path), np.int32, "the numbers")
    array.append(np.arange(5))
    array.append([])
    array.append(np.arange(5, 12))
    assert len(array) == 12 and array.shape == (12,)
    np.testing.assert_array_equal(array[3:9], np.arange(3, 9))
    np.testing.assert_array_equal(array[10:40], [10, 11])
    assert array[-1] == 11 and array[0] == 0 and array[7:7].shape == (0,)
    np.testing.assert_array_equal(np.asarray(array), np.arange(12))
    with pytest.raises(IndexError):
        array[12]  # noqa: B018
    with pytest.raises(UserError, match=r"missing: cannot write the corpus's word ids to a "
                                        r"temporary file there \(No such file"):
        DiskArray(str(tmp_path / "missing"), np.int32, "the corpus's word ids")


def test_glove_trains_from_its_table_on_disk_and_leaves_the_workdir_clean(tmp_path, caplog):
    """The task end to end with spills: the scratch files live in the workdir
    while it runs, and nothing of them is left there."""
    config = get_config("tiny")
    config.method = "glove"
    config.train.epochs = 1
    config.glove.block_tokens = 500
    config.glove.memory_pairs = 5_000
    workdir = tmp_path / "run"
    with caplog.at_level("INFO", logger="absl"):
        execute(EmbeddingsTask, config, str(workdir), "train")
    runs = [int(m.group(1)) for m in re.finditer(r"\((\d+) sorted run\(s\) on disk\)",
                                                  caplog.text)]
    assert runs and runs[0] >= 3
    metrics = read_metrics(str(workdir))
    assert metrics["method"] == "glove" and metrics["steps"] > 0
    assert np.isfinite(metrics["ws353_spearman"])
    assert sorted(os.listdir(workdir)) == ["ckpt", "config.json", "export", "metrics.json",
                                           "tb", "vectors.txt", "vocab.json"]
    assert tf.io.gfile.exists(str(workdir / "export" / "saved_model.pb"))
