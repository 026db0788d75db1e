"""Word embeddings: word2vec (skip-gram, CBOW) and GloVe, run by the shared trainer.

    python -m apps.embeddings --config=configs/embeddings.py --workdir=runs/embeddings

Each training example of the shared trainer is a chunk of the corpus
(word2vec: about config.word2vec.chunk_words consecutive words, whose pairs
and negatives `data.Word2VecExamples` draws in the tf.data pipeline) or of
the co-occurrence table (GloVe: config.glove.chunk_pairs pairs); the
per-example loss is the chunk's sum over its pairs. The core owns the
loop, checkpoints and resume, TensorBoard, the SavedModel and metrics.json;
this task adds the evaluation's own keys to metrics.json as they are
(ws353_spearman, simlex999_spearman, analogy_accuracy, analogy_coverage, ...:
the evaluation sets are the held-out data, not a test split), the run's
method, vocabulary, corpus size and words_per_sec, and DIR/vectors.txt with
the TensorBoard projector beside the export.

`--mode=predict --input=FILE` runs the exported SavedModel on the words of
FILE; the app's own modes, query and debias, are apps/embeddings/modes.py.
"""

import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core import workdir as workdir_lib
from apps.core.data import Split, cached
from apps.core.errors import UserError
from apps.core.task import Data, Task
from apps.embeddings import cooccurrence as glove_lib
from apps.embeddings import data as data_lib
from apps.embeddings import evaluation as eval_lib
from apps.embeddings import model as model_lib
from apps.embeddings import modes
from apps.embeddings.text import file_lines, tokenize
from apps.embeddings.vectors import WordVectors, write_projector


