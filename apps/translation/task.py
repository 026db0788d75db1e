"""Sequence-to-sequence translation: the task the shared trainer runs.

Training is teacher forcing: the model reads the source and the target
shifted right ([START] y_1 .. y_{T-1}) and is trained to predict y_1 .. y_T
([END] last) with the cross-entropy of each real target token (padding
masked), optionally label-smoothed:

    loss(example) = (1 / T_y) sum_{t <= T_y} CE(q_t, softmax(logits_t)),
    q_t = (1 - eps) onehot(y_t) + eps / V

Evaluation decodes the held-out sources with beam search (config.decode) and
reports exact match (the whole translation right), BLEU (sacrebleu, with
keras-hub's `Bleu` beside it as a cross-check), token accuracy (teacher
forced, the argmax at each real target position), the per-token negative
log-likelihood, and the course's error analysis: for each wrong
translation y_hat of a reference y*, the search is to blame when the model
prefers the reference, score(y*) > score(y_hat) (both by the objective the
search maximises, the length-normalised log-probability), and the model
otherwise; `search_error_share` is the search's share of the errors.

The SavedModel's `serving_default` takes a batch of strings and returns the
translations (beam search inside), their scores, and all B beams; `greedy`
decodes greedily.
"""

import os
import weakref

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core import images as images_lib
from apps.core import workdir as workdir_lib
from apps.core.config import (
    Rule,
    boolean,
    fractions_summing_to_one,
    int_in,
    non_negative_int,
    one_of,
    positive_int,
)
from apps.core.errors import UserError
from apps.core.task import Task
from apps.core.text import utf8_lines
from apps.translation import bleu as bleu_lib
from apps.translation import data as data_lib
from apps.translation import decode as decode_lib
from apps.translation import model as model_lib
from apps.translation.vocab import BOS, EOS, normalize

#: metrics written without the test_ prefix
UNPREFIXED = ("search_error_share",)

_fraction = Rule(lambda v: 0 <= v < 1, "a number in [0, 1)")


