"""What users get wrong with the embeddings app, and the one line each gets back.

One table: every row sets up a mistake (a config value, a corpus file or
folder, an evaluation file, a pretrained-vectors file, a query, a workdir, a
mode) and names the words the user must read in the single `error: ...` line.
The rows run the entrypoint's work in this process (tests/apps/cli.py's
`user_error_of`); an unknown config field, which only the command line's
parser can meet, and an unknown query word given with --query go through a
real `python -m apps.embeddings`. The app skips no line silently: a corpus,
vectors or query file that is not UTF-8, or a malformed line, is an error.
"""

import gzip
import json
import logging
import os
import struct

import numpy as np
import pytest

from apps.core import config as config_lib
from apps.core.main import execute
from apps.embeddings.task import EmbeddingsTask
from apps.embeddings.vectors import WordVectors
from configs.embeddings import get_config
from tests.apps.bad_input import (
    TinyConfig,
    case,
    earlier_run,
    expect_unknown_field,
    expect_user_error,
)
from tests.apps.cli import assert_user_error, run_app

CORPUS = "the king and the queen\nthe man and the woman\n" * 3


tiny = TinyConfig(get_config)  # tiny(section__field=value)
config_case = tiny.case


def corpus(content=CORPUS, name="corpus.txt", **changes):
    """A corpus file `name` in tmp holding `content` (str or bytes), and the config reading it."""
    def make(tmp):
        path = tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return {"config": tiny(**{"data__source": "text", "data__path": str(path),
                                  "data__min_count": 1, **changes})}
    return make


def folder(*entries):
    """A corpus folder in tmp with `entries` made by fn(folder), and the config reading it."""
    def make(tmp):
        (tmp / "texts").mkdir()
        for entry in entries:
            entry(tmp / "texts")
        return {"config": tiny(data__source="text", data__path=str(tmp / "texts"))}
    return make


def _broken_link(root):
    (root / "a.txt").write_text(CORPUS)
    os.symlink(root / "gone.txt", root / "b.txt")


def _only_hidden(root):
    (root / ".notes.txt").write_text(CORPUS)


def eval_file(field, content):
    """config.eval.<field> = a file holding `content` (None: a missing file)."""
    def make(tmp):
        path = tmp / f"{field}.txt"
        if content is not None:
            path.write_text(content)
        return {"config": tiny(**{f"eval__{field}": str(path)})}
    return make


def _vectors(tmp):
    """DIR/vectors.txt of a small trained run, as --mode=query/debias reads it."""
    run = tmp / "run"
    run.mkdir(exist_ok=True)
    rows = np.eye(4, 3, dtype=np.float32) + 0.1
    WordVectors(["king", "queen", "man", "woman"], rows).save_word2vec_text(
        str(run / "vectors.txt"))
    return run


def query(text, vectors_in_workdir=True):
    """--mode=query with --input=a file holding `text` (str or bytes)."""
    def make(tmp):
        if vectors_in_workdir:
            _vectors(tmp)
        path = tmp / "queries.txt"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return {"config": tiny(), "mode": "query", "input": path}
    return make


def pretrained(content, name="vectors.txt"):
    """--mode=query --vectors=<a file holding `content`> (None: missing; "/": a folder)."""
    def make(tmp):
        path = tmp / name
        if content == "/":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        (tmp / "queries.txt").write_text("king\n")
        return {"config": tiny(), "mode": "query", "input": tmp / "queries.txt",
                "flags": {"vectors": str(path)}}
    return make


def _word2vec_binary():
    """The header of word2vec's binary format, then raw float32 vectors."""
    return b"2 3\n" + b"".join(w + b" " + struct.pack("<3f", 0.5, 1.0, 0.0)
                               for w in (b"king", b"queen"))


def _debias(tmp):
    """--mode=debias on vectors that hold none of the default definitional pairs."""
    _vectors(tmp)
    return {"config": tiny(debias__definitional="she:he,her:his"), "mode": "debias"}


def _workdir_of(config, vocabulary=None):
    """A workdir whose config.json (and vocab.json) an earlier run wrote."""
    def make(tmp):
        run = earlier_run(tmp, config)
        if vocabulary is not None:
            (run / "vocab.json").write_text(json.dumps(list(vocabulary)))
        return {"config": tiny()}
    return make


