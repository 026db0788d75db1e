"""Word embeddings: word2vec (skip-gram, CBOW) and GloVe, run by the shared trainer.

    python -m apps.embeddings --config=configs/embeddings.py --workdir=runs/embeddings

Each training example of the shared trainer is a chunk of the corpus
(word2vec: about config.word2vec.chunk_words consecutive words, whose pairs
and negatives `data.Word2VecExamples` draws in the tf.data pipeline) or of
the co-occurrence table (GloVe: config.glove.chunk_pairs pairs); the
per-example loss is the chunk's sum over its pairs. The trainer owns the
loop, checkpoints and resume, TensorBoard and the SavedModel; this app's
`EmbeddingTrainer` adds the word-vector outputs and writes metrics.json with
the evaluation's own keys (ws353_spearman, simlex999_spearman,
analogy_accuracy, analogy_coverage, words_per_sec, train_seconds).

The app takes over the shared modes (train, eval, export) for that, and adds:

    --mode=query  --query="king"                nearest neighbours (cosine)
                  --query="king,queen"          cosine similarity of two words
                  --query="man:woman::king:?"   analogy by 3CosAdd
                  (several queries separated by ";", or one per line of --input=FILE)
    --mode=debias                               bias direction, neutralize and
                                                equalize (config.debias); writes
                                                DIR/debiased/vectors.txt and report.json

Both read DIR/vectors.txt, or pretrained vectors in GloVe or word2vec text
format given by --vectors=FILE. `--mode=predict --input=FILE` runs the
exported SavedModel on the words of FILE.
"""

import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import flags, logging

from apps.core import workdir as workdir_lib
from apps.core.config import (
    Rule,
    boolean,
    int_in,
    non_negative_int,
    one_of,
    positive_float,
    positive_int,
    probability,
)
from apps.core.data import Split
from apps.core.errors import UserError
from apps.core.task import Data, Task
from apps.core.trainer import Trainer
from apps.embeddings import data as data_lib
from apps.embeddings import debias as debias_lib
from apps.embeddings import evaluation as eval_lib
from apps.embeddings import model as model_lib
from apps.embeddings.text import file_lines, tokenize
from apps.embeddings.vectors import OutOfVocabulary, WordVectors


def _define(name, help_text):
    """A string flag, unless another app imported in this process already defined it."""
    if name not in flags.FLAGS:
        flags.DEFINE_string(name, None, help_text)
    return name


_QUERY = _define("query", "embeddings --mode=query: 'word' (neighbours), 'a,b' (similarity) "
                 "or 'a:b::c:?' (analogy); several separated by ';'.")
_VECTORS = _define("vectors", "embeddings --mode=query/debias: pretrained vectors (GloVe or "
                   "word2vec text format) to use instead of DIR/vectors.txt.")


def _pairs_rule(field):
    def test(text):
        try:
            return bool(debias_lib.parse_pairs(text, field))
        except (UserError, AttributeError):
            return False

    return Rule(test, "comma-separated pairs 'word:word' (at least one)")


