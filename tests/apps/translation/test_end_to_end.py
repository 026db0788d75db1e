"""End to end, as a user runs it: train, run again, predict, error analysis, reload.

The training run is a real `python -m apps.translation` process on the tiny
config with the Transformer (128 generated dates, 8 steps; tests/apps/cli.py);
the no-op rerun, --mode=predict and --mode=error_analysis go through the same
entry in this process, to spare a start-up each; the SavedModel is reloaded in
a Python that cannot import the project. Bad input is test_bad_input.py.
"""

import glob
import json
import os

import pytest
import tensorflow as tf

from apps.core.main import execute
from apps.core.workdir import read_metrics as _metrics
from apps.translation import bleu as bleu_lib
from apps.translation import dates as dates_lib
from apps.translation.task import TranslationTask
from configs.translation import get_config
from tests.apps.cli import run_app, run_isolated

MODEL = "transformer"

# Run by tests/apps/cli.py's run_isolated: the project cannot be imported.
ISOLATED = """
import json
import sys

import tensorflow as tf

loaded = tf.saved_model.load(sys.argv[1])
sources = json.loads(open(sys.argv[2]).read())
out = loaded.signatures["serving_default"](text=tf.constant(sources))
greedy = loaded.signatures["greedy"](text=tf.constant(sources[:5]))
print(json.dumps({
    "translations": [t.decode() for t in out["translation"].numpy()],
    "scores": out["score"].numpy().tolist(),
    "log_probs": out["log_prob"].numpy().tolist(),
    "beam_scores": out["beam_scores"].numpy().tolist(),
    "beams": [[b.decode() for b in row] for row in out["beams"].numpy()],
    "greedy": [t.decode() for t in greedy["translation"].numpy()],
}))
"""


def _config():
    """The config of the CLI run, built in this process."""
    config = get_config("tiny")
    config.model.name = MODEL
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("translation"))
    run_app("translation", workdir, f"--config.model.name={MODEL}")
    return workdir