class TranslationTask(Task):
    rules = {
        "data.source": one_of("dates", "tsv", "tfds"),
        "data.reverse": boolean,
        "data.split": fractions_summing_to_one,
        "data.max_examples": non_negative_int,
        "data.tokenizer": one_of("char", "wordpiece"),
        "data.vocab_size": int_in(8, 1_000_000),
        "data.lowercase": boolean,
        "data.max_source_length": int_in(1, 4096),
        "data.max_target_length": int_in(2, 4096),
        "data.dates.train": positive_int,
        "data.dates.val": positive_int,
        "data.dates.test": positive_int,
        "model.name": one_of(*model_lib.NAMES),
        "model.dropout": _fraction,
        "model.label_smoothing": _fraction,
        "model.rnn": one_of("lstm", "gru"),
        "model.embedding_dim": int_in(1, 8192),
        "model.encoder_units": int_in(1, 8192),
        "model.decoder_units": int_in(1, 8192),
        "model.attention_units": int_in(1, 8192),
        "model.d_model": int_in(2, 8192),
        "model.num_heads": int_in(1, 256),
        "model.ff_dim": int_in(1, 65536),
        "model.num_layers": int_in(1, 64),
        "decode.beam_size": int_in(1, 64),
        "decode.alpha": Rule(lambda v: 0 <= v <= 2, "a number in [0, 2]"),
        "decode.max_length": int_in(0, 4096),
        "eval.batch_size": positive_int,
        "eval.bleu_tokenize": one_of(*bleu_lib.TOKENIZERS),
        "eval.attention_maps": int_in(0, 32),
        "eval.shown_errors": non_negative_int,
    }
    # All of the modes go through run_mode, so every one checks the vocabularies.
    extra_modes = ("train", "eval", "predict", "export", "error_analysis")

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        if m.name == "transformer" and m.d_model % m.num_heads:
            raise UserError(f"config.model.d_model = {m.d_model} must be a multiple of "
                            f"config.model.num_heads = {m.num_heads}")
        self._functions = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ data

    def load_data(self):
        data, self.source_vocab, self.target_vocab, self.report = data_lib.load(self.config)
        logging.info("data: %d train, %d val, %d test pairs; vocabularies %d source, %d "
                     "target (%s)", len(data.train), len(data.val), len(data.test),
                     len(self.source_vocab), len(self.target_vocab),
                     self.config.data.tokenizer)
        self.data = data
        return data

    @property
    def max_length(self):
        return self.config.decode.max_length or self.config.data.max_target_length

    def build_model(self):
        return model_lib.build(self.config, len(self.source_vocab), len(self.target_vocab))

    def per_example_loss(self, targets, logits):
        return sequence_loss(targets, logits, self.config.model.label_smoothing)

    # ------------------------------------------------------------ decoding

    def _cached(self, model, key, make):
        fns = self._functions.setdefault(model, {})
        if key not in fns:
            fns[key] = make()
        return fns[key]

    def decode_ids(self, model, source_ids, beam_size=None):
        """Beam search (greedy when beam_size = 1) on id arrays, in batches (NumPy out)."""
        k = beam_size or self.config.decode.beam_size

        def make():
            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
            def run(src):
                return translate_ids(model, src, k, self.max_length, self.config.decode.alpha)
            return run

        run = self._cached(model, ("decode", k), make)
        outs = [run(tf.constant(source_ids[i:i + self.config.eval.batch_size]))
                for i in range(0, len(source_ids), self.config.eval.batch_size)]
        return {key: np.concatenate([o[key].numpy() for o in outs]) for key in outs[0]}

    def score_ids(self, model, inputs, targets):
        """Teacher-forced (log P, T_y, correct tokens) of the given translations."""
        def make():
            spec = tf.TensorSpec([None, None], tf.int32)

            @tf.function(input_signature=[spec, spec, spec])
            def run(src, dec, tgt):
                return decode_lib.score_targets(model((src, dec), training=False), tgt)
            return run

        run = self._cached(model, "score", make)
        b = self.config.eval.batch_size
        src, dec = inputs
        outs = [run(tf.constant(src[i:i + b]), tf.constant(dec[i:i + b]),
                    tf.constant(targets[i:i + b])) for i in range(0, len(src), b)]
        return tuple(np.concatenate([o[j].numpy() for o in outs]) for j in range(3))

    # ------------------------------------------------------------ evaluation

    def analyse(self, model, split):
        """Everything evaluation and error analysis need, per example."""
        src, dec = split.inputs
        out = self.decode_ids(model, src)
        best = out["tokens"][:, 0]
        hyps = _strings(self.target_vocab.tf_decode(tf.constant(best)))
        refs = _strings(self.target_vocab.tf_decode(tf.constant(split.targets)))
        log_prob, length, correct = self.score_ids(model, split.inputs, split.targets)
        alpha = self.config.decode.alpha
        ref_score = decode_lib.length_normalized(log_prob, length, alpha).numpy()
        return {"hyps": hyps, "refs": refs, "hyp_tokens": best,
                "hyp_score": out["score"][:, 0], "ref_score": ref_score,
                "ref_log_prob": log_prob, "ref_length": length, "correct": correct}

    def evaluate(self, model, split):
        a = self.analyse(model, split)
        wrong, search = blame(a["hyps"], a["refs"], a["hyp_score"], a["ref_score"])
        tokenizer = self.config.eval.bleu_tokenize
        metrics = {
            "exact_match": float(1 - wrong.mean()),
            "bleu": bleu_lib.sacrebleu_score(a["hyps"], a["refs"], tokenizer),
            "bleu_keras_hub": bleu_lib.keras_hub_score(a["hyps"], a["refs"]),
            "token_accuracy": float(a["correct"].sum() / max(1, a["ref_length"].sum())),
            "nll_per_token": float(-a["ref_log_prob"].sum() / max(1, a["ref_length"].sum())),
            "errors": int(wrong.sum()),
            "search_errors": int(search.sum()),
            "search_error_share": float(search.sum() / wrong.sum()) if wrong.any() else 0.0,
        }
        images = {}
        shown = min(self.config.eval.attention_maps, len(split))
        if shown:
            images["attention"] = self.attention_maps(model, split.inputs[0][:shown],
                                                      a["hyp_tokens"][:shown])
        return metrics, images

    def attention_maps(self, model, source_ids, output_tokens):
        """Heat maps (input tokens x output tokens) of the attention weights, uint8."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        dec = np.concatenate([np.full((len(output_tokens), 1), BOS, np.int32),
                              output_tokens[:, :-1]], axis=1)
        _, attention = model.decode(model.encode(tf.constant(source_ids)), tf.constant(dec),
                                    return_attention=True)
        attention = attention.numpy()
        pictures = []
        for i, (src, out) in enumerate(zip(source_ids, output_tokens, strict=True)):
            src_tokens = [self.source_vocab.tokens[t] for t in src if t]
            out_tokens = []
            for t in out:
                out_tokens.append(self.target_vocab.tokens[t])
                if t == EOS:
                    break
            weights = attention[i, :len(out_tokens), :len(src_tokens)]
            figure, axes = plt.subplots(figsize=(8, 4), dpi=80)
            axes.imshow(weights, cmap="viridis", aspect="auto", vmin=0, vmax=1)
            axes.set_xticks(range(len(src_tokens)), [_label(t) for t in src_tokens],
                            rotation=90 if len(src_tokens) > 12 else 0, fontsize=8)
            axes.set_yticks(range(len(out_tokens)), [_label(t) for t in out_tokens],
                            fontsize=8)
            axes.set_xlabel("input")
            axes.set_ylabel("output")
            figure.tight_layout()
            pictures.append(images_lib.figure_to_image(figure)[0])
        return np.stack(pictures)

    # ---------------------------------------------------------------- export

    def export_endpoints(self, model):
        c = self.config
        text = [tf.TensorSpec([None], tf.string, name="text")]

        def serve(text):
            """A batch of sentences -> translations (beam search) and their scores."""
            return self.translate_strings(model, text, c.decode.beam_size)

        def serve_greedy(text):
            """A batch of sentences -> greedy translations and their scores."""
            return self.translate_strings(model, text, 1)

        return {"serving_default": (serve, text), "greedy": (serve_greedy, text)}

    def translate_strings(self, model, text, beam_size):
        c = self.config
        src = self.source_vocab.tf_encode(normalize(text, c.data.lowercase),
                                          c.data.max_source_length)
        src = tf.pad(src, [[0, 0], [0, 1]])  # never empty; padding is masked
        out = translate_ids(model, src, beam_size, self.max_length, c.decode.alpha)
        batch, k = tf.shape(out["tokens"])[0], tf.shape(out["tokens"])[1]
        flat = tf.reshape(out["tokens"], [batch * k, -1])
        beams = tf.reshape(self.target_vocab.tf_decode(flat), [batch, k])
        return {"translation": beams[:, 0], "score": out["score"][:, 0],
                "log_prob": out["log_prob"][:, 0], "beams": beams,
                "beam_scores": out["score"]}

    # ------------------------------------------------------------ the modes

    def run_mode(self, mode, workdir, input_path):
        if mode in ("train", "eval"):
            return self._train_or_eval(mode, workdir)
        if mode == "predict":
            lines = read_sentences(input_path)  # the user's input first, then the model
            return self.print_translations(_load_serving(workdir), lines)
        if mode == "export":
            trainer = self.trainer(workdir, mode)
            trainer.restore(required=True)
            print(f"SavedModel: {trainer.export()}")
            return None
        return self.error_analysis(workdir)

    def trainer(self, workdir, mode):
        """The shared trainer, once the vocabularies are checked against the workdir's."""
        from apps.core.trainer import Trainer

        trainer = Trainer(self, workdir)
        vocabularies = {"source": list(self.source_vocab.tokens),
                        "target": list(self.target_vocab.tokens)}
        workdir_lib.keep_vocabulary(workdir, vocabularies, save=mode == "train" and trainer.chief)
        return trainer

    def _train_or_eval(self, mode, workdir):
        trainer = self.trainer(workdir, mode)
        if mode == "eval":
            return rename_metrics(trainer.evaluate())
        metrics = rename_metrics(trainer.train())
        if trainer.chief:
            if workdir_lib.read_metrics(workdir) != metrics:
                workdir_lib.write_metrics(workdir, metrics)
            paths = trainer.paths
            print(f"TensorBoard: tensorboard --logdir {os.path.dirname(paths['tb_train'])}")
            print(f"Metrics:     {paths['metrics']}")
            print(f"SavedModel:  {paths['export']}")
        return metrics

    def print_translations(self, serving, lines):
        """Prints "source -> translation (score)" for each line, in batches of 64."""
        for i in range(0, len(lines), 64):
            batch = lines[i:i + 64]
            out = serving(text=tf.constant(batch))
            for line, translation, score in zip(batch, _strings(out["translation"]),
                                                out["score"].numpy(), strict=True):
                print(f"{line}\t->\t{translation}\t(score {score:.4f})")
        return None

    def error_analysis(self, workdir):
        """--mode=error_analysis: search or model to blame for each wrong test translation."""
        trainer = self.trainer(workdir, "error_analysis")
        trainer.restore(required=True)
        a = self.analyse(trainer.model, self.data.test)
        wrong_mask, search_mask = blame(a["hyps"], a["refs"], a["hyp_score"], a["ref_score"])
        wrong, search = np.flatnonzero(wrong_mask), set(np.flatnonzero(search_mask))
        sources = _strings(self.source_vocab.tf_decode(tf.constant(self.data.test.inputs[0])))
        k, alpha = self.config.decode.beam_size, self.config.decode.alpha
        print(f"Error analysis of {len(a['hyps'])} test translations (beam {k}, "
              f"alpha {alpha}): {len(wrong)} wrong")
        print("score = (1 / T_y^alpha) sum log P(y_t | x, y_<t); search error when "
              "score(y*) > score(y_hat)")
        for i in wrong[:self.config.eval.shown_errors]:
            fault = "search" if i in search else "model"
            print(f"  {sources[i]!r}: y_hat={a['hyps'][i]!r} ({a['hyp_score'][i]:.4f}) "
                  f"y*={a['refs'][i]!r} ({a['ref_score'][i]:.4f}) -> {fault}")
        share = len(search) / len(wrong) if len(wrong) else 0.0
        print(f"search errors: {len(search)}, model errors: {len(wrong) - len(search)}, "
              f"search share {share:.3f}")
        return {"test_examples": len(a["hyps"]), "errors": len(wrong),
                "search_errors": len(search), "model_errors": len(wrong) - len(search),
                "search_error_share": share}


