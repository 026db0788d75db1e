"""Greedy and beam search on hand-built toy models whose best sequences are known."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from apps.translation import decode as decode_lib
from apps.translation.vocab import BOS, EOS, PAD

A, B = 4, 5  # the toy vocabulary: 0 pad, 1 unk, 2 start, 3 end, 4 "a", 5 "b"


def markov(rows):
    """A toy 'model': P(next | last token) from a table {token: {next: p}}."""
    table = np.full((6, 6), 1e-12)
    table[PAD, EOS] = table[EOS, EOS] = 1.0
    for token, nexts in rows.items():
        for nxt, p in nexts.items():
            table[token, nxt] = p
    log_table = tf.constant(np.log(table / table.sum(1, keepdims=True)), tf.float32)

    def step(tokens, t, state):
        return tf.gather(log_table, tokens[:, t]), state

    def teacher_forced_logits(decoder_inputs):
        return tf.gather(log_table, decoder_inputs)

    return step, teacher_forced_logits


# Greedy takes "a" (0.6) first, but every continuation of "a" is unlikely:
# P(a end) = 0.24 < P(b end) = 0.36, the best sequence.
GREEDY_IS_WRONG = {BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.4, A: 0.3, B: 0.3},
                   B: {EOS: 0.9, A: 0.05, B: 0.05}}


def _state(n):
    return (tf.zeros([n]),)


def test_beam_search_finds_the_best_sequence_where_greedy_does_not():
    step, _ = markov(GREEDY_IS_WRONG)
    g = decode_lib.greedy(step, _state(1), 1, max_length=5)
    assert g["tokens"].numpy()[0].tolist() == [A, EOS, 0, 0, 0]
    np.testing.assert_allclose(g["log_prob"].numpy(), [np.log(0.6 * 0.4)], rtol=1e-5)
    b = decode_lib.beam_search(step, _state(2), 1, beam_size=2, max_length=5)
    assert b["tokens"].numpy()[0, 0].tolist() == [B, EOS, 0, 0, 0]
    np.testing.assert_allclose(b["log_prob"].numpy()[0, 0], np.log(0.4 * 0.9), rtol=1e-5)
    assert b["length"].numpy()[0, 0] == 2
    np.testing.assert_allclose(b["score"].numpy()[0, 0], np.log(0.36) / 2 ** 0.7, rtol=1e-5)
    # The second beam is greedy's answer, ranked below.
    assert b["tokens"].numpy()[0, 1].tolist() == [A, EOS, 0, 0, 0]
    assert b["score"].numpy()[0, 0] > b["score"].numpy()[0, 1]


def _random_markov(seed, vocab=9):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(vocab, vocab)) * 2
    logits[:, [PAD, 1, BOS]] = -30
    log_table = tf.constant(logits - np.log(np.exp(logits).sum(1, keepdims=True)), tf.float32)

    def step(tokens, t, state):
        # Depends on the whole prefix (the position too), not just the last token.
        mixed = tf.gather(log_table, tokens[:, t]) + 0.3 * tf.cast(t, tf.float32) * tf.gather(
            log_table, tokens[:, tf.maximum(t - 1, 0)])
        return tf.nn.log_softmax(mixed), state

    return step, log_table


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_is_greedy(seed):
    step, _ = _random_markov(seed)
    g = decode_lib.greedy(step, _state(4), 4, max_length=7)
    b = decode_lib.beam_search(step, _state(4), 4, beam_size=1, max_length=7)
    np.testing.assert_array_equal(b["tokens"].numpy()[:, 0], g["tokens"].numpy())
    np.testing.assert_allclose(b["log_prob"].numpy()[:, 0], g["log_prob"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(b["length"].numpy()[:, 0], g["length"].numpy())
    np.testing.assert_array_equal(b["finished"].numpy()[:, 0], g["finished"].numpy())


def test_wide_beam_equals_exhaustive_search():
    """With B >= all prefixes, beam search finds the best-scoring sequence of all."""
    vocab, max_length, alpha = 5, 3, 0.7
    step, _ = _random_markov(3, vocab)

    def score(seq):
        tokens = np.zeros((1, max_length + 1), np.int32)
        tokens[0, 0] = BOS
        total = 0.0
        for t, token in enumerate(seq):
            total += float(step(tf.constant(tokens), t, None)[0][0, token])
            tokens[0, t + 1] = token
        return total / len(seq) ** alpha

    candidates = [seq for n in range(1, max_length + 1)
                  for seq in itertools.product([EOS, A], repeat=n)
                  if seq[-1] == EOS and EOS not in seq[:-1]]
    best = max(candidates, key=score)
    b = decode_lib.beam_search(step, _state(16), 1, beam_size=16, max_length=max_length,
                               alpha=alpha)
    found = [t for t in b["tokens"].numpy()[0, 0] if t != PAD]
    assert tuple(found) == best
    np.testing.assert_allclose(b["score"].numpy()[0, 0], score(best), rtol=1e-5)


# "end" right away has the larger summed log-probability (0.3 > 0.7 * 0.4 =
# 0.28), but "a end" is better per word: alpha = 0 picks the first, alpha = 1
# (the average log-probability) the second.
SHORT_OR_LONG = {BOS: {EOS: 0.3, A: 0.7}, A: {EOS: 0.4, B: 0.6}, B: {EOS: 0.01, B: 0.99}}


@pytest.mark.parametrize("alpha, expected", [(0.0, [EOS]), (1.0, [A, EOS])])
def test_length_normalisation_changes_the_ranking(alpha, expected):
    step, _ = markov(SHORT_OR_LONG)
    b = decode_lib.beam_search(step, _state(3), 1, beam_size=3, max_length=3, alpha=alpha)
    best = [t for t in b["tokens"].numpy()[0, 0] if t != PAD]
    assert best == expected
    raw = {(EOS,): np.log(0.3), (A, EOS): np.log(0.28)}[tuple(best)]
    np.testing.assert_allclose(b["score"].numpy()[0, 0], raw / len(best) ** alpha, rtol=1e-5)


def test_decoding_is_batched_and_traces_into_a_graph():
    step, _ = markov(GREEDY_IS_WRONG)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def run(batch):
        return decode_lib.beam_search(step, (tf.zeros([batch * 2]),), batch, 2, 4)

    out = run(tf.constant(3))
    assert out["tokens"].shape == (3, 2, 4)
    assert (out["tokens"].numpy()[:, 0, :2] == [B, EOS]).all()


def test_score_targets_and_error_analysis_blame():
    """The search is blamed when the model prefers the reference it missed."""
    step, logits_of = markov(GREEDY_IS_WRONG)
    greedy = decode_lib.greedy(step, _state(2), 2, max_length=3)
    # Example 0's reference is "b" (the model prefers it: a search error);
    # example 1's reference is "a a" (the model prefers "a": a model error).
    targets = tf.constant([[B, EOS, 0], [A, A, EOS]])
    decoder_inputs = tf.constant([[BOS, B, EOS], [BOS, A, A]])
    log_prob, length, correct = decode_lib.score_targets(logits_of(decoder_inputs), targets)
    np.testing.assert_allclose(log_prob.numpy(), np.log([0.4 * 0.9, 0.6 * 0.3 * 0.4]),
                               rtol=1e-5)
    assert length.numpy().tolist() == [2, 3]
    assert correct.numpy().tolist() == [1, 2]  # argmax: a (not b), end | a, end (not a), end
    ref_score = decode_lib.length_normalized(log_prob, length, 0.7).numpy()
    wrong, search = decode_lib.blame(["a", "a"], ["b", "aa"], greedy["score"].numpy(), ref_score)
    assert wrong.tolist() == [True, True]
    assert search.tolist() == [True, False]
    wrong, search = decode_lib.blame(["b", "x"], ["b", "y"], [0.0, -1.0], [0.0, -2.0])
    assert wrong.tolist() == [False, True] and search.tolist() == [False, False]
