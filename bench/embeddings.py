"""word2vec against gensim, the tool users pick for it: speed and quality side by side.

For skip-gram and CBOW (configs/embeddings.py's default and ":cbow" variants:
the Lee corpus), trains this project's word2vec, as `python -m apps.embeddings
--config=configs/embeddings.py[:cbow]` does, and gensim's Word2Vec on the very
same sentences (this app's tokenizer and vocabulary) with the same dimension,
window, negatives, subsampling, min-count and epochs, for several seeds,
alternating the two so that drift on a shared machine hits both alike. Both
are scored by the same code (apps/embeddings/evaluation.py, which the tests
check against gensim's own evaluate_word_pairs / evaluate_word_analogies).

words/sec is the corpus's words (in the vocabulary, before subsampling)
times epochs over the training time: ours from the trainer's busy time
(metrics.json words_per_sec: the train-step calls, the first, which traces
and compiles, left out), gensim's around Word2Vec.train with 2 workers.

On a shared machine the wall-clock figures depend on how much of the CPU
each side gets, so the CPU time each spends training is measured as well
(the process's user + system time over the same windows: ours around the
trainer's train-step calls after the first, gensim's around
Word2Vec.train), and words per CPU-second compared: the cost of the work,
whatever the load. The 1-minute load average is recorded around each run.

    python -m bench embeddings              # via bench/__main__.py: 3 seeds of each method
    python -m bench.embeddings --results    # then: its rows into bench/RESULTS.md
"""

import os
import resource
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
KEYS = (*FIGURES, "analogy_coverage", "words_per_sec", "train_seconds", "words_per_cpu_sec",
        "load")
SEEDS = int(os.environ.get("EMBEDDINGS_BENCH_SEEDS", "3"))
#: method -> the configs/embeddings.py variant that trains it
VARIANTS = {"skipgram": "", "cbow": "cbow"}
#: the quality goal: WordSim-353 Spearman at most this far below gensim's
QUALITY_MARGIN = 0.02


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _TimedTask(EmbeddingsTask):
    """EmbeddingsTask whose trainer adds up the CPU time of its train-step calls
    after the first (the calls the trainer's busy time counts)."""

    cpu_seconds = 0.0
    words = 0.0

    def make_trainer(self, workdir):
        trainer = super().make_trainer(workdir)
        make_steps = trainer.train_step_function
        _TimedTask.cpu_seconds = _TimedTask.words = 0.0
        words_per_step = trainer.global_batch * self.words_per_example

        def train_step_function(*args, **kwargs):
            steps = make_steps(*args, **kwargs)
            calls = [0]

            def timed(*call_args):
                start = _cpu_seconds()
                out = steps(*call_args)
                if calls[0]:
                    _TimedTask.cpu_seconds += _cpu_seconds() - start
                    _TimedTask.words += int(call_args[1]) * words_per_step
                calls[0] += 1
                return out

            return timed

        trainer.train_step_function = train_step_function
        return trainer


def ours(config, seed, workdir):
    config = config.copy_and_resolve_references()
    config.seed = seed
    load = os.getloadavg()[0]
    metrics = execute(_TimedTask, config, workdir, "train")
    out = {k: metrics[k] for k in (*FIGURES, "analogy_coverage", "words_per_sec",
                                   "train_seconds")}
    out["words_per_cpu_sec"] = _TimedTask.words / _TimedTask.cpu_seconds
    out["load"] = (load + os.getloadavg()[0]) / 2
    return out


