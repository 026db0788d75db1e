"""The embeddings app's own modes (the core runs train, eval, export, predict).

    --mode=query  --query="king"                nearest neighbours (cosine)
                  --query="king,queen"          cosine similarity of two words
                  --query="man:woman::king:?"   analogy by 3CosAdd
                  (several queries separated by ";", or one per line of --input=FILE)
    --mode=debias                               bias direction, neutralize and
                                                equalize (config.debias); writes
                                                DIR/debiased/vectors.txt and report.json

Both read DIR/vectors.txt, or pretrained vectors in GloVe or word2vec text
format given by --vectors=FILE; neither needs the model or the corpus.
"""

import json
import os

from absl import logging

from apps.core.errors import UserError
from apps.embeddings import debias as debias_lib
from apps.embeddings.text import file_lines
from apps.embeddings.vectors import OutOfVocabulary, WordVectors


def query(task, run):
    """--mode=query: answers each query (the user's input is read before the vectors)."""
    queries = _queries(run)
    return run_queries(load_vectors(run), queries, task.config.export.top_k)


def debias(task, run):
    """--mode=debias: the debiased vectors and the report, written to DIR/debiased."""
    return run_debias(load_vectors(run), task.config.debias, run.workdir)


def load_vectors(run):
    """The vectors of --vectors=FILE, else those training wrote to DIR/vectors.txt."""
    path = run.option("vectors")
    if path:
        vectors = WordVectors.load(path)
        logging.info("loaded %d vectors of dimension %d from %s", len(vectors), vectors.dim,
                     path)
        return vectors
    path = os.path.join(run.workdir, "vectors.txt")
    if not os.path.exists(path):
        raise UserError(f"no vectors in {run.workdir} (train first), or give pretrained ones "
                        "with --vectors=FILE")
    return WordVectors.load(path)


def _queries(run):
    """The queries of --query (separated by ";"), or of --input=FILE (one a line)."""
    text = run.option("query")
    if run.input:
        if not os.path.isfile(run.input):
            raise UserError(f"--input={run.input}: no such file (expected one query per line)")
        text = ";".join(line.strip() for line in file_lines([run.input]) if line.strip())
    queries = [q.strip() for q in (text or "").split(";") if q.strip()]
    if not queries:
        raise UserError("--mode=query needs --query='king' | 'king,queen' | "
                        "'man:woman::king:?' (or --input=FILE, one query per line)")
    return queries


def answer(vectors, query, k=10):
    """One query -> (kind, result). Raises OutOfVocabulary / UserError."""
    q = query.strip().lower()
    if "::" in q:
        left, right = q.split("::", 1)
        a_b, c = left.split(":"), right.split(":")[0]
        if len(a_b) != 2 or not all(a_b) or not c:
            raise UserError(f"{query!r}: an analogy is written 'a:b::c:?'")
        return "analogy", vectors.analogy(a_b[0].strip(), a_b[1].strip(), c.strip(), k)
    if "," in q:
        words = [w.strip() for w in q.split(",")]
        if len(words) != 2 or not all(words):
            raise UserError(f"{query!r}: a similarity is written 'word1,word2'")
        return "similarity", vectors.similarity(*words)
    return "nearest", vectors.nearest(q, k)


def run_queries(vectors, queries, k=10):
    """Prints the answer of each query; an unknown word is reported, and is an
    error only when no query could be answered."""
    failed = []
    for text in queries:
        try:
            kind, result = answer(vectors, text, k)
        except OutOfVocabulary as e:
            print(f"{text}: {e}")
            failed.append(str(e))
            continue
        if kind == "similarity":
            print(f"{text}: cosine similarity {result:.4f}")
        else:
            shown = ", ".join(f"{w} {s:.3f}" for w, s in result)
            print(f"{text}: {shown}")
    if len(failed) == len(queries):
        raise UserError(failed[-1])
    return None


def run_debias(vectors, config, workdir):
    """Debiases `vectors` as config.debias says; prints and writes the report."""
    debiased, report = debias_lib.debias(
        vectors, debias_lib.parse_pairs(config.definitional, "config.debias.definitional"),
        debias_lib.parse_pairs(config.equalize, "config.debias.equalize"),
        debias_lib.parse_words(config.gender_specific),
        debias_lib.parse_words(config.report), config.method)
    folder = os.path.join(workdir, "debiased")
    os.makedirs(folder, exist_ok=True)
    debiased.save_word2vec_text(os.path.join(folder, "vectors.txt"))
    with open(os.path.join(folder, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(f"bias direction: {config.method} of {len(report['definitional_pairs_used'])} "
          f"definitional pairs; {report['neutralized_words']} words neutralized")
    print(f"{'word':<24}{'before':>10}{'after':>10}")
    for word, p in report["words"].items():
        print(f"{word:<24}{p['before']:>10.4f}{p['after']:>10.4f}")
    for pair, p in report["equalized"].items():
        print(f"{pair:<24}{p['before'][0]:>+10.4f}{p['after'][0]:>+10.4f}   "
              f"{p['before'][1]:>+8.4f}{p['after'][1]:>+8.4f}")
    print(f"Debiased vectors: {os.path.join(folder, 'vectors.txt')}")
    return {k: report[k] for k in ("mean_abs_projection_neutral_before",
                                   "mean_abs_projection_neutral_after", "neutralized_words")}
