"""End to end, as a user runs it: train, resume, query, export, reload in a bare process.

The tiny config (skip-gram on the first 6,000 words of the Lee corpus) trains
one epoch through the entry point in this process, then the same workdir is
trained to two epochs by a real `python -m apps.embeddings` process
(tests/apps/cli.py), which resumes from the first epoch's checkpoint. The
no-op rerun and --mode=query go through the entry in this process, to spare a
start-up each; the SavedModel is reloaded in a Python that cannot import the
project. Bad input is test_bad_input.py.
"""

import json
import os

import numpy as np
import pytest

from apps.core.main import execute
from apps.core.workdir import read_metrics as _metrics
from apps.embeddings.task import EmbeddingsTask
from apps.embeddings.vectors import WordVectors
from configs.embeddings import get_config
from tests.apps.cli import run_app, run_isolated

# Run by tests/apps/cli.py's run_isolated: the project cannot be imported.
ISOLATED = """
import json
import sys

import tensorflow as tf

serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(words=tf.constant(["The", " said ", "zzzqqq", "australia"]))
print(json.dumps({k: v.numpy().tolist() if v.dtype != tf.string else
                  [[w.decode() for w in row] for row in v.numpy()]
                  for k, v in out.items()}))
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One epoch in this process, then the same command line with two epochs resumes."""
    workdir = str(tmp_path_factory.mktemp("embeddings"))
    config = get_config("tiny")
    config.train.epochs = 1
    first = execute(EmbeddingsTask, config, workdir, "train")
    resumed = run_app("embeddings", workdir)
    return workdir, first, resumed


def test_training_resumes_and_writes_the_workdir_layout(finished, caplog):
    workdir, first, resumed = finished
    restored = [line for line in resumed.stderr.splitlines() if "Restored" in line]
    assert restored and f"(step {first['steps']})" in restored[0]
    metrics = _metrics(workdir)
    assert metrics["steps"] == 2 * first["steps"] > 0
    for key in ("ws353_spearman", "simlex999_spearman", "analogy_accuracy",
                "analogy_coverage", "words_per_sec", "train_seconds"):
        assert isinstance(metrics[key], float), key
    assert 0 < metrics["analogy_coverage"] < 0.05 and metrics["words_per_sec"] > 0
    assert metrics["method"] == "skipgram" and metrics["corpus_words"] < 6000
    names = set(os.listdir(workdir))
    assert {"metrics.json", "config.json", "vocab.json", "ckpt", "tb", "export",
            "vectors.txt"} <= names
    tb = set(os.listdir(os.path.join(workdir, "tb")))
    assert {"train", "eval", "vectors.tsv", "metadata.tsv", "projector_config.pbtxt"} <= tb
    vectors = WordVectors.load(os.path.join(workdir, "vectors.txt"))
    assert len(vectors) == metrics["vocab_size"] and vectors.dim == 16
    with open(os.path.join(workdir, "vocab.json"), encoding="utf-8") as f:
        assert json.load(f) == vectors.words
    projector = np.loadtxt(os.path.join(workdir, "tb", "vectors.tsv"), delimiter="\t")
    assert projector.shape == (100, 16)  # config.export.projector_words
    np.testing.assert_allclose(projector, vectors.matrix[:100], rtol=1e-3, atol=1e-5)

    with caplog.at_level("INFO", logger="absl"):  # a finished run is not retrained
        again = execute(EmbeddingsTask, get_config("tiny"), workdir, "train")
    assert any("already finished" in r.getMessage() for r in caplog.records)
    assert again["ws353_spearman"] == metrics["ws353_spearman"] == _metrics(workdir)[
        "ws353_spearman"]


def test_saved_model_maps_words_to_vectors_in_a_process_without_the_project(finished,
                                                                             tmp_path):
    workdir, _, _ = finished
    out = run_isolated(ISOLATED, os.path.join(workdir, "export"), cwd=str(tmp_path))
    vectors = WordVectors.load(os.path.join(workdir, "vectors.txt"))
    assert out["known"] == [True, True, False, "australia" in vectors]
    assert out["index"][:3] == [vectors.index["the"], vectors.index["said"], -1]
    np.testing.assert_allclose(out["vector"][0], vectors.vector("the"), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["vector"][2], 0.0)
    assert out["neighbors"][2] == [""] * 10 and out["similarities"][2] == [0.0] * 10
    expected = vectors.nearest("said", 10)
    assert out["neighbors"][1] == [w for w, _ in expected]
    np.testing.assert_allclose(out["similarities"][1], [s for _, s in expected], atol=1e-4)


def test_query_mode_and_out_of_vocabulary(finished, tmp_path, capsys):
    workdir, _, _ = finished
    queries = tmp_path / "queries.txt"
    queries.write_text("said\nthe,said\n\nzzzqqq\nthe:said::a:?\n")
    execute(EmbeddingsTask, get_config("tiny"), workdir, "query", str(queries))
    lines = capsys.readouterr().out.splitlines()
    vectors = WordVectors.load(os.path.join(workdir, "vectors.txt"))
    assert lines[0].startswith(f"said: {vectors.nearest('said', 1)[0][0]} ")
    assert lines[1] == f"the,said: cosine similarity {vectors.similarity('the', 'said'):.4f}"
    assert lines[2] == (f"zzzqqq: 'zzzqqq' is not in the vocabulary ({len(vectors)} words)")
    assert lines[3].startswith(f"the:said::a:?: {vectors.analogy('the', 'said', 'a')[0][0]} ")


def test_predict_prints_the_neighbours_of_each_word_of_a_file(finished, tmp_path, capsys):
    workdir, _, _ = finished
    (tmp_path / "words.txt").write_text("Said, the\nzzzqqq\n")
    execute(EmbeddingsTask, get_config("tiny"), workdir, "predict", str(tmp_path / "words.txt"))
    lines = capsys.readouterr().out.splitlines()
    vectors = WordVectors.load(os.path.join(workdir, "vectors.txt"))
    nearest = vectors.nearest("said", 10)
    word, _, shown = lines[0].partition(": ")
    assert word == "said" and [x.split()[0] for x in shown.split(", ")] == [w for w, _ in nearest]
    assert lines[1].startswith(f"the: {vectors.nearest('the', 1)[0][0]} ")
    assert lines[2] == "zzzqqq: not in the vocabulary"
    with open(os.path.join(workdir, "predictions", "predictions.json"), encoding="utf-8") as f:
        records = json.load(f)
    assert [r["word"] for r in records] == ["said", "the", "zzzqqq"]
    assert [n["word"] for n in records[0]["neighbors"]] == [w for w, _ in nearest]
    np.testing.assert_allclose([n["similarity"] for n in records[0]["neighbors"]],
                               [s for _, s in nearest], atol=1e-4)
    assert records[2] == {"word": "zzzqqq", "known": False, "neighbors": []}
