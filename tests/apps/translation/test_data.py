"""Translation data: the generated dates, the TSV reader, tokenizers, the shift."""

import datetime

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from apps.core import config as config_lib
from apps.core.errors import UserError
from apps.translation import data as data_lib
from apps.translation import dates as dates_lib
from apps.translation import pairs as pairs_lib
from apps.translation import vocab as vocab_lib
from apps.translation.vocab import BOS, EOS
from configs.translation import get_config


def test_dates_are_many_formats_of_disjoint_iso_dates():
    (train, val, test) = dates_lib.generate((300, 60, 60), seed=0)
    for sources, targets in (train, val, test):
        for source, target in zip(sources, targets, strict=True):
            date = datetime.date.fromisoformat(target)
            assert dates_lib.FIRST <= date <= dates_lib.LAST
            assert source == source.lower() and source.strip() == source
            assert str(date.day) in source  # the day is written out in every format
    assert not set(train[1]) & set(val[1]) and not set(train[1]) & set(test[1])
    assert not set(val[1]) & set(test[1])
    assert len(set(train[0])) > 250  # many surface forms
    # Named months, numeric (slashes, dots) and weekday formats all occur.
    joined = " | ".join(train[0])
    assert "/" in joined and "." in joined and "day" in joined and "," in joined
    assert dates_lib.generate((300, 60, 60), seed=0) == [train, val, test]  # fixed seed


def test_date_formats_read_one_way():
    date = datetime.date(1979, 3, 5)
    assert dates_lib.render(date, "short", "en_US") == "3/5/79"  # month first
    assert dates_lib.render(date, "dd.MM.yy", "en_US") == "05.03.79"  # day first
    assert dates_lib.render(date, "full", "en_GB") == "monday, 5 march 1979"


def test_teacher_forcing_shift():
    split = data_lib.make_split([[7, 8, 9], [7]], [[4, 5], [6, 4, 4]], 4, 4)
    src, dec = split.inputs
    np.testing.assert_array_equal(src, [[7, 8, 9, 0], [7, 0, 0, 0]])
    np.testing.assert_array_equal(dec, [[BOS, 4, 5, 0], [BOS, 6, 4, 4]])
    np.testing.assert_array_equal(split.targets, [[4, 5, EOS, 0], [6, 4, 4, EOS]])
    # The decoder input at t+1 is the target at t.
    np.testing.assert_array_equal(dec[:, 1:], np.where(split.targets[:, :-1] == EOS, 0,
                                                       split.targets[:, :-1]))


def test_char_vocab_round_trip_and_unknowns():
    vocab = vocab_lib.CharVocab.fit(["abc-1", "été"])
    ids = vocab.tf_encode(tf.constant(["cab", "été€", ""]), max_length=3).numpy()
    assert ids.shape == (3, 3)
    assert vocab.decode(ids[0]) == "cab"
    assert ids[1].tolist() == [vocab.tokens.index("é"), vocab.tokens.index("t"),
                               vocab.tokens.index("é")]  # truncated at 3
    assert vocab.encode(["a€"])[0][1] == vocab_lib.UNK
    # Decoding stops at the first [END] and drops padding.
    assert vocab.decode([vocab.tokens.index("a"), EOS, vocab.tokens.index("b")]) == "a"


def test_wordpiece_vocab_round_trip():
    texts = ["the cat sat on the mat.", "the dog sat", "a cat and a dog"] * 5
    vocab = vocab_lib.WordPieceVocab.fit(texts, vocabulary_size=60)
    assert vocab.tokens[:4] == list(vocab_lib.SPECIALS)
    ids = vocab.encode(["The cats sat."])[0]
    assert vocab.decode(ids + [EOS]) == "the cats sat ."
    assert vocab.decode(vocab.encode(["the cat, mat"])[0]) == "the cat [UNK] mat"  # no ","


def test_wordpiece_vocab_encodes_a_batch_of_sentences_of_different_lengths():
    """A split is encoded in one call, its sentences of any token counts (run
    eagerly, keras-hub 0.32's tokenizer returns them as Python lists of
    different lengths); each row is what the sentence alone encodes to, and
    the in-graph encoding of the SavedModel pads the same ids."""
    texts = ["the cat sat on the mat.", "the dog sat", "a cat and a dog"] * 5
    vocab = vocab_lib.WordPieceVocab.fit(texts, vocabulary_size=60)
    batch = ["the cat sat on the mat.", "a dog", "", "the cats, and the dogs sat on a mat"]
    ids = vocab.encode(batch)
    assert [list(map(int, row)) for row in ids] == [
        list(map(int, vocab.encode([t])[0])) if t else [] for t in batch]
    assert len({len(row) for row in ids}) == len(batch)  # all lengths differ
    assert vocab.decode(ids[0]) == "the cat sat on the mat ."
    padded = vocab.tf_encode(tf.constant(batch), max_length=8).numpy()
    for row, encoded in zip(padded, ids, strict=True):
        assert row.tolist() == [*encoded[:8], *[0] * (8 - len(encoded[:8]))]


