"""What users get wrong with the translation app, and what each gets back.

The first table: every row sets up a mistake (a config value, a
tab-separated pair file, a TFDS name, a workdir, a mode or its --input) and
names the words the user must read in the single `error: ...` line. The rows
run the entrypoint's work in this process (tests/apps/cli.py's
`user_error_of`); an unknown config field, which only the command line's
parser can meet, and a missing --input file go through a real
`python -m apps.translation`. The second table: the lines of a pair file
that issue 9 says are left out (malformed, empty, over-long) are counted and
reported, naming the file and the lines.
"""

import logging

import pytest

from apps.core import config as config_lib
from apps.core.trainer import Trainer
from apps.core.workdir import keep_vocabulary
from apps.translation import data as data_lib
from apps.translation.task import TranslationTask
from configs.translation import get_config
from tests.apps.bad_input import (
    TinyConfig,
    case,
    earlier_run,
    expect_unknown_field,
    expect_user_error,
)
from tests.apps.cli import assert_user_error, run_app

PAIRS = "".join(f"{n} apples\t{n} pommes\n" for n in range(12))


tiny = TinyConfig(get_config)  # tiny(section__field=value)
config_case = tiny.case


def tsv(content, name="pairs.tsv", **changes):
    """A pair file `name` in tmp holding `content` (str or bytes), and the config reading it."""
    def make(tmp):
        path = tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return {"config": tiny(**{"data__source": "tsv", "data__path": str(path),
                                  "data__max_target_length": 20, "train__batch_size": 4,
                                  **changes})}
    return make


def parallel(target, content=None):
    """train.en (12 sentences) in tmp and config.data.target_path = target(tmp), a
    file holding `content` when given; None leaves target_path empty."""
    def make(tmp):
        (tmp / "train.en").write_text("".join(f"{n} apples\n" for n in range(12)))
        path = target(tmp) if target else None
        if content is not None:
            path.write_text(content)
        return {"config": tiny(data__source="parallel", data__path=str(tmp / "train.en"),
                               data__target_path=str(path) if path else "",
                               train__batch_size=4)}
    return make


def _workdir_of(config):
    """A workdir whose config.json an earlier run with `config` wrote."""
    return lambda tmp: {"config": tiny(), "workdir": earlier_run(tmp, config)}


def _workdir_of_other_vocabularies(tmp):
    """A workdir trained (a checkpoint at step 0) on dates with another character set."""
    other = tiny(data__dates__train=8, data__dates__val=2, data__dates__test=2,
                 train__batch_size=4)
    run = str(earlier_run(tmp, other))
    task = TranslationTask(other)
    Trainer(task, run).save()
    keep_vocabulary(run, task.vocabulary(), save=True)
    return {"config": tiny()}


def _corrupt(name, content):
    def make(tmp):
        (earlier_run(tmp, tiny()) / name).write_text(content)
        return {"config": tiny()}
    return make


def predict(value, content=None):
    """--mode=predict --input=<value>; a str `value` is the text, a Path is made in tmp."""
    def make(tmp):
        given = value(tmp) if callable(value) else value
        if content == "/":
            given.mkdir()
        elif content is not None:
            given.write_bytes(content)
        return {"config": tiny(), "mode": "predict",
                "input": None if given is None else str(given)}
    return make


