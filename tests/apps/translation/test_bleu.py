"""BLEU: the formula by hand against sacrebleu and keras-hub."""

import numpy as np
import pytest

from apps.translation import bleu as bleu_lib

HYPS = ["the cat sat on the mat", "a dog barks loud today", "1979-03-05",
        "hello there my friend", "it is raining , again !"]
REFS = ["the cat is on the mat", "a dog barks loudly today", "1979-03-03",
        "hello there my good friend", "it is raining again!"]


def _random_corpus(seed, n=30):
    rng = np.random.default_rng(seed)
    words = "the a cat dog sat on mat is was big small red , .".split()
    refs = [" ".join(rng.choice(words, rng.integers(3, 12))) for _ in range(n)]
    hyps = []
    for ref in refs:  # a noisy copy: some words replaced, dropped or added
        tokens = [w if rng.random() > 0.3 else str(rng.choice(words)) for w in ref.split()]
        if rng.random() < 0.5:
            tokens = tokens[:-1]
        hyps.append(" ".join(tokens + list(rng.choice(words, rng.integers(0, 2)))))
    return hyps, refs


@pytest.mark.parametrize("corpus", [(HYPS, REFS), _random_corpus(0), _random_corpus(1)])
def test_hand_coded_bleu_matches_sacrebleu_and_keras_hub(corpus):
    hyps, refs = corpus
    ours = bleu_lib.corpus_bleu([bleu_lib.tokenize(h) for h in hyps],
                                [bleu_lib.tokenize(r) for r in refs])
    sacre = bleu_lib.sacrebleu_score(hyps, refs, smooth="none")
    assert 5 < ours < 95  # a real, partial match
    assert ours == pytest.approx(sacre, abs=1e-9)
    assert bleu_lib.keras_hub_score(hyps, refs) == pytest.approx(sacre, abs=1e-3)


def test_bleu_edge_cases():
    assert bleu_lib.sacrebleu_score(REFS, REFS) == pytest.approx(100.0)
    assert bleu_lib.corpus_bleu([["a", "b"]], [["c", "d"]]) == 0.0
    # The brevity penalty: a correct but short candidate loses exp(1 - r / c).
    ref = "one two three four five six seven eight".split()
    short = ref[:4]
    assert bleu_lib.corpus_bleu([short], [ref]) == pytest.approx(100 * np.exp(1 - 8 / 4))
    assert bleu_lib.sacrebleu_score([" ".join(short)], [" ".join(ref)]) == pytest.approx(
        100 * np.exp(1 - 8 / 4))


@pytest.mark.parametrize("batch", [1, 7, 30])
def test_bleu_summed_batch_by_batch_is_the_corpus_bleu(batch):
    """Evaluation adds BLEU's corpus counts batch by batch (a split read from
    files is never held whole): the score is the one of the whole corpus."""
    hyps, refs = _random_corpus(2, n=30)
    sacre, keras_hub = bleu_lib.SacreBleu(), bleu_lib.KerasHubBleu()
    for i in range(0, len(hyps), batch):
        sacre.update(hyps[i:i + batch], refs[i:i + batch])
        keras_hub.update(hyps[i:i + batch], refs[i:i + batch])
    assert sacre.result() == bleu_lib.sacrebleu_score(hyps, refs)
    assert 5 < sacre.result() < 95
    assert keras_hub.result() == pytest.approx(bleu_lib.keras_hub_score(hyps, refs), abs=1e-6)
    assert bleu_lib.SacreBleu().result() == 0.0 == bleu_lib.KerasHubBleu().result()