def _write(tmp_path, text, name="pairs.tsv"):
    path = tmp_path / name
    path.write_bytes(text)
    return str(path)


def _pairs_of(path, reverse=False):
    """(sources, targets, problems) of the file's usable lines, read back by index."""
    lines, problems = pairs_lib.index_pairs(pairs_lib.TsvLayout(path, reverse))
    return (*lines.pairs(range(len(lines))), problems)


def test_tsv_index_counts_malformed_and_empty_lines(tmp_path, caplog):
    text = ("Go.\tVa !\tCC-BY 2.0 (France) Attribution\n"  # Anki: a third column
            "Hi.\tSalut !\n"
            "no tab here\n"                 # malformed
            "\n"                            # empty
            "Run!\t\n"                      # empty target
            "Wow!\tÇa alors !\r\n").encode() + b"\xff\xfe\tbad\n"  # not UTF-8: malformed
    path = _write(tmp_path, text + b"Last\tDernier")  # no newline at the end
    sources, targets, problems = _pairs_of(path)
    assert sources == ["Go.", "Hi.", "Wow!", "Last"]
    assert targets == ["Va !", "Salut !", "Ça alors !", "Dernier"]
    assert problems == {"malformed": 2, "empty": 2}
    assert "pairs.tsv: left out 2 malformed line(s) (e.g. line 3 7)" in caplog.text
    assert "2 blank or with an empty side (e.g. line 4 5)" in caplog.text
    assert _pairs_of(path, reverse=True)[0][0] == "Va !"


def test_tsv_and_sentences_leave_out_a_byte_order_mark(tmp_path):
    path = _write(tmp_path, "\ufeffGo.\tVa !\nHi.\tSalut !\n".encode())
    sources, _, _ = _pairs_of(path)
    assert sources == ["Go.", "Hi."]
    sentences = tmp_path / "sentences.txt"
    sentences.write_bytes("\ufeff3/5/79\n".encode())
    assert data_lib.read_sentences(str(sentences)) == ["3/5/79"]


def test_tsv_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        _pairs_of(str(tmp_path / "missing.tsv"))
    with pytest.raises(UserError, match="no source<TAB>target pairs"):
        _pairs_of(_write(tmp_path, b"one column\nanother\n"))


def test_tsv_source_counts_over_long_pairs(tmp_path, caplog):
    lines = [f"sentence number {i}\tphrase {i}" for i in range(40)]
    lines += ["a very long sentence " * 10 + "\tshort"] * 3
    config = get_config("tsv")
    config.data.path = _write(tmp_path, "\n".join(lines).encode())
    config.data.tokenizer = "char"
    config.data.max_source_length = 30
    config.data.max_target_length = 20
    data, source_vocab, target_vocab, report = data_lib.load(config)
    total = sum(report[s]["kept"] + report[s]["over_long"] for s in data_lib.SPLITS)
    assert total == 43
    assert sum(report[s]["over_long"] for s in data_lib.SPLITS) == 3
    assert len(data.train) + len(data.val) + len(data.test) == 40
    assert "over-long" in caplog.text
    src, dec = data.test.inputs
    assert source_vocab.decode(src[0]).startswith("sentence number ")
    assert target_vocab.decode(data.test.targets[0]).startswith("phrase ")


def test_tfds_source_by_name_with_mock_data(tmp_path):
    config = get_config("tfds")
    config.data.name = "ted_hrlr_translate/pt_to_en"
    config.data.data_dir = str(tmp_path)
    config.data.tokenizer = "char"
    config.data.max_source_length = 400
    config.data.max_target_length = 400
    with tfds.testing.mock_data(num_examples=12):
        data, source_vocab, _, report = data_lib.load(config)
    assert (len(data.train), len(data.val), len(data.test)) == (12, 12, 12)
    assert report["train"]["kept"] == 12


def test_tfds_not_prepared_is_a_clear_error(tmp_path):
    config = get_config("tfds")
    config.data.name = "ted_hrlr_translate/pt_to_en"
    config.data.data_dir = str(tmp_path)
    with pytest.raises(UserError, match="not prepared"):
        data_lib.load(config)


@pytest.mark.parametrize("field, value, expected", [
    ("decode.beam_size", 0, "config.decode.beam_size = 0: expected an integer in [1, 64]"),
    ("model.name", "rnn", "config.model.name = 'rnn': expected one of 'attention'"),
    ("data.tokenizer", "bpe", "config.data.tokenizer = 'bpe'"),
])
def test_config_rules_name_the_field(field, value, expected):
    config = get_config()
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(UserError, match="^" + expected.replace("[", r"\[").replace("(", r"\(")):
        config_lib.check_app(config)