class EmbeddingsTask(Task):
    # word2vec and GloVe checkpoints differ: a workdir keeps its method.
    workdir_fields = ("model", "method")
    rules = {
        "method": one_of(*model_lib.METHODS),
        "xla": Rule(lambda v: v is False, "false (the sparse embedding steps run as they "
                    "are; the speed is in the input pipeline)"),
        "mixed_precision": Rule(lambda v: v is False, "false (embeddings train in float32)"),
        "data.source": one_of("embedded", "text", "tfds"),
        "data.min_count": positive_int,
        "data.max_vocab": non_negative_int,
        "data.keep_punctuation": boolean,
        "data.max_sentence_words": positive_int,
        "data.max_words": non_negative_int,
        "model.dim": positive_int,
        "word2vec.window": int_in(1, 50),
        "word2vec.negatives": int_in(1, 100),
        "word2vec.sample": probability,
        "word2vec.chunk_words": positive_int,
        "word2vec.share_negatives": boolean,
        "glove.window": int_in(1, 100),
        "glove.x_max": positive_float,
        "glove.alpha": positive_float,
        "glove.chunk_pairs": positive_int,
        "glove.block_tokens": positive_int,
        "glove.buffer_pairs": positive_int,
        "glove.max_pairs": positive_int,
        "eval.each_epoch_analogies": boolean,
        "export.top_k": int_in(1, 1000),
        "export.projector_words": non_negative_int,
        "debias.method": one_of("pca", "difference"),
        "debias.definitional": _pairs_rule("config.debias.definitional"),
        "debias.equalize": _pairs_rule("config.debias.equalize"),
    }
    extra_modes = ("train", "eval", "export", "query", "debias")

    # ------------------------------------------------------------------ data

    def load_data(self):
        c = self.config
        corpus = data_lib.load_corpus(c)
        self.words = corpus.vocab.words
        self.counts = corpus.vocab.counts
        self.corpus_words = len(corpus.ids)
        self.evaluation = self._load_evaluation()
        batch = c.train.batch_size
        if c.method == "glove":
            started = time.perf_counter()
            g = c.glove
            rows, cols, values = data_lib.cooccurrence(
                corpus.ids, corpus.sentence, len(self.words), g.window, g.block_tokens,
                g.buffer_pairs, g.max_pairs)
            logging.info("co-occurrence: %d nonzero X_ij counted in %.1f s", len(values),
                         time.perf_counter() - started)
            packed = data_lib.glove_examples(rows, cols, values, g.chunk_pairs, batch,
                                             c.seed, g.x_max, g.alpha)
            train = Split({k: packed.inputs[k] for k in ("i", "j")},
                          {k: packed.inputs[k] for k in ("log_x", "weight")})
            self.examples = None
        else:
            w = c.word2vec
            train, size = data_lib.chunk_corpus(corpus, w.chunk_words, 2 * w.window, batch)
            self.examples = data_lib.Word2VecExamples(
                self.counts, size, 2 * w.window, w.window, w.negatives, w.sample, c.method,
                w.share_negatives)
        self.words_per_example = self.corpus_words / len(train)
        # The evaluation sets are the held-out data; these stand for the splits.
        self.val, self.test = Split(np.zeros(1), np.zeros(1)), Split(np.ones(1), np.ones(1))
        return Data(train, self.val, self.test)

    def _load_evaluation(self):
        e = self.config.eval

        def path(field, embedded):
            given = e[field]
            if given and not os.path.isfile(given):
                raise UserError(f"config.eval.{field} = {given!r}: no such file")
            return given or data_lib.gensim_test_data(embedded)

        return {
            "ws353": eval_lib.load_word_pairs(path("ws353", "wordsim353.tsv"), "ws353"),
            "simlex999": eval_lib.load_word_pairs(path("simlex999", "simlex999.txt"),
                                                  "simlex999"),
            "analogies": eval_lib.load_analogies(path("analogies", "questions-words.txt")),
        }

    def train_example(self, inputs, targets, seed):
        if self.examples is None:
            return inputs, targets
        return self.examples(inputs, targets, seed)

    # ----------------------------------------------------------------- model

    def build_model(self):
        model = model_lib.build(self.config.method, len(self.words), self.config.model.dim)
        model.built = True
        return model

    def make_optimizer(self, steps_per_epoch, total_steps, clip=False):
        """config.optimizer; AdaGrad as `sparse.SparseAdaGrad` (the same formula, row by row)."""
        c = self.config.optimizer
        if c.name != "adagrad":
            return super().make_optimizer(steps_per_epoch, total_steps, clip)
        from apps.core.optim import make_schedule
        from apps.embeddings.sparse import SparseAdaGrad

        return SparseAdaGrad(make_schedule(c, steps_per_epoch, total_steps),
                             global_clipnorm=(c.clipnorm or None) if clip else None)

    def per_example_loss(self, targets, outputs):
        if self.config.method == "glove":
            return model_lib.glove_loss(outputs, targets["log_x"], targets["weight"])
        return model_lib.negative_sampling_loss(outputs, tf.shape(targets)[0])

    def word_vectors(self, model):
        return WordVectors(self.words, model.vectors().numpy())

    # ------------------------------------------------------------ evaluation

    def evaluate(self, model, split):
        """WordSim-353 and SimLex-999 Spearman, analogies (at the end, or every epoch)."""
        vectors = self.word_vectors(model)
        metrics = {}
        for name in ("ws353", "simlex999"):
            result = eval_lib.word_similarity(vectors, self.evaluation[name])
            metrics[f"{name}_spearman"] = result["spearman"]
            metrics[f"{name}_coverage"] = result["coverage"]
        if split is not self.val or self.config.eval.each_epoch_analogies:
            metrics.update(eval_lib.analogy(vectors, self.evaluation["analogies"]))
        return metrics, {}

    # ---------------------------------------------------------------- export

    def export_endpoints(self, model):
        vocab = tf.constant(self.words)
        # An attribute of the model, so the export archive tracks the table.
        model.vocabulary_table = lookup = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(vocab, tf.range(len(self.words), dtype=tf.int64)),
            default_value=-1)
        k = min(self.config.export.top_k, len(self.words) - 1)
        size = len(self.words)

        def serve(words):
            """Strings (batch,) -> their vectors (zeros and known=False for unknown words)."""
            normalised = tf.strings.lower(tf.strings.strip(words), encoding="utf-8")
            ids = lookup.lookup(normalised)  # -1: not in the vocabulary
            known = ids >= 0
            safe = tf.maximum(ids, 0)
            table = model.vectors()
            unit = tf.math.l2_normalize(table, -1)
            vectors = tf.where(known[:, None], tf.gather(table, safe), 0.0)
            scores = tf.matmul(tf.gather(unit, safe), unit, transpose_b=True)
            scores -= 3.0 * tf.one_hot(safe, size)  # never the word itself
            top = tf.math.top_k(scores, k=k)
            return {
                "vector": vectors,
                "known": known,
                "index": ids,
                "neighbors": tf.where(known[:, None], tf.gather(vocab, top.indices), ""),
                "similarities": tf.where(known[:, None], top.values, 0.0),
            }

        signature = [tf.TensorSpec([None], tf.string, name="words")]
        return {"serving_default": (serve, signature)}

    def write_vectors(self, model, workdir):
        """DIR/vectors.txt (word2vec text format) and the TensorBoard projector files."""
        vectors = self.word_vectors(model)
        path = vectors.save_word2vec_text(os.path.join(workdir, "vectors.txt"))
        write_projector(vectors, os.path.dirname(workdir_lib.paths(workdir)["tb_train"]),
                        self.config.export.projector_words, self.counts)
        return path

    # --------------------------------------------------------------- predict

    def predict(self, serving, path):
        if not os.path.isfile(path):
            raise UserError(f"--input={path}: a folder; expected a text file of words")
        words = [w for line in file_lines([path]) for w in tokenize(line)]
        if not words:
            raise UserError(f"--input={path}: no words in the file")
        out = serving(words=tf.constant(words))
        for i, word in enumerate(words):
            if not out["known"][i]:
                print(f"{word}: not in the vocabulary")
                continue
            near = ", ".join(f"{n.decode()} {s:.3f}" for n, s in zip(
                out["neighbors"][i].numpy(), out["similarities"][i].numpy(), strict=True))
            print(f"{word}: {near}")

    # ------------------------------------------------------------ the modes

    def run_mode(self, mode, workdir, input_path):
        if mode in ("train", "eval", "export"):
            trainer = EmbeddingTrainer(self, workdir)
            workdir_lib.keep_vocabulary(workdir, list(self.words),
                                        save=mode == "train" and trainer.chief)
            if mode == "train":
                metrics = trainer.train()
                if trainer.chief:
                    paths = trainer.paths
                    print(f"TensorBoard: tensorboard --logdir {os.path.dirname(paths['tb_train'])}")
                    print(f"Metrics:     {paths['metrics']}")
                    print(f"SavedModel:  {paths['export']}")
                    print(f"Vectors:     {os.path.join(workdir, 'vectors.txt')}")
                return metrics
            if mode == "eval":
                return trainer.evaluate()
            trainer.restore(required=True)
            print(f"SavedModel: {trainer.export()}")
            return None
        if mode == "query":
            queries = _queries(input_path)  # the user's input first, then the vectors
            return run_queries(load_vectors(workdir), queries, self.config.export.top_k)
        return run_debias(load_vectors(workdir), self.config.debias, workdir)


