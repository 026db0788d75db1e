"""BLEU (Papineni et al., 2002): sacrebleu's, keras-hub's, and the formula by hand.

For a corpus of candidate translations c with references r, tokenized:

    p_n  = sum_c sum_{g in n-grams(c)} min(count_c(g), count_r(g))
           / sum_c sum_{g in n-grams(c)} count_c(g)          modified n-gram precision
    BP   = 1 if len_c > len_r else exp(1 - len_r / len_c)      brevity penalty (corpus lengths)
    BLEU = BP * exp(sum_{n=1}^{4} (1/4) log p_n)               (x 100)

The reported figure is sacrebleu's (the course advises an established
implementation, and sacrebleu's is the shareable standard: its "13a"
tokenization and "exp" smoothing by default); keras-hub's `Bleu` metric is
computed beside it as a cross-check, and `corpus_bleu` is the formula above
transcribed, which the tests hold against both.
"""

import collections
import logging
import math

TOKENIZERS = ("13a", "char", "intl", "none")


def tokenize(text, tokenizer="13a"):
    """sacrebleu's tokenization of one string -> list of tokens."""
    from sacrebleu.metrics.bleu import BLEU

    return BLEU(tokenize=tokenizer).tokenizer(text).split()


def _ngrams(tokens, n):
    return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses, references, max_order=4):
    """The module docstring's corpus BLEU (0..100, no smoothing) of token lists."""
    matches = [0] * max_order
    totals = [0] * max_order
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        hyp_len += len(hyp)
        ref_len += len(ref)
        for n in range(1, max_order + 1):
            h, r = _ngrams(hyp, n), _ngrams(ref, n)
            matches[n - 1] += sum(min(c, r[g]) for g, c in h.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True))
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * bp * math.exp(log_precision / max_order)


def sacrebleu_score(hypotheses, references, tokenizer="13a", smooth="exp"):
    """sacrebleu's corpus BLEU (0..100) of strings, one reference each."""
    import sacrebleu

    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)],
                                       tokenize=tokenizer, smooth_method=smooth).score)


def keras_hub_score(hypotheses, references):
    """keras-hub's `Bleu` metric (13a-like tokenization, no smoothing), x 100."""
    score = KerasHubBleu()
    score.update(hypotheses, references)
    return score.result()


class SacreBleu:
    """`sacrebleu_score` of a corpus given batch by batch.

    The corpus figures of the formula (n-gram matches and totals per order,
    candidate and reference lengths) are sums over its sentences, so summing
    each batch's and scoring the sums (sacrebleu's `compute_bleu`, with the
    same smoothing) is the corpus BLEU, whatever the batches. sacrebleu's
    warning about hypotheses ending in a tokenized period (" .") is given once
    for the corpus, as a single `sacrebleu_score` gives it, not once a batch.
    """

    def __init__(self, tokenizer="13a", smooth="exp", max_order=4):
        from sacrebleu.metrics.bleu import BLEU

        self.metric = BLEU(tokenize=tokenizer, smooth_method=smooth, max_ngram_order=max_order,
                           force=True)  # force: only silences the warning, said in result()
        self.smooth, self.max_order = smooth, max_order
        self.correct, self.total = [0] * max_order, [0] * max_order
        self.sys_len = self.ref_len = self.sentences = self.tokenized_periods = 0

    def update(self, hypotheses, references):
        if not len(hypotheses):
            return
        s = self.metric.corpus_score(list(hypotheses), [list(references)])
        self.correct = [a + b for a, b in zip(self.correct, s.counts, strict=True)]
        self.total = [a + b for a, b in zip(self.total, s.totals, strict=True)]
        self.sys_len += s.sys_len
        self.ref_len += s.ref_len
        self.sentences += len(hypotheses)
        self.tokenized_periods += sum(h.endswith(" .") for h in hypotheses)

    def result(self):
        if not self.sentences:
            return 0.0
        if self.tokenized_periods >= 100:  # sacrebleu's threshold
            logging.getLogger("sacrebleu").warning(
                "That's %d lines that end in a tokenized period ('.'): the text looks not "
                "detokenized, which may hurt the BLEU score", self.tokenized_periods)
        return float(self.metric.compute_bleu(
            self.correct, self.total, self.sys_len, self.ref_len, smooth_method=self.smooth,
            max_ngram_order=self.max_order).score)


class KerasHubBleu:
    """keras-hub's `Bleu` metric (13a-like tokenization, no smoothing), x 100,
    of a corpus given batch by batch (the metric sums its counts over updates)."""

    def __init__(self):
        from keras_hub.metrics import Bleu

        self.metric = Bleu()
        self.sentences = 0

    def update(self, hypotheses, references):
        import numpy as np

        if not len(hypotheses):
            return
        with np.errstate(divide="ignore"):  # log(0) of an order with no match: BLEU 0
            self.metric.update_state([[r] for r in references], list(hypotheses))
        self.sentences += len(hypotheses)

    def result(self):
        import numpy as np

        if not self.sentences:
            return 0.0
        with np.errstate(divide="ignore"):
            return 100.0 * float(self.metric.result())
