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
    import numpy as np
    from keras_hub.metrics import Bleu

    if not hypotheses:
        return 0.0
    metric = Bleu()
    with np.errstate(divide="ignore"):  # log(0) of an n-gram order with no match: BLEU 0
        metric.update_state([[r] for r in references], list(hypotheses))
        return 100.0 * float(metric.result())