def _vocabulary_not_utf8(tmp):
    (earlier_run(tmp, tiny()) / "vocab.json").write_bytes(b'["k\xf6nig"]')
    return {"config": tiny()}


def _corrupt_workdir(tmp):
    return {"config": tiny(), "workdir": earlier_run(tmp, config_json="{")}


def _predict(what):
    def make(tmp):
        made = {"config": tiny(), "mode": "predict", "input": tmp / what}
        if what == "words.txt":
            (tmp / what).write_text("king queen\n")
        elif what == "empty.txt":
            (tmp / what).write_text("... !!!\n\n")
        elif what == "words":
            (tmp / what).mkdir()
        return made
    return make


CASES = [
    # ------------------------------------------------------------ config values
    config_case("method-unknown", ("config.method = 'fasttext'", "expected one of 'skipgram'"),
                method="fasttext"),
    config_case("window-zero", ("config.word2vec.window = 0", "an integer in [1, 50]"),
                word2vec__window=0),
    config_case("negatives-zero", ("config.word2vec.negatives = 0", "an integer in [1, 100]"),
                word2vec__negatives=0),
    config_case("sample-one", ("config.word2vec.sample = 1.0", "a number in [0, 1)"),
                word2vec__sample=1.0),
    config_case("chunk-words-zero", ("config.word2vec.chunk_words = 0", "an integer > 0"),
                word2vec__chunk_words=0),
    config_case("min-count-zero", ("config.data.min_count = 0", "an integer > 0"),
                data__min_count=0),
    config_case("max-vocab-negative", ("config.data.max_vocab = -1", "an integer >= 0"),
                data__max_vocab=-1),
    config_case("dim-zero", ("config.model.dim = 0", "an integer > 0"), model__dim=0),
    config_case("glove-x-max-zero", ("config.glove.x_max = 0.0", "a number > 0"),
                glove__x_max=0.0),
    config_case("glove-memory-pairs-zero", ("config.glove.memory_pairs = 0", "an integer > 0"),
                glove__memory_pairs=0),
    config_case("top-k-zero", ("config.export.top_k = 0", "an integer in [1, 1000]"),
                export__top_k=0),
    config_case("source-unknown", ("config.data.source = 'csv'", "expected one of 'embedded'"),
                data__source="csv"),
    config_case("debias-method-unknown", ("config.debias.method = 'hard'", "'pca'"),
                debias__method="hard"),
    config_case("debias-pairs-malformed", ("config.debias.equalize = 'she-he'",
                                           "comma-separated pairs 'word:word'"),
                debias__equalize="she-he"),
    config_case("xla-on", ("config.xla = True", "expected false"), xla=True),
    config_case("mixed-precision-on", ("config.mixed_precision = True", "float32"),
                mixed_precision=True),
    config_case("tflite-on", ("config.export.tflite = True", "no TensorFlow Lite export"),
                export__tflite=True),
    config_case("epochs-zero", ("config.train.epochs = 0", "an integer > 0"), train__epochs=0),
    config_case("strategy-unknown", ("config.strategy = 'horovod'", "expected one of"),
                strategy="horovod"),
    # ------------------------------------------------------------------ corpus
    case("corpus-path-not-given", lambda t: {"config": tiny(data__source="text")},
         "config.data.path is empty", "a text file or a folder"),
    case("corpus-path-missing",
         lambda t: {"config": tiny(data__source="text", data__path=str(t / "text8"))},
         "config.data.path = ", "text8", "no such file or folder"),
    case("corpus-folder-without-text-files", folder(_only_hidden),
         "texts", "the folder has no text files"),
    case("corpus-file-unreadable", folder(_broken_link),
         "b.txt: cannot read (No such file or directory)"),
    case("corpus-empty", corpus(""), "corpus.txt", "no words in the text",
         "expected UTF-8 text"),
    case("corpus-only-punctuation", corpus("... !!! ???\n"), "no words in the text"),
    case("corpus-no-word-reaches-min-count", corpus("one two three\n", data__min_count=5),
         "corpus.txt", "0 distinct word(s) of its 3 occur config.data.min_count = 5",
         "expected at least 2"),
    case("corpus-not-utf8", corpus(b"the caf\xe9 and the king\n" * 2), "corpus.txt:1:",
         "not UTF-8 text (byte 0xe9 at column 8)", "convert the file to UTF-8"),
    case("corpus-compressed", corpus(gzip.compress(CORPUS.encode()), name="text8.gz"),
         "text8.gz: a binary file, not text", "decompress"),
    # -------------------------------------------------------- evaluation files
    case("ws353-missing", eval_file("ws353", None), "config.eval.ws353 = ", "no such file"),
    case("ws353-line-malformed", eval_file("ws353", "king queen 8.5\nking queen\n"),
         "ws353.txt:2: expected 'word1 word2 score'"),
    case("simlex-score-not-a-number", eval_file("simlex999", "king queen high\n"),
         "simlex999.txt:1: expected 'word1 word2 score'"),
    case("analogies-empty", eval_file("analogies", "# nothing\n"),
         "analogies.txt: no analogy questions", "': section'"),
    case("analogies-three-words", eval_file("analogies", ": family\nman woman king\n"),
         "analogies.txt:2: expected ': section' or four words"),
    # ------------------------------------------------------ pretrained vectors
    case("vectors-missing", pretrained(None), "vectors.txt: no such vectors file"),
    case("vectors-a-folder", pretrained("/"), "vectors.txt: a folder; expected a vectors file"),
    case("vectors-empty", pretrained(""), "vectors.txt: no vectors found"),
    case("vectors-wrong-count", pretrained("king 1 2 3\nqueen 1 2\n"),
         "vectors.txt:2: expected a word and 3 numbers, found 2"),
    case("vectors-not-a-number", pretrained("king 1 2 3\nqueen 1 two 3\n"),
         "vectors.txt:2: 'two' in the vector of 'queen' is not a number"),
    case("vectors-not-finite", pretrained("king 1 2 3\nqueen 1 nan 3\n"),
         "vectors.txt:2: the vector of 'queen' holds 'nan'", "expected finite numbers"),
    case("vectors-word-without-numbers", pretrained("king\nqueen 1 2\n"),
         "vectors.txt:1: expected a word and its vector's numbers, found only 'king'"),
    case("vectors-header-dimension-wrong", pretrained("2 3\nking 1 2\nqueen 3 4\n"),
         "vectors.txt:2: expected a word and 3 numbers, found 2"),
    case("vectors-header-count-wrong", pretrained("3 2\nking 1 2\nqueen 3 4\n"),
         "vectors.txt: the header announces 3 words but the file holds 2"),
    case("vectors-word2vec-binary", pretrained(_word2vec_binary(), name="vectors.bin"),
         "vectors.bin: a binary file, not text (expected GloVe or word2vec text format",
         "binary=False"),
    case("vectors-not-utf8", pretrained(b"king 1 2\nreine\xe9 3 4\n"),
         "vectors.txt:2: not UTF-8 text"),
    # ------------------------------------------------------------------ queries
    case("query-out-of-vocabulary", query("prince\n"),
         "'prince' is not in the vocabulary (4 words)"),
    case("query-analogy-out-of-vocabulary", query("man:woman::prince:?\n"),
         "'prince' is not in the vocabulary"),
    case("query-analogy-malformed", query("man:woman::\n"), "an analogy is written 'a:b::c:?'"),
    case("query-similarity-of-three", query("king,queen,man\n"),
         "a similarity is written 'word1,word2'"),
    case("query-none-given", query("\n\n"), "--mode=query needs --query="),
    case("query-file-missing", lambda t: {"config": tiny(), "mode": "query",
                                          "input": t / "queries.txt"},
         "queries.txt: no such file", "one query per line"),
    case("query-file-not-utf8", query(b"k\xf6nig\n"), "queries.txt:1: not UTF-8 text"),
    case("query-before-training", query("king\n", vectors_in_workdir=False),
         "no vectors in", "train first", "--vectors=FILE"),
    case("vectors-given-to-train", lambda t: {"config": tiny(),
                                              "flags": {"vectors": str(t / "v.txt")}},
         "v.txt is for --mode=query/debias, not --mode=train"),
    case("query-given-to-debias", lambda t: {"config": tiny(), "mode": "debias",
                                             "flags": {"query": "king"}},
         "--query=king is for --mode=query, not --mode=debias"),
    case("debias-no-definitional-pair-known", _debias,
         "none of the definitional pairs (config.debias.definitional)"),
    # ------------------------------------------------------------------ workdir
    case("workdir-of-another-app", _workdir_of(config_lib.common_config("translation")),
         "holds a run of the 'translation' app, not 'embeddings'"),
    case("workdir-of-another-model", _workdir_of(tiny(model__dim=32)),
         "was trained with a different config.model"),
    case("workdir-of-another-method", _workdir_of(tiny(method="cbow")),
         "was trained with a different config.method", "'cbow' there, 'skipgram' here"),
    case("workdir-of-another-vocabulary", _workdir_of(tiny(), ["the", "king", "queen"]),
         "was trained with another vocabulary (3 tokens in", "vocab.json",
         "the same config.data"),
    case("workdir-vocabulary-not-utf8", _vocabulary_not_utf8,
         "vocab.json: unreadable vocabulary of an earlier run"),
    case("workdir-config-corrupt", _corrupt_workdir,
         "config.json: unreadable config from an earlier run"),
    # -------------------------------------------------------------------- modes
    case("mode-unknown", lambda t: {"config": tiny(), "mode": "serve"},
         "--mode=serve: expected one of train, eval, predict, export, tune, query, debias"),
    case("predict-missing-path", _predict("missing.txt"),
         "missing.txt: no such file (expected a text file of words)"),
    case("predict-a-folder", _predict("words"), "words: a folder; expected a text file"),
    case("predict-file-without-words", _predict("empty.txt"),
         "empty.txt: nothing to predict on (a text file of words)"),
    case("predict-without-input", lambda t: {"config": tiny(), "mode": "predict"},
         "--mode=predict needs --input=PATH"),
    case("predict-before-training", _predict("words.txt"), "no SavedModel in"),
    case("eval-before-training", lambda t: {"config": tiny(), "mode": "eval"},
         "no checkpoint in", "train first"),
    case("export-before-training", lambda t: {"config": tiny(), "mode": "export"},
         "no checkpoint in", "train first"),
]


