"""End to end, as a user runs it: train, run again, predict, error analysis, reload.

Every run is a real `python -m apps.translation` process on the tiny config
(the Transformer on a few hundred generated dates).
"""

import glob
import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from apps.core.errors import UserError
from apps.core.workdir import read_metrics as _metrics
from apps.translation import bleu as bleu_lib
from apps.translation import dates as dates_lib
from apps.translation.task import TranslationTask
from configs.translation import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
ARGS = ["--config=configs/translation.py:tiny", "--config.model.name=transformer"]


def _run(workdir, *extra, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "apps.translation", *ARGS, f"--workdir={workdir}", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("translation"))
    _run(workdir)
    return workdir


def test_train_writes_metrics_tensorboard_and_export(finished):
    assert {"metrics.json", "config.json", "ckpt", "tb", "export"} <= set(os.listdir(finished))
    metrics = _metrics(finished)
    for key in ("test_exact_match", "test_bleu", "test_token_accuracy", "search_error_share",
                "examples_per_sec", "train_seconds"):
        assert isinstance(metrics[key], float), key
    assert 0 <= metrics["search_error_share"] <= 1
    assert 0.1 < metrics["test_token_accuracy"] < 1  # learning, far from done
    assert metrics["test_errors"] == round((1 - metrics["test_exact_match"]) * 48)
    tags = set()
    for path in glob.glob(os.path.join(finished, "tb", "eval", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"val_attention", "val_bleu", "attention", "test_bleu", "test_exact_match"} <= tags


def test_a_finished_run_is_not_retrained(finished):
    before = _metrics(finished)
    again = _run(finished)
    assert "already finished" in again.stderr
    assert _metrics(finished) == before


def test_predict_text_and_file_then_error_analysis(finished, tmp_path, capsys):
    result = _run(finished, "--mode=predict", "--input=Saturday 9 May 2018")
    [line] = [x for x in result.stdout.splitlines() if "->" in x]
    source, _, translation, score = line.split("\t")
    assert source == "Saturday 9 May 2018" and score.startswith("(score -")
    assert set(translation) <= set("0123456789-")

    serving = tf.saved_model.load(os.path.join(finished, "export")).signatures[
        "serving_default"]
    (tmp_path / "dates.txt").write_text("3/5/79\n\nmarch 3, 1979\n")
    task = TranslationTask(get_config("tiny"))
    task.predict_text(serving, str(tmp_path / "dates.txt"))
    lines = [x for x in capsys.readouterr().out.splitlines() if "->" in x]
    assert [x.split("\t")[0] for x in lines] == ["3/5/79", "march 3, 1979"]

    analysis = _run(finished, "--mode=error_analysis")
    out = json.loads(analysis.stdout[analysis.stdout.index("{"):])
    metrics = _metrics(finished)
    assert out["errors"] == metrics["test_errors"]
    assert out["search_errors"] == metrics["test_search_errors"]
    assert out["search_error_share"] == pytest.approx(metrics["search_error_share"])
    assert "search errors:" in analysis.stdout

    task = TranslationTask(get_config("tiny"))
    with pytest.raises(UserError, match="--mode=predict needs --input"):
        task.predict_text(None, "")


ISOLATED = textwrap.dedent("""
    import sys
    for name in ("apps", "layers", "optimizers", "configs"):
        sys.modules[name] = None  # this process cannot import the project
    import json
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
""")


def test_saved_model_translates_strings_in_a_process_without_the_project(finished, tmp_path):
    config = get_config("tiny")
    d = config.data.dates
    _, _, (sources, references) = dates_lib.generate((d.train, d.val, d.test), config.seed)
    # Upper case and surrounding spaces: the signature normalises as training did.
    (tmp_path / "sources.json").write_text(json.dumps([f" {s.upper()} " for s in sources]))
    result = subprocess.run([sys.executable, "-I", "-c", ISOLATED,
                             os.path.join(finished, "export"), str(tmp_path / "sources.json")],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
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