class EmbeddingTrainer(Trainer):
    """The shared trainer, writing the embeddings' metrics and word-vector files."""

    def restore(self, required=False):
        try:
            return super().restore(required)
        except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
            raise UserError(
                f"{self.paths['ckpt']} does not fit this config's vocabulary or method "
                f"(config.data, config.method): {str(e).splitlines()[0][:200]}; choose "
                "another --workdir") from None

    def finish(self, examples_per_sec=None):
        metrics, _ = self.task.evaluate(self.model, self.data.test)
        previous = workdir_lib.read_metrics(self.workdir) or {}
        if examples_per_sec is None:
            examples_per_sec = previous.get("examples_per_sec")
        metrics.update({
            "method": self.config.method,
            "vocab_size": len(self.task.words),
            "corpus_words": self.task.corpus_words,
            "examples_per_sec": examples_per_sec,
            "words_per_sec": (examples_per_sec * self.task.words_per_example
                              if examples_per_sec else None),
            "train_seconds": float(self.seconds.numpy()),
            "steps": int(self.step.numpy()),
        })
        if self.chief:
            self._write_eval(self._writers()["eval"], int(self.step.numpy()), metrics, {},
                             prefix="test_")
            self.export()
            workdir_lib.write_metrics(self.workdir, metrics)
            logging.info("metrics: %s", json.dumps(metrics, sort_keys=True))
        return metrics

    def evaluate(self):
        self.restore(required=True)
        return self.task.evaluate(self.model, self.data.test)[0]

    def export(self):
        path = super().export()
        if self.chief:
            self.task.write_vectors(self.model, self.workdir)
        return path