def gensim(config, corpus, evaluation, seed):
    from gensim.models import Word2Vec

    sentences = corpus.sentences
    w = config.word2vec
    model = Word2Vec(vector_size=config.model.dim, window=w.window, negative=w.negatives,
                     sample=w.sample,
                     min_count=config.data.min_count, sg=int(config.method == "skipgram"),
                     hs=0, workers=2, seed=seed)
    model.build_vocab(sentences)
    words = sum(len(s) for s in sentences) * config.train.epochs
    load, cpu, start = os.getloadavg()[0], _cpu_seconds(), time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=config.train.epochs)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    vectors = WordVectors(model.wv.index_to_key, model.wv.vectors)
    result = {"words_per_sec": words / seconds, "train_seconds": seconds,
              "words_per_cpu_sec": words / cpu, "load": (load + os.getloadavg()[0]) / 2}
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
    evaluation = EmbeddingsTask(config)._load_evaluation()
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
    """Means over the seeds of each side, and the goal's figures."""
    means = {side: {k: statistics.mean(r[k] for r in side_rows) for k in KEYS}
             for side, side_rows in rows.items()}
    a, b = means["ours"], means["gensim"]
    means["speed_ratio"] = a["words_per_sec"] / b["words_per_sec"]
    means["cpu_ratio"] = a["words_per_cpu_sec"] / b["words_per_cpu_sec"]
    means["ws353_difference"] = a["ws353_spearman"] - b["ws353_spearman"]
    means["goal_met"] = bool(means["speed_ratio"] >= 1.0
                             and means["ws353_difference"] >= -QUALITY_MARGIN)
    return means


def describe(config):
    w = config.word2vec
    return (f"{config.method}, Lee corpus, dim {config.model.dim}, window {w.window}, "
            f"{w.negatives} negatives, sample {w.sample:g}, min_count {config.data.min_count}, "
            f"{config.train.epochs} epochs; ours with {config.train.batch_size} chunks of about "
            f"{w.chunk_words} words a step")


def print_table(title, rows):
    means = summary(rows)
    print(f"\n{title}")
    head = f"{'':<22}{'ours':>12}{'gensim':>12}{'ours-gensim':>13}   per seed (ours / gensim)"
    print(head)
    print("-" * len(head))
    for key in KEYS:
        a, b = means["ours"][key], means["gensim"][key]
        seeds = "  ".join(f"{x[key]:.3g}/{y[key]:.3g}"
                          for x, y in zip(rows["ours"], rows["gensim"], strict=True))
        fmt = (".0f" if key.startswith("words_per") else ".1f" if key in ("train_seconds", "load")
               else ".3f")
        print(f"{key:<22}{a:>12{fmt}}{b:>12{fmt}}{a - b:>+13{fmt}}   {seeds}")
    print(f"words/sec ours / gensim: {means['speed_ratio']:.2f}; words per CPU-second ours / "
          f"gensim: {means['cpu_ratio']:.2f}; WordSim-353 ours - gensim: "
          f"{means['ws353_difference']:+.3f} (goal: speed >= 1.0 with WordSim-353 at most "
          f"{QUALITY_MARGIN} below gensim's: {'met' if means['goal_met'] else 'not met'})")
    return means


def main(argv=None):
    result = {"methods": {}, "load_average_start": list(os.getloadavg())}
    for method, variant in VARIANTS.items():
        config = get_config(variant)
        name = f"{describe(config)}, {SEEDS} seeds"
        rows = compare(config)
        means = print_table(f"embeddings: word2vec vs gensim ({name})", rows)
        result["methods"][method] = {"config": name, "mean": means, "per_seed": rows}
    result["load_average_end"] = list(os.getloadavg())
    write_json("embeddings.json", result)
    return result


def write_results(path=None, results=None):
    """Puts the latest run's figures (`results`, default bench/results/embeddings.json,
    which `python -m bench embeddings` writes) into `path` (default bench/RESULTS.md)
    in place of its rows there."""
    import json

    from bench import report

    results = results or os.path.join(os.path.dirname(__file__), "results", "embeddings.json")
    with open(results) as f:
        result = json.load(f)
    entry = {"result": result, "load_average_start": result.get("load_average_start"),
             "load_average_end": result.get("load_average_end")}
    path = path or report.RESULTS_MD
    with open(path) as f:
        text = f.read()
    start = text.index(report.EMBEDDINGS_TITLE)
    end = text.index("\n## ", start)
    block = "\n".join(report._embeddings(entry))
    with open(path, "w") as f:
        f.write(text[:start] + block.rstrip("\n") + "\n" + text[end:])
    return path


if __name__ == "__main__":
    if "--results" in sys.argv[1:]:
        print(f"wrote {write_results()}")
    else:
        main(sys.argv)