def test_train_writes_metrics_tensorboard_vocabularies_and_export(finished):
    names = set(os.listdir(finished))
    assert {"metrics.json", "config.json", "vocab.json", "ckpt", "tb", "export"} <= names
    metrics = _metrics(finished)
    for key in ("test_exact_match", "test_bleu", "test_token_accuracy", "search_error_share",
                "examples_per_sec", "train_seconds"):
        assert isinstance(metrics[key], float), key
    assert 0 <= metrics["search_error_share"] <= 1
    assert 0.1 < metrics["test_token_accuracy"] < 1  # learning, far from done
    test_size = _config().data.dates.test
    assert metrics["test_errors"] == round((1 - metrics["test_exact_match"]) * test_size)
    assert metrics["steps"] == 8
    with open(os.path.join(finished, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    assert vocab["target"][4:] == list("-0123456789")  # after [PAD] [UNK] [START] [END]
    tags = set()
    for path in glob.glob(os.path.join(finished, "tb", "eval", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"val_attention", "val_bleu", "test_attention", "test_bleu", "test_exact_match"} <= tags


def test_a_finished_run_is_not_retrained(finished, caplog):
    before = _metrics(finished)
    with caplog.at_level("INFO", logger="absl"):
        again = execute(TranslationTask, _config(), finished, "train")
    assert any("already finished" in r.getMessage() for r in caplog.records)
    assert _metrics(finished) == before and again == before


def test_predict_text_and_file_then_error_analysis(finished, tmp_path, capsys):
    execute(TranslationTask, _config(), finished, "predict", "Saturday 9 May 2018")
    [line] = [x for x in capsys.readouterr().out.splitlines() if "->" in x]
    source, _, translation, score = line.split("\t")
    assert source == "Saturday 9 May 2018" and score.startswith("(score -")
    assert set(translation) <= set("0123456789-")

    (tmp_path / "dates.txt").write_text("3/5/79\n\nmarch 3, 1979\n")
    execute(TranslationTask, _config(), finished, "predict", str(tmp_path / "dates.txt"))
    lines = [x for x in capsys.readouterr().out.splitlines() if "->" in x]
    assert [x.split("\t")[0] for x in lines] == ["3/5/79", "march 3, 1979"]

    out = execute(TranslationTask, _config(), finished, "error_analysis")
    printed = capsys.readouterr().out
    metrics = _metrics(finished)
    assert out["errors"] == metrics["test_errors"]
    assert out["search_errors"] == metrics["test_search_errors"]
    assert out["search_error_share"] == pytest.approx(metrics["search_error_share"])
    assert out["search_errors"] + out["model_errors"] == out["errors"]
    assert f"search errors: {out['search_errors']}, model errors: {out['model_errors']}" \
        in printed


def test_saved_model_translates_strings_in_a_process_without_the_project(finished, tmp_path):
    config = _config()
    d = config.data.dates
    _, _, (sources, references) = dates_lib.generate((d.train, d.val, d.test), config.seed)
    # Upper case and surrounding spaces: the signature normalises as training did.
    (tmp_path / "sources.json").write_text(json.dumps([f" {s.upper()} " for s in sources]))
    out = run_isolated(ISOLATED, os.path.join(finished, "export"), tmp_path / "sources.json",
                       cwd=str(tmp_path))
    translations = out["translations"]
    assert len(translations) == len(sources) and all(isinstance(t, str) for t in translations)
    assert set("".join(translations)) <= set("0123456789-")
    # The same translations as the evaluation that wrote metrics.json.
    metrics = _metrics(finished)
    assert bleu_lib.sacrebleu_score(translations, references) == pytest.approx(
        metrics["test_bleu"], abs=1e-9)
    exact = sum(t == r for t, r in zip(translations, references, strict=True)) / len(sources)
    assert exact == pytest.approx(metrics["test_exact_match"])
    # Beams come sorted, and a score is the length-normalised log-probability.
    for row, beams, t in zip(out["beam_scores"], out["beams"], translations, strict=True):
        assert row == sorted(row, reverse=True) and beams[0] == t
    alpha = config.decode.alpha
    for t, score, log_prob in zip(translations, out["scores"], out["log_probs"], strict=True):
        if len(t) + 1 < config.data.max_target_length:  # finished with [END]
            assert score == pytest.approx(log_prob / (len(t) + 1) ** alpha, rel=1e-5)
    assert len(out["greedy"]) == 5


# The README's command on real data, `configs/translation.py:tsv` (WordPiece,
# the Transformer), made small enough for a test: its model sizes and epochs.
TSV_CHANGES = {"model.d_model": 16, "model.num_heads": 2, "model.ff_dim": 32,
               "model.num_layers": 1, "data.vocab_size": 200, "train.batch_size": 8,
               "train.epochs": 1, "train.checkpoint_every": 0, "eval.attention_maps": 1}


def _pairs_file(path):
    """A manythings.org-shaped pair file (source<TAB>target<TAB>attribution)
    whose sentences have many different token counts."""
    subjects = [("I", "je"), ("The old man", "le vieil homme"), ("We", "nous")]
    verbs = [("see", "vois"), ("would like to buy", "voudrais acheter")]
    objects = [("a car.", "une voiture."), ("the small red house by the sea!", "la petite "
                "maison rouge au bord de la mer !"), ("it?", "ça ?"), ("bread and wine, "
                "please.", "du pain et du vin, s'il vous plaît.")]
    lines = [f"{s} {v} {o}\t{ts} {tv} {to}\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i}"
             for i, ((s, ts), (v, tv), (o, to)) in enumerate(
                 (s, v, o) for s in subjects for v in verbs for o in objects)]
    path.write_text("\n".join(lines * 3) + "\n", encoding="utf-8")
    return str(path)


def test_readme_tsv_command_trains_and_translates_sentences_of_different_lengths(tmp_path):
    """configs/translation.py:tsv end to end on a few lines of a pair file: the
    training run encodes whole splits of sentences of different lengths, and a
    new process (as the README's predict command) loads the WordPiece export."""
    config = get_config("tsv")
    config.data.path = _pairs_file(tmp_path / "fra.txt")
    for dotted, value in TSV_CHANGES.items():
        section, field = dotted.split(".")
        config[section][field] = value
    workdir = str(tmp_path / "en_fr")
    metrics = execute(TranslationTask, config, workdir, "train")
    assert metrics["steps"] == 6  # 55 of the 72 pairs train (3 more are train-dev), 8 a step
    assert 0 <= metrics["test_exact_match"] <= 1 and 0 <= metrics["search_error_share"] <= 1
    with open(os.path.join(workdir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    assert {"maison", "voiture"} <= set(vocab["target"])  # WordPiece words of the file

    (tmp_path / "sentences.txt").write_text("I see a car.\nWe would like to buy bread.\n")
    result = run_app("translation", workdir, "--mode=predict",
                     f"--input={tmp_path / 'sentences.txt'}",
                     f"--config.data.path={config.data.path}",
                     *[f"--config.{k}={v}" for k, v in TSV_CHANGES.items()], variant="tsv")
    lines = [x.split("\t") for x in result.stdout.splitlines() if "\t->\t" in x]
    assert [x[0] for x in lines] == ["I see a car.", "We would like to buy bread."]
    with open(os.path.join(workdir, "predictions", "predictions.json"), encoding="utf-8") as f:
        records = json.load(f)
    assert [r["translation"] for r in records] == [x[2] for x in lines]
    assert all(r["beams"][0] == r["translation"] for r in records)