CASES = [
    # ------------------------------------------------------------ config values
    config_case("model-unknown", ("config.model.name = 'rnn'", "expected one of 'attention'"),
                model__name="rnn"),
    config_case("rnn-cell-unknown", ("config.model.rnn = 'vanilla'", "'lstm', 'gru'"),
                model__rnn="vanilla"),
    config_case("heads-do-not-divide-d-model",
                ("config.model.d_model = 16 must be a multiple of config.model.num_heads = 3",),
                model__name="transformer", model__num_heads=3),
    config_case("beam-size-zero", ("config.decode.beam_size = 0", "an integer in [1, 64]"),
                decode__beam_size=0),
    config_case("alpha-too-large", ("config.decode.alpha = 3.0", "a number in [0, 2]"),
                decode__alpha=3.0),
    config_case("dropout-one", ("config.model.dropout = 1.0", "a number in [0, 1)"),
                model__dropout=1.0),
    config_case("label-smoothing-negative", ("config.model.label_smoothing = -0.1",
                                             "a number in [0, 1)"),
                model__label_smoothing=-0.1),
    config_case("tokenizer-unknown", ("config.data.tokenizer = 'bpe'", "'char', 'wordpiece'"),
                data__tokenizer="bpe"),
    config_case("vocab-size-tiny", ("config.data.vocab_size = 4", "[8, 1000000]"),
                data__vocab_size=4),
    config_case("max-target-length-one", ("config.data.max_target_length = 1", "[2, 4096]"),
                data__max_target_length=1),
    config_case("split-with-a-zero", ("config.data.split = (0.8, 0.2, 0.0)",
                                      "three fractions > 0"), data__split=(0.8, 0.2, 0.0)),
    config_case("bleu-tokenizer-unknown", ("config.eval.bleu_tokenize = 'moses'",
                                           "expected one of"), eval__bleu_tokenize="moses"),
    config_case("source-unknown", ("config.data.source = 'csv'",
                                   "'dates', 'tsv', 'parallel', 'tfds'"),
                data__source="csv"),
    config_case("dates-train-zero", ("config.data.dates.train = 0", "an integer > 0"),
                data__dates__train=0),
    config_case("held-out-dates-too-many", ("config.data.dates.val + test",
                                            "at most 36524 held-out dates"),
                data__dates__val=30000, data__dates__test=10000),
    config_case("batch-larger-than-the-training-split",
                ("the training split has 128 examples", "config.train.batch_size = 1000"),
                train__batch_size=1000),
    config_case("tflite-on", ("config.export.tflite = True", "no TensorFlow Lite export"),
                export__tflite=True),
    # ---------------------------------------------------------- pair file (TSV)
    case("tsv-path-not-given", lambda t: {"config": tiny(data__source="tsv")},
         "config.data.path is empty", "source<TAB>target per line"),
    case("tsv-path-missing", lambda t: {"config": tiny(data__source="tsv",
                                                       data__path=str(t / "fra.txt"))},
         "config.data.path = ", "fra.txt", "no such file"),
    case("tsv-path-a-folder", lambda t: {"config": tiny(data__source="tsv", data__path=str(t))},
         "config.data.path = ", "a folder; expected a tab-separated file"),
    case("tsv-empty", tsv(""), "pairs.tsv", "no source<TAB>target pairs",
         "0 malformed, 0 blank"),
    case("tsv-no-tabs", tsv("hello world\nbonjour\n"), "no source<TAB>target pairs",
         "2 malformed (e.g. line 1 2)", "one source<TAB>target pair per line"),
    case("tsv-only-empty-sides", tsv("hello\t\n\t bonjour\n"), "no source<TAB>target pairs",
         "2 blank or with an empty side (e.g. line 1 2)"),
    case("tsv-not-utf8", tsv(b"caf\xe9\tcoffee\nth\xe9\ttea\n"), "no source<TAB>target pairs",
         "2 malformed (e.g. line 1 2)", "expected UTF-8 text"),
    case("tsv-too-few-pairs", tsv("a\tb\nc\td\n"),
         "2 usable pairs are too few to split (0.8, 0.1, 0.1)"),
    case("tsv-every-pair-over-long", tsv(PAIRS, data__max_source_length=3),
         "the train split has no usable pairs after leaving out", "over-long"),
    config_case("cache-unknown", ("config.data.cache = 'disk'", "'none', 'memory'"),
                data__cache="disk"),
    # ----------------------------------------------- parallel text (two files)
    case("parallel-target-not-given", parallel(None),
         "config.data.target_path is empty", "one sentence per line"),
    case("parallel-target-missing", parallel(lambda t: t / "train.fr"),
         "config.data.target_path = ", "train.fr", "no such file"),
    case("parallel-target-a-folder", parallel(lambda t: t),
         "config.data.target_path = ", "a folder; expected a text file"),
    case("parallel-target-for-tsv", lambda t: {"config": tiny(
        data__source="tsv", data__path=str(t / "x.tsv"), data__target_path="train.fr")},
         "config.data.target_path = 'train.fr' is read only when config.data.source is "
         "'parallel'"),
    case("parallel-unequal-line-counts", parallel(lambda t: t / "train.fr", "un\ndeux\n"),
         "train.fr has 2 lines but", "train.en has more", "as many lines in both files"),
    case("parallel-no-pairs", parallel(lambda t: t / "train.fr", "\n" * 12),
         "config.data.path = ", "config.data.target_path = ", "no sentence pairs",
         "12 blank or with an empty side"),
    # --------------------------------------------------------------------- TFDS
    case("tfds-name-unknown", lambda t: {"config": tiny(data__source="tfds",
                                                        data__name="no_such_set")},
         "config.data.name = 'no_such_set': not a TFDS data set"),
    case("tfds-not-prepared", lambda t: {"config": tiny(data__source="tfds",
                                                        data__name="ted_hrlr_translate/pt_to_en",
                                                        data__data_dir=str(t))},
         "is not prepared in config.data.data_dir"),
    # ------------------------------------------------------------------ workdir
    case("workdir-of-another-app", _workdir_of(config_lib.common_config("embeddings")),
         "holds a run of the 'embeddings' app, not 'translation'"),
    case("workdir-of-another-model", _workdir_of(tiny(model__name="transformer")),
         "was trained with a different config.model"),
    case("workdir-of-other-vocabularies", _workdir_of_other_vocabularies,
         "was trained with another vocabulary", "vocab.json", "the same config.data"),
    case("workdir-config-corrupt", _corrupt("config.json", "{"),
         "config.json: unreadable config from an earlier run"),
    case("workdir-vocabulary-corrupt", _corrupt("vocab.json", "[1,"),
         "vocab.json: unreadable vocabulary of an earlier run"),
    case("workdir-vocabulary-not-a-mapping", _corrupt("vocab.json", "[1, 2]"),
         "vocab.json: unreadable vocabulary of an earlier run", "expected a JSON dict"),
    # -------------------------------------------------------- modes and --input
    case("mode-unknown", lambda t: {"config": tiny(), "mode": "serve"},
         "--mode=serve: expected one of train, eval, predict, export, tune, error_analysis"),
    case("predict-without-input", predict(None),
         "--mode=predict needs --input=PATH (a sentence or a text file"),
    case("predict-missing-file", predict(lambda t: t / "dates.txt"),
         "dates.txt: no such file", "expected a sentence to translate or a text file"),
    case("predict-missing-path-without-suffix", predict(lambda t: t / "dates"),
         "dates: no such file"),
    case("predict-a-folder", predict(lambda t: t / "inputs", "/"),
         "inputs: a folder; expected a sentence or a text file"),
    case("predict-empty-file", predict(lambda t: t / "dates.txt", b"\n  \n"),
         "dates.txt: no sentences in the file"),
    case("predict-file-not-utf8", predict(lambda t: t / "dates.txt", b"3/5/79\nm\xe4rz 3\n"),
         "dates.txt:2: not UTF-8 text (byte", "convert the file to UTF-8"),
    case("predict-compressed-file", predict(lambda t: t / "dates.txt.gz", b"\x1f\x8b\x08\0\0"),
         "dates.txt.gz: a binary file, not text (expected one sentence per line"),
    case("predict-before-training", predict("saturday 9 may 2018"), "no SavedModel in"),
    case("eval-before-training", lambda t: {"config": tiny(), "mode": "eval"},
         "no checkpoint in", "train first"),
    case("export-before-training", lambda t: {"config": tiny(), "mode": "export"},
         "no checkpoint in", "train first"),
    case("error-analysis-before-training",
         lambda t: {"config": tiny(), "mode": "error_analysis"}, "no checkpoint in"),
]