def blame(hyps, refs, hyp_scores, ref_scores):
    """The course's beam-search error analysis, per example.

    A translation is wrong when it differs from its reference. A wrong one is
    the search's fault when the model scores the reference higher than what
    the search returned, score(y*) > score(y_hat) (the search missed a better
    sequence), and the model's fault otherwise (score(y*) <= score(y_hat): the
    model prefers the wrong translation). Returns (wrong, search_error) masks.
    """
    wrong = np.array([h != r for h, r in zip(hyps, refs, strict=True)], bool)
    return wrong, wrong & (np.asarray(ref_scores) > np.asarray(hyp_scores))


def sequence_loss(targets, logits, label_smoothing=0.0):
    """Per-example mean cross-entropy over the real (non-padding) target tokens."""
    logits = tf.cast(logits, tf.float32)
    targets = tf.cast(targets, tf.int32)
    real = tf.cast(tf.not_equal(targets, 0), tf.float32)
    if label_smoothing:
        vocab = tf.shape(logits)[-1]
        q = tf.one_hot(targets, vocab) * (1 - label_smoothing) + label_smoothing / tf.cast(
            vocab, tf.float32)
        ce = tf.nn.softmax_cross_entropy_with_logits(q, logits)
    else:
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
    return tf.reduce_sum(ce * real, -1) / tf.maximum(tf.reduce_sum(real, -1), 1.0)