@pytest.mark.parametrize("row", CASES)
def test_bad_input_is_one_line_naming_the_file_or_field(tmp_path, row):
    expect_user_error(EmbeddingsTask, row.make(tmp_path), tmp_path, row.needles)


def test_unknown_config_field_on_the_command_line(tmp_path):
    expect_unknown_field("embeddings", tmp_path, "--config.word2vec.windw=3")


def test_unknown_query_words_on_the_command_line(tmp_path):
    """Every query unanswerable: a user error; one among others is only reported."""
    workdir = _vectors(tmp_path)
    result = run_app("embeddings", workdir, "--mode=query", "--query=prince;duke", check=False)
    assert_user_error(result, "'duke' is not in the vocabulary (4 words)")
    assert result.stdout.splitlines() == ["prince: 'prince' is not in the vocabulary (4 words)",
                                          "duke: 'duke' is not in the vocabulary (4 words)"]


def test_repeated_words_in_pretrained_vectors_are_counted_and_reported(tmp_path, caplog):
    """A word that comes back keeps its first vector; the repeats are logged, not hidden."""
    made = pretrained("3 2\nking 1 0\nqueen 0 1\nking 5 5\n")(tmp_path)
    with caplog.at_level(logging.WARNING, logger="absl"):
        execute(EmbeddingsTask, made["config"], str(tmp_path / "run"), "query", made["input"],
                **made["flags"])
    assert "vectors.txt: skipped 1 repeated word(s), keeping the first vector of each " \
        "(e.g. line 4)" in caplog.text
    vectors = WordVectors.load(made["flags"]["vectors"])
    assert vectors.words == ["king", "queen"] and vectors.vector("king").tolist() == [1, 0]
