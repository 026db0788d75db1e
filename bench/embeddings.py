"""word2vec against gensim, the tool users pick for it: speed and quality side by side.

Trains this project's skip-gram (the default config: the Lee corpus, as
`python -m apps.embeddings --config=configs/embeddings.py` does) and gensim's
Word2Vec on the very same sentences (this app's tokenizer and vocabulary)
with the same dimension, window, negatives, subsampling, min-count and
epochs, for several seeds, alternating the two so that drift on a shared
machine hits both alike. Both are scored by the same code
(apps/embeddings/evaluation.py, which the tests check against gensim's own
evaluate_word_pairs / evaluate_word_analogies).

words/sec is the corpus's words (in the vocabulary, before subsampling)
times epochs over the training time: ours from the trainer's busy time
(metrics.json words_per_sec), gensim's around Word2Vec.train with 2 workers.

    python -m bench embeddings            # 3 seeds of each
"""

import os
import statistics
import sys
import tempfile
import time

from absl import logging

from apps.core.main import execute
from apps.embeddings import data as data_lib
from apps.embeddings import evaluation as eval_lib
from apps.embeddings.task import EmbeddingsTask
from apps.embeddings.vectors import WordVectors
from bench.common import write_json
from configs.embeddings import get_config

FIGURES = ("ws353_spearman", "simlex999_spearman", "analogy_accuracy")
SEEDS = int(os.environ.get("EMBEDDINGS_BENCH_SEEDS", "3"))


def ours(config, seed, workdir):
    config = config.copy_and_resolve_references()
    config.seed = seed
    metrics = execute(EmbeddingsTask, config, workdir, "train")
    return {k: metrics[k] for k in (*FIGURES, "analogy_coverage", "words_per_sec",
                                    "train_seconds")}


def gensim(config, corpus, evaluation, seed):
    from gensim.models import Word2Vec

    sentences = corpus.sentences
    w = config.word2vec
    model = Word2Vec(vector_size=config.model.dim, window=w.window, negative=w.negatives,
                     sample=w.sample,
                     min_count=config.data.min_count, sg=int(config.method == "skipgram"),
                     hs=0, workers=2, seed=seed)
    model.build_vocab(sentences)
    words = sum(len(s) for s in sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=config.train.epochs)
    seconds = time.perf_counter() - start
    vectors = WordVectors(model.wv.index_to_key, model.wv.vectors)
    result = {"words_per_sec": words * config.train.epochs / seconds, "train_seconds": seconds}
    result.update(score(vectors, evaluation))
    return result


def score(vectors, evaluation):
    out = {f"{name}_spearman": eval_lib.word_similarity(vectors, evaluation[name])["spearman"]
           for name in ("ws353", "simlex999")}
    analogy = eval_lib.analogy(vectors, evaluation["analogies"])
    out["analogy_accuracy"] = analogy["analogy_accuracy"]
    out["analogy_coverage"] = analogy["analogy_coverage"]
    return out


def compare(config, seeds=SEEDS):
    """Runs both for each seed; returns {"ours": [...], "gensim": [...]} per-seed rows."""
    logging.set_verbosity(logging.WARNING)
    corpus = data_lib.load_corpus(config)
    task = EmbeddingsTask(config)
    evaluation = task._load_evaluation()
    rows = {"ours": [], "gensim": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            first_ours = seed % 2 == 0
            for side in (("ours", "gensim") if first_ours else ("gensim", "ours")):
                if side == "ours":
                    rows["ours"].append(ours(config, seed, os.path.join(tmp, str(seed))))
                else:
                    rows["gensim"].append(gensim(config, corpus, evaluation, seed))
    return rows


def summary(rows):
    keys = (*FIGURES, "analogy_coverage", "words_per_sec", "train_seconds")
    return {side: {k: statistics.mean(r[k] for r in side_rows) for k in keys}
            for side, side_rows in rows.items()}


def print_table(title, rows):
    means = summary(rows)
    print(f"\n{title}")
    head = f"{'':<22}{'ours':>12}{'gensim':>12}{'ours-gensim':>13}   per seed (ours / gensim)"
    print(head)
    print("-" * len(head))
    for key in (*FIGURES, "analogy_coverage", "words_per_sec", "train_seconds"):
        a, b = means["ours"][key], means["gensim"][key]
        seeds = "  ".join(f"{x[key]:.3g}/{y[key]:.3g}"
                          for x, y in zip(rows["ours"], rows["gensim"], strict=True))
        fmt = ".0f" if key == "words_per_sec" else ".1f" if key == "train_seconds" else ".3f"
        print(f"{key:<22}{a:>12{fmt}}{b:>12{fmt}}{a - b:>+13{fmt}}   {seeds}")
    ratio = means["ours"]["words_per_sec"] / means["gensim"]["words_per_sec"]
    print(f"words/sec ours / gensim: {ratio:.2f} (goal >= 0.5); quality goal: each figure "
          "within 0.02 of gensim's")
    return means


def main(argv=None):
    config = get_config()
    name = f"{config.method}, Lee corpus, dim {config.model.dim}, window " \
           f"{config.word2vec.window}, {config.word2vec.negatives} negatives, min_count " \
           f"{config.data.min_count}, {config.train.epochs} epochs, {SEEDS} seeds"
    rows = compare(config)
    means = print_table(f"embeddings: word2vec vs gensim ({name})", rows)
    write_json("embeddings.json", {"config": name, "mean": means, "per_seed": rows})


if __name__ == "__main__":
    main(sys.argv)
