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
otherwise; `search_error_share` is the search's share of the errors
(apps/translation/modes.py's --mode=error_analysis prints them one by one).
A split is read and analysed batch by batch and the figures summed as they
go (BLEU from its corpus counts), so a split streamed from files is never
held whole.

The SavedModel's `serving_default` takes a batch of strings and returns the
translations (beam search inside), their scores, and all B beams; `greedy`
decodes greedily. --mode=predict translates a sentence, or each line of a file.
"""

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core import images as images_lib
from apps.core.data import eval_batches
from apps.core.inference import compiled
from apps.core.task import Task
from apps.translation import bleu as bleu_lib
from apps.translation import data as data_lib
from apps.translation import decode as decode_lib
from apps.translation import model as model_lib
from apps.translation import modes
from apps.translation.vocab import BOS, EOS, normalize


class TranslationTask(Task):
    extra_modes = {"error_analysis": modes.error_analysis}
    headline_metrics = ("exact_match", "bleu", "token_accuracy")
    # The search's share of the errors describes the model (and its search),
    # as in the course's analysis; the counts beside it are test_ figures.
    unprefixed_metrics = ("search_error_share",)
    input_kind = "a sentence or a text file, one sentence per line"
    input_unit = "sentences"
    input_is_files = False

    # ------------------------------------------------------------------ data

    def load_data(self):
        data, self.source_vocab, self.target_vocab, self.report = data_lib.load(self.config)
        logging.info("data: %d train, %d val, %d test pairs; vocabularies %d source, %d "
                     "target (%s)", len(data.train), len(data.val), len(data.test),
                     len(self.source_vocab), len(self.target_vocab),
                     self.config.data.tokenizer)
        return data

    def vocabulary(self):
        return {"source": list(self.source_vocab.tokens),
                "target": list(self.target_vocab.tokens)}

    @property
    def max_length(self):
        return self.config.decode.max_length or self.config.data.max_target_length

    def build_model(self):
        return model_lib.build(self.config, len(self.source_vocab), len(self.target_vocab))

    def per_example_loss(self, targets, logits):
        return model_lib.sequence_loss(targets, logits, self.config.model.label_smoothing)

    # ------------------------------------------------------------ decoding

    def decoder(self, model):
        """(B, S) source ids -> beam search's outputs (greedy for beam_size 1), compiled once."""
        d = self.config.decode

        def make():
            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], autograph=False)
            def run(src):
                return decode_lib.translate_ids(model, src, d.beam_size, self.max_length,
                                                d.alpha)
            return run

        return compiled(model, "translation_decode", make)

    def scorer(self, model):
        """(src, dec, tgt) -> teacher-forced (log P, T_y, correct tokens) of the targets."""
        def make():
            spec = tf.TensorSpec([None, None], tf.int32)

            @tf.function(input_signature=[spec, spec, spec], autograph=False)
            def run(src, dec, tgt):
                return decode_lib.score_targets(model((src, dec), training=False), tgt)
            return run

        return compiled(model, "translation_score", make)

    # ------------------------------------------------------------ evaluation

    def analysed_batches(self, model, split):
        """Everything evaluation and error analysis need, per example, for each
        batch of config.eval.batch_size examples of `split` in order (read as the
        batches go: a split streamed from files is never held whole)."""
        decode, score = self.decoder(model), self.scorer(model)
        alpha = self.config.decode.alpha
        for (src, dec), tgt in eval_batches(split, self.config.eval.batch_size):
            out = decode(src)
            best = out["tokens"][:, 0]
            hyps = _strings(self.target_vocab.tf_decode(best))
            refs = _strings(self.target_vocab.tf_decode(tgt))
            log_prob, length, correct = (v.numpy() for v in score(src, dec, tgt))
            hyp_score = out["score"][:, 0].numpy()
            ref_score = decode_lib.length_normalized(log_prob, length, alpha).numpy()
            wrong, search = decode_lib.blame(hyps, refs, hyp_score, ref_score)
            yield {"source_ids": src.numpy(), "hyps": hyps, "refs": refs,
                   "hyp_tokens": best.numpy(), "hyp_score": hyp_score, "ref_score": ref_score,
                   "ref_log_prob": log_prob, "ref_length": length, "correct": correct,
                   "wrong": wrong, "search_error": search}

    def evaluate(self, model, split):
        """The metrics summed batch by batch (BLEU from its corpus counts, bleu.py)."""
        bleu = bleu_lib.SacreBleu(self.config.eval.bleu_tokenize)
        bleu_keras_hub = bleu_lib.KerasHubBleu()
        shown = min(self.config.eval.attention_maps, len(split))
        examples = errors = search_errors = tokens = correct = 0
        log_prob = 0.0
        first_sources, first_tokens = [], []  # the examples whose attention is drawn
        for a in self.analysed_batches(model, split):
            examples += len(a["hyps"])
            errors += int(a["wrong"].sum())
            search_errors += int(a["search_error"].sum())
            tokens += int(a["ref_length"].sum())
            correct += int(a["correct"].sum())
            log_prob += float(np.sum(a["ref_log_prob"], dtype=np.float64))
            bleu.update(a["hyps"], a["refs"])
            bleu_keras_hub.update(a["hyps"], a["refs"])
            missing = shown - sum(len(x) for x in first_sources)
            first_sources.append(a["source_ids"][:missing])
            first_tokens.append(a["hyp_tokens"][:missing])
        tokens = max(1, tokens)
        metrics = {
            "exact_match": float(1 - errors / max(1, examples)),
            "bleu": bleu.result(),
            "bleu_keras_hub": bleu_keras_hub.result(),
            "token_accuracy": float(correct / tokens),
            "nll_per_token": float(-log_prob / tokens),
            "errors": errors,
            "search_errors": search_errors,
            "search_error_share": float(search_errors / errors) if errors else 0.0,
        }
        images = {}
        if shown:
            images["attention"] = self.attention_maps(model, np.concatenate(first_sources),
                                                      np.concatenate(first_tokens))
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
        text = [tf.TensorSpec([None], tf.string, name="text")]

        def serve(text):
            """A batch of sentences -> translations (beam search) and their scores."""
            return self.translate_strings(model, text, self.config.decode.beam_size)

        def serve_greedy(text):
            """A batch of sentences -> greedy translations and their scores."""
            return self.translate_strings(model, text, 1)

        return {"serving_default": (serve, text), "greedy": (serve_greedy, text)}

    def translate_strings(self, model, text, beam_size):
        c = self.config
        src = self.source_vocab.tf_encode(normalize(text, c.data.lowercase),
                                          c.data.max_source_length)
        src = tf.pad(src, [[0, 0], [0, 1]])  # never empty; padding is masked
        out = decode_lib.translate_ids(model, src, beam_size, self.max_length, c.decode.alpha)
        batch, k = tf.shape(out["tokens"])[0], tf.shape(out["tokens"])[1]
        flat = tf.reshape(out["tokens"], [batch * k, -1])
        beams = tf.reshape(self.target_vocab.tf_decode(flat), [batch, k])
        return {"translation": beams[:, 0], "score": out["score"][:, 0],
                "log_prob": out["log_prob"][:, 0], "beams": beams,
                "beam_scores": out["score"]}

    # --------------------------------------------------------------- predict

    def predict_items(self, value):
        """The sentences of --input: the sentence itself, or a text file's lines."""
        return data_lib.read_sentences(value)

    def load_export(self, workdir):
        """The SavedModel, once tensorflow-text's ops are registered: a WordPiece
        export (real data) tokenizes with them, and nothing else imports them here."""
        import tensorflow_text  # noqa: F401

        return super().load_export(workdir)

    def read_item(self, sentence):
        return sentence

    def predict_item(self, saved_model, sentence, value, output):
        """Prints "source -> translation (score)"; its record for predictions.json."""
        out = saved_model.signatures["serving_default"](text=tf.constant([sentence]))
        translation, score = _strings(out["translation"])[0], float(out["score"][0])
        print(f"{sentence}\t->\t{translation}\t(score {score:.4f})")
        return {"source": sentence, "translation": translation, "score": score,
                "beams": _strings(out["beams"][0]),
                "beam_scores": out["beam_scores"][0].numpy().tolist()}


def _strings(tensor):
    return [s.decode("utf-8") for s in np.asarray(tensor).reshape(-1)]


def _label(token):
    return {" ": "␣", "[END]": "<end>", "[UNK]": "<unk>"}.get(token, token)