def translate_ids(model, source_ids, beam_size, max_length, alpha):
    """Encodes a batch of source ids and beam-searches (B = 1: greedily) in-graph."""
    memory = model.encode(source_ids, training=False)
    batch = tf.shape(source_ids)[0]
    if beam_size == 1:
        out = decode_lib.greedy(decode_lib.model_step_fn(model, memory),
                                model.initial_state(memory), batch, max_length, alpha)
        return tf.nest.map_structure(lambda x: x[:, None], out)
    memory = decode_lib.tile_beams(memory, beam_size)
    return decode_lib.beam_search(decode_lib.model_step_fn(model, memory),
                                  model.initial_state(memory), batch, beam_size, max_length,
                                  alpha)


def rename_metrics(metrics):
    out = dict(metrics)
    for key in UNPREFIXED:
        if f"test_{key}" in out:
            out[key] = out.pop(f"test_{key}")
    return out


def _strings(tensor):
    return [s.decode("utf-8") for s in np.asarray(tensor).reshape(-1)]


def _label(token):
    return {" ": "␣", "[END]": "<end>", "[UNK]": "<unk>"}.get(token, token)


#: --input values ending so are file names, never sentences
TEXT_SUFFIXES = (".txt", ".text", ".tsv", ".csv")


def read_sentences(value):
    """--input: a UTF-8 text file (one sentence per line) or the sentence itself.

    A value that names a folder, or looks like a file name (a text-file
    suffix, or a path whose folder exists: "runs/dates.txt", not "3/5/79")
    but is no file, is a UserError rather than a sentence to translate.
    """
    if not value:
        raise UserError('--mode=predict needs --input="a sentence" or --input=FILE '
                        "(one sentence per line)")
    if os.path.isdir(value):
        raise UserError(f"--input={value}: a folder; expected a sentence or a text file "
                        "(one sentence per line)")
    if not os.path.isfile(value):
        folder = os.path.dirname(value)
        if value.lower().endswith(TEXT_SUFFIXES) or (folder and os.path.isdir(folder)):
            raise UserError(f"--input={value}: no such file (expected a sentence to translate "
                            "or a text file, one sentence per line)")
        return [value]
    lines = [line.rstrip("\r\n") for _, line in utf8_lines(value, "one sentence per line")
             if line.strip()]
    if not lines:
        raise UserError(f"--input={value}: no sentences in the file (expected one per line)")
    return lines


def _load_serving(workdir):
    export = os.path.join(workdir, "export")
    if not os.path.exists(os.path.join(export, "saved_model.pb")):
        raise UserError(f"no SavedModel in {export}; train or --mode=export first")
    return tf.saved_model.load(export).signatures["serving_default"]
