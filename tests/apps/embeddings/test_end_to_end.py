"""End to end, as a user runs it: train, resume, query, export, reload in a fresh process.

Every run is a real `python -m apps.embeddings` process on the tiny config
(skip-gram on the first 6,000 words of the Lee corpus).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from apps.core.workdir import read_metrics as _metrics
from apps.embeddings.vectors import WordVectors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
ARGS = ["--config=configs/embeddings.py:tiny"]


def _run(workdir, *extra, check=True):
    command = [sys.executable, "-m", "apps.embeddings", *ARGS, f"--workdir={workdir}", *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One epoch, then the same command with two epochs: it resumes from the first."""
    workdir = str(tmp_path_factory.mktemp("embeddings"))
    _run(workdir, "--config.train.epochs=1")
    first = _metrics(workdir)
    resumed = _run(workdir)
    return workdir, first, resumed


def test_training_resumes_and_writes_the_workdir_layout(finished):
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
    assert {"metrics.json", "config.json", "ckpt", "tb", "export", "vectors.txt"} <= names
    tb = set(os.listdir(os.path.join(workdir, "tb")))
    assert {"train", "eval", "vectors.tsv", "metadata.tsv", "projector_config.pbtxt"} <= tb
    vectors = WordVectors.load(os.path.join(workdir, "vectors.txt"))
    assert len(vectors) == metrics["vocab_size"] and vectors.dim == 16
    projector = np.loadtxt(os.path.join(workdir, "tb", "vectors.tsv"), delimiter="\t")
    assert projector.shape == (100, 16)  # config.export.projector_words
    np.testing.assert_allclose(projector, vectors.matrix[:100], rtol=1e-3, atol=1e-5)

    again = _run(workdir)  # a finished run is not retrained
    assert "already finished" in again.stderr
    assert _metrics(workdir)["ws353_spearman"] == metrics["ws353_spearman"]


ISOLATED = textwrap.dedent("""
    import sys
    for name in ("apps", "layers", "optimizers", "configs"):
        sys.modules[name] = None  # this process cannot import the project
    import json
    import tensorflow as tf
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    out = serve(words=tf.constant(["The", " said ", "zzzqqq", "australia"]))
    print(json.dumps({k: v.numpy().tolist() if v.dtype != tf.string else
                      [[w.decode() for w in row] for row in v.numpy()]
                      for k, v in out.items()}))
""")


def test_saved_model_maps_words_to_vectors_in_a_process_without_the_project(finished,
                                                                             tmp_path):
    workdir, _, _ = finished
    result = subprocess.run([sys.executable, "-I", "-c", ISOLATED,
                             os.path.join(workdir, "export")],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    vectors = WordVectors.load(os.path.join(workdir, "vectors.txt"))
    assert out["known"] == [True, True, False, "australia" in vectors]
    assert out["index"][:3] == [vectors.index["the"], vectors.index["said"], -1]
    np.testing.assert_allclose(out["vector"][0], vectors.vector("the"), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["vector"][2], 0.0)
    assert out["neighbors"][2] == [""] * 10 and out["similarities"][2] == [0.0] * 10
    expected = vectors.nearest("said", 10)
    assert out["neighbors"][1] == [w for w, _ in expected]
    np.testing.assert_allclose(out["similarities"][1], [s for _, s in expected], atol=1e-4)


def test_query_mode_and_out_of_vocabulary(finished):
    workdir, _, _ = finished
    result = _run(workdir, "--mode=query", "--query=said;the,said;zzzqqq;the:said::a:?")
    lines = result.stdout.splitlines()
    vectors = WordVectors.load(os.path.join(workdir, "vectors.txt"))
    assert lines[0].startswith(f"said: {vectors.nearest('said', 1)[0][0]} ")
    assert lines[1] == f"the,said: cosine similarity {vectors.similarity('the', 'said'):.4f}"
    assert lines[2] == (f"zzzqqq: 'zzzqqq' is not in the vocabulary ({len(vectors)} words)")
    assert lines[3].startswith(f"the:said::a:?: {vectors.analogy('the', 'said', 'a')[0][0]} ")