class EmbeddingsTask(Task):
    # word2vec and GloVe checkpoints differ: a workdir keeps its method.
    workdir_fields = ("model", "method")
    extra_modes = {"query": modes.query, "debias": modes.debias}
    input_modes = ("query",)
    flags = {
        "query": (("query",), "'word' (neighbours), 'a,b' (similarity) or 'a:b::c:?' "
                  "(analogy); several separated by ';'"),
        "vectors": (("query", "debias"), "pretrained vectors (GloVe or word2vec text "
                    "format) to use instead of DIR/vectors.txt"),
    }
    headline_metrics = ("ws353_spearman", "simlex999_spearman")
    unprefixed_metrics = eval_lib.METRICS
    splits_hold_examples = False  # val and test stand in for the evaluation sets
    input_kind = "a text file of words"
    input_unit = "words"
    input_is_files = False

    # ------------------------------------------------------------------ data

    #: the folder of the corpus's arrays on disk (make_trainer: beside the run)
    scratch = None

    def make_trainer(self, workdir):
        # The corpus and GloVe's table go to anonymous files on the disk the
        # user chose for the run (apps.embeddings.ondisk): the workdir, or the
        # folder that will hold it.
        self.scratch = os.path.abspath(workdir)
        while not os.path.isdir(self.scratch):
            self.scratch = os.path.dirname(self.scratch)
        return super().make_trainer(workdir)

    def load_data(self):
        c = self.config
        corpus = data_lib.load_corpus(c, self.scratch)
        self.words = corpus.vocab.words
        self.counts = corpus.vocab.counts
        self.corpus_words = len(corpus.ids)
        self.evaluation = self._load_evaluation()
        batch = c.train.batch_size
        if c.method == "glove":
            started = time.perf_counter()
            g = c.glove
            table = glove_lib.cooccurrence(corpus.ids, corpus.sentence, len(self.words),
                                           g.window, g.block_tokens, g.memory_pairs,
                                           self.scratch)
            logging.info("co-occurrence: %d nonzero X_ij with i <= j counted in %.1f s (%d "
                         "sorted run(s) on disk)", len(table), time.perf_counter() - started,
                         table.runs)
            packed = glove_lib.glove_examples(table, g.chunk_pairs, batch, c.seed, g.x_max,
                                              g.alpha, g.memory_pairs, self.scratch)
            train = Split({k: packed.inputs[k] for k in ("i", "j")},
                          {k: packed.inputs[k] for k in ("log_x", "weight")})
            self.examples = None
        else:
            w = c.word2vec
            train, size = data_lib.chunk_corpus(corpus, w.chunk_words, 2 * w.window, batch)
            slots, miss = data_lib.centre_slots(
                corpus.ids, data_lib.keep_probabilities(self.counts, w.sample), len(train), size)
            logging.info("word2vec: %d chunks of %d words, %d centre slots each after "
                         "subsampling (a word left out with probability <= %.1g an epoch)",
                         len(train), size, slots, miss)
            self.examples = data_lib.Word2VecExamples(
                self.counts, size, 2 * w.window, w.window, w.negatives, w.sample, c.method,
                w.share_negatives, w.negatives_per_block, slots)
        cache = c.data.cache
        if cache == "auto":
            cache = "memory" if c.data.source == "embedded" else "none"
        train = cached(train, cache)
        self.words_per_example = self.corpus_words / len(train)
        # The evaluation sets are the held-out data; these stand for the splits.
        self.val, self.test = Split(np.zeros(1), np.zeros(1)), Split(np.ones(1), np.ones(1))
        return Data(train, self.val, self.test)

    def vocabulary(self):
        return list(self.words)

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
        c = self.config
        per_block = c.method != "glove" and c.word2vec.share_negatives and bool(
            c.word2vec.negatives_per_block)
        model = model_lib.build(c.method, len(self.words), c.model.dim, per_block)
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
        return outputs["loss"]  # the model's own: fused.loss

    def word_vectors(self, model):
        return WordVectors(self.words, model.vectors().numpy())

    # ------------------------------------------------------------ evaluation

    def evaluate(self, model, split):
        """WordSim-353 and SimLex-999 Spearman, analogies (at the end, or every epoch)."""
        vectors = self.word_vectors(model)
        metrics = {}
        for name in eval_lib.SIMILARITY_SETS:
            result = eval_lib.word_similarity(vectors, self.evaluation[name])
            metrics[f"{name}_spearman"] = result["spearman"]
            metrics[f"{name}_coverage"] = result["coverage"]
        if split is not self.val or self.config.eval.each_epoch_analogies:
            metrics.update(eval_lib.analogy(vectors, self.evaluation["analogies"]))
        return metrics, {}

    def run_metrics(self, metrics):
        """The method, the vocabulary and corpus sizes, and the speed in corpus words."""
        speed = metrics.get("examples_per_sec")
        return {"method": self.config.method, "vocab_size": len(self.words),
                "corpus_words": self.corpus_words,
                "words_per_sec": speed * self.words_per_example if speed else None}

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

    def write_beside_export(self, model, workdir):
        """DIR/vectors.txt (word2vec text format, what query and debias read) and
        the TensorBoard projector's files in DIR/tb."""
        vectors = self.word_vectors(model)
        path = vectors.save_word2vec_text(os.path.join(workdir, "vectors.txt"))
        write_projector(vectors, os.path.dirname(workdir_lib.paths(workdir)["tb_train"]),
                        self.config.export.projector_words, self.counts)
        return {"Vectors": path}

    # --------------------------------------------------------------- predict

    def predict_items(self, path):
        """The words of the text file at --input, tokenized as the corpus is."""
        if os.path.isdir(path):
            raise UserError(f"--input={path}: a folder; expected a text file of words")
        if not os.path.isfile(path):
            raise UserError(f"--input={path}: no such file (expected a text file of words)")
        return [w for line in file_lines([path]) for w in tokenize(line)]

    def read_item(self, word):
        return word

    def predict_item(self, saved_model, word, value, output):
        """Prints the word's nearest neighbours; its record for predictions.json."""
        out = saved_model.signatures["serving_default"](words=tf.constant([word]))
        if not out["known"][0]:
            print(f"{word}: not in the vocabulary")
            return {"word": word, "known": False, "neighbors": []}
        neighbors = [(n.decode(), float(s)) for n, s in zip(
            out["neighbors"][0].numpy(), out["similarities"][0].numpy(), strict=True)]
        print(f"{word}: " + ", ".join(f"{n} {s:.3f}" for n, s in neighbors))
        return {"word": word, "known": True,
                "neighbors": [{"word": n, "similarity": s} for n, s in neighbors]}