@pytest.mark.parametrize("row", CASES)
def test_bad_input_is_one_line_naming_the_file_or_field(tmp_path, row):
    expect_user_error(TranslationTask, row.make(tmp_path), tmp_path, row.needles)


def test_unknown_config_field_on_the_command_line(tmp_path):
    expect_unknown_field("translation", tmp_path, "--config.decode.beam=3")


def test_missing_input_file_on_the_command_line(tmp_path):
    result = run_app("translation", tmp_path, "--mode=predict",
                     f"--input={tmp_path / 'dates.txt'}", check=False)
    assert_user_error(result, "dates.txt: no such file")


@pytest.mark.parametrize("line, key, reported", [
    pytest.param("no tab in this line", "malformed", "left out 1 malformed line(s) (e.g. line 7)",
                 id="no-tab"),
    pytest.param(b"caf\xe9\tcoffee", "malformed", "left out 1 malformed line(s) (e.g. line 7)",
                 id="not-utf8"),
    pytest.param("lonely source\t", "empty", "1 blank or with an empty side (e.g. line 7)",
                 id="empty-target"),
    pytest.param("\t lonely target", "empty", "1 blank or with an empty side (e.g. line 7)",
                 id="empty-source"),
    pytest.param("   ", "empty", "1 blank or with an empty side (e.g. line 7)", id="blank"),
    pytest.param("a sentence far longer than the limit\tshort", "over_long",
                 "1 over-long", id="over-long"),
])
def test_skipped_pair_lines_are_counted_and_reported(tmp_path, caplog, line, key, reported):
    lines = PAIRS.encode().splitlines()
    line = line.encode() if isinstance(line, str) else line
    content = b"\n".join([*lines[:6], line, *lines[6:]]) + b"\n"
    config = tsv(content, data__max_source_length=20)(tmp_path)["config"]
    with caplog.at_level(logging.WARNING):
        data, _, _, report = data_lib.load(config)
    assert len(data.train) + len(data.val) + len(data.test) == 12  # every good pair kept
    counted = report["file"][key] if key in report["file"] else sum(
        report[s][key] for s in data_lib.SPLITS)
    assert counted == 1
    where = "pairs.tsv: " if key != "over_long" else "split: "
    assert any(where in r.getMessage() and reported in r.getMessage()
               for r in caplog.records), caplog.text
