"""bench/embeddings.py: the word2vec-vs-gensim figures, their goal and their RESULTS.md rows."""

import json

import pytest

from bench import embeddings, report


def _row(words_per_sec, cpu, ws353, load=4.0):
    return {"ws353_spearman": ws353, "simlex999_spearman": 0.01, "analogy_accuracy": 0.01,
            "analogy_coverage": 0.02, "words_per_sec": words_per_sec, "train_seconds": 2.0,
            "words_per_cpu_sec": cpu, "load": load}


def _rows(ours_speed, ours_ws353):
    return {"ours": [_row(ours_speed, 800.0, ours_ws353), _row(ours_speed, 600.0, ours_ws353)],
            "gensim": [_row(500.0, 1000.0, 0.20), _row(500.0, 1000.0, 0.22)]}


@pytest.mark.parametrize("speed,ws353,met", [(600.0, 0.20, True), (400.0, 0.30, False),
                                             (600.0, 0.18, False)])
def test_the_goal_is_speed_at_least_gensims_with_wordsim_at_most_002_below(speed, ws353, met):
    means = embeddings.summary(_rows(speed, ws353))
    assert means["speed_ratio"] == pytest.approx(speed / 500.0)
    assert means["cpu_ratio"] == pytest.approx(0.7)
    assert means["ws353_difference"] == pytest.approx(ws353 - 0.21)
    assert means["goal_met"] is met


def _result():
    methods = {}
    for method, speed in (("skipgram", 1000.0), ("cbow", 400.0)):
        rows = _rows(speed, 0.25)
        methods[method] = {"config": f"{method}, test corpus", "mean": embeddings.summary(rows),
                           "per_seed": rows}
    return {"methods": methods, "load_average_start": [3.0, 2, 1], "load_average_end": [5.0, 2, 1]}


def test_both_methods_and_their_goals_reach_results_md(tmp_path):
    results = tmp_path / "embeddings.json"
    results.write_text(json.dumps(_result()))
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# Results\n\n{report.EMBEDDINGS_TITLE}\n\nold rows\n\n## Next\n\nkept\n")
    embeddings.write_results(str(path), str(results))
    text = path.read_text()
    assert "old rows" not in text and text.endswith("## Next\n\nkept\n")
    assert text.count(report.EMBEDDINGS_TITLE) == 1
    assert "**skipgram**: skipgram, test corpus." in text and "**cbow**: cbow, test corpus." in text
    assert "| words_per_sec | 1000 | 500 | 2.00 |" in text
    assert "| words_per_cpu_sec | 700 | 1000 | 0.70 |" in text
    assert "**met** (words/s 2.00x, words per CPU-second 0.70x, WordSim-353 +0.040)" in text
    assert "**not met** (words/s 0.80x" in text
    assert "section load 3.0 → 5.0" in text


def test_a_run_from_before_cbow_still_renders():
    old = {"config": "skipgram, Lee corpus", "mean": {
        "ours": _row(400.0, 1.0, 0.2), "gensim": _row(600.0, 1.0, 0.2)}}
    lines = report._embeddings({"result": old, "load_average_start": [1, 1, 1],
                                "load_average_end": [2, 1, 1]})
    assert "| words_per_sec | 400 | 600 | 0.67 |" in lines