def write_projector(vectors, logdir, max_words, counts=None):
    """vectors.tsv, metadata.tsv and projector_config.pbtxt in `logdir` (the most frequent words)."""
    from tensorboard.plugins import projector

    os.makedirs(logdir, exist_ok=True)
    n = min(len(vectors), max_words) if max_words else len(vectors)
    np.savetxt(os.path.join(logdir, "vectors.tsv"), vectors.matrix[:n], delimiter="\t",
               fmt="%.5g")
    with open(os.path.join(logdir, "metadata.tsv"), "w", encoding="utf-8") as f:
        f.write("word\tcount\n")
        for i in range(n):
            f.write(f"{vectors.words[i]}\t{int(counts[i]) if counts is not None else ''}\n")
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "word_vectors"
    embedding.tensor_path = "vectors.tsv"
    embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(logdir, config)


# ------------------------------------------------------------ query, debias


def load_vectors(workdir):
    path = flags.FLAGS[_VECTORS].value
    if path:
        vectors = WordVectors.load(path)
        logging.info("loaded %d vectors of dimension %d from %s", len(vectors), vectors.dim,
                     path)
        return vectors
    path = os.path.join(workdir, "vectors.txt")
    if not os.path.exists(path):
        raise UserError(f"no vectors in {workdir} (train first), or give pretrained ones "
                        "with --vectors=FILE")
    return WordVectors.load(path)


def _queries(input_path):
    text = flags.FLAGS[_QUERY].value
    if input_path:
        if not os.path.isfile(input_path):
            raise UserError(f"--input={input_path}: no such file (expected one query per line)")
        text = ";".join(line.strip() for line in file_lines([input_path]) if line.strip())
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
    failed = []
    for query in queries:
        try:
            kind, result = answer(vectors, query, k)
        except OutOfVocabulary as e:
            print(f"{query}: {e}")
            failed.append(str(e))
            continue
        if kind == "similarity":
            print(f"{query}: cosine similarity {result:.4f}")
        else:
            shown = ", ".join(f"{w} {s:.3f}" for w, s in result)
            print(f"{query}: {shown}")
    if len(failed) == len(queries):
        raise UserError(failed[-1])
    return None


def run_debias(vectors, config, workdir):
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

