"""Greedy and beam-search decoding, batched and in-graph, and sequence scoring.

Both decoders drive a step function

    step_fn(tokens, t, state) -> (log_probs (N, V), new_state)

where `tokens` (N, max_length + 1) holds [START] and the tokens chosen so
far (positions 0..t), and log_probs is log P(y_{t+1} | x, y_<=t). They run a
`tf.while_loop`, so they trace into a `tf.function` and the exported
SavedModel, and take a whole batch at once.

Beam search (the course's version). For each source it keeps the B best
partial translations by their summed log-probability

    log P(y_1..y_t | x) = sum_{t'<=t} log P(y_t' | x, y_<t')

extending each by every word and keeping the B best of the B x V
candidates. A hypothesis that has produced [END] is finished: it keeps its
slot and score (it is extended only by padding, at no cost) and competes
with the others by summed log-probability. The search stops when all B are
finished or at `max_length`; the finished (and any unfinished) hypotheses
are then ranked by the length-normalised objective (a hypothesis cut off at
`max_length` ranks after every finished one)

    score(y) = (1 / T_y^alpha) * sum_{t=1}^{T_y} log P(y_t | x, y_<t)

(T_y counts the words and the [END]; alpha = 0.7 by default, alpha = 0 is the
plain sum, alpha = 1 the average). With B = 1 this is exactly greedy decoding.
"""

import numpy as np
import tensorflow as tf

from apps.translation.vocab import BOS, EOS, PAD

NEG = -1e9


def length_normalized(log_prob, length, alpha):
    """(1 / T_y^alpha) * sum log P: the score that ranks finished translations."""
    length = tf.maximum(tf.cast(length, tf.float32), 1.0)
    return tf.cast(log_prob, tf.float32) / tf.pow(length, tf.cast(alpha, tf.float32))


def _start_tokens(n, max_length):
    return tf.concat([tf.fill([n, 1], BOS), tf.fill([n, max_length], PAD)], axis=1)


def greedy(step_fn, state, batch, max_length, alpha=0.7):
    """Greedy decoding: argmax at every step until [END] or max_length.

    Returns {"tokens" (B, max_length) without [START], padded after [END];
    "log_prob" (B,) the summed log-probability; "length" (B,) T_y;
    "score" (B,) the length-normalised score; "finished" (B,) [END] reached}.
    """
    tokens = _start_tokens(batch, max_length)
    log_prob = tf.zeros([batch], tf.float32)
    length = tf.zeros([batch], tf.int32)
    finished = tf.zeros([batch], tf.bool)

    def cond(t, tokens, log_prob, length, finished, state):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(t, tokens, log_prob, length, finished, state):
        log_probs, state = step_fn(tokens, t, state)
        log_probs = tf.cast(log_probs, tf.float32)
        token = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        best = tf.reduce_max(log_probs, axis=-1)
        token = tf.where(finished, PAD, token)
        log_prob += tf.where(finished, 0.0, best)
        length += tf.cast(tf.logical_not(finished), tf.int32)
        finished = tf.logical_or(finished, tf.equal(token, EOS))
        tokens = _set_column(tokens, t + 1, token)
        return t + 1, tokens, log_prob, length, finished, state

    _, tokens, log_prob, length, finished, _ = tf.while_loop(
        cond, body, (tf.constant(0), tokens, log_prob, length, finished, state),
        maximum_iterations=max_length)
    return {"tokens": tokens[:, 1:], "log_prob": log_prob, "length": length,
            "score": length_normalized(log_prob, length, alpha), "finished": finished}


def beam_search(step_fn, state, batch, beam_size, max_length, alpha=0.7):
    """Beam search of width `beam_size` (see the module docstring).

    `state` must already hold batch * beam_size rows (each source repeated
    beam_size times, consecutively: `tile_beams`). Returns {"tokens" (B, K,
    max_length), "log_prob" (B, K), "length" (B, K), "score" (B, K)}, the K
    hypotheses of each source sorted by their length-normalised score, best
    first.
    """
    k = beam_size
    n = batch * k
    tokens = tf.reshape(_start_tokens(n, max_length), [batch, k, max_length + 1])
    # Only the first of the identical initial beams is alive at the start.
    log_prob = tf.tile(tf.concat([[0.0], tf.fill([k - 1], NEG)], 0)[None], [batch, 1])
    length = tf.zeros([batch, k], tf.int32)
    finished = tf.zeros([batch, k], tf.bool)

    def cond(t, tokens, log_prob, length, finished, state):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(t, tokens, log_prob, length, finished, state):
        log_probs, state = step_fn(tf.reshape(tokens, [n, max_length + 1]), t, state)
        vocab = tf.shape(log_probs)[-1]
        log_probs = tf.reshape(tf.cast(log_probs, tf.float32), [batch, k, vocab])
        # A finished hypothesis goes on only with padding, at no cost.
        pad_only = tf.one_hot(PAD, vocab, on_value=0.0, off_value=NEG)
        log_probs = tf.where(finished[..., None], pad_only[None, None], log_probs)
        candidates = tf.reshape(log_prob[..., None] + log_probs, [batch, k * vocab])
        log_prob, index = tf.math.top_k(candidates, k=k)
        parent = index // vocab
        token = index % vocab
        tokens = tf.gather(tokens, parent, batch_dims=1)
        was_finished = tf.gather(finished, parent, batch_dims=1)
        length = tf.gather(length, parent, batch_dims=1) + tf.cast(
            tf.logical_not(was_finished), tf.int32)
        finished = tf.logical_or(was_finished, tf.equal(token, EOS))
        tokens = tf.reshape(_set_column(tf.reshape(tokens, [n, max_length + 1]), t + 1,
                                        tf.reshape(token, [n])), [batch, k, max_length + 1])
        rows = tf.reshape(parent + tf.range(batch)[:, None] * k, [n])
        state = tf.nest.map_structure(lambda s: tf.gather(s, rows), state)
        return t + 1, tokens, log_prob, length, finished, state

    _, tokens, log_prob, length, finished, _ = tf.while_loop(
        cond, body, (tf.constant(0), tokens, log_prob, length, finished, state),
        maximum_iterations=max_length)
    score = length_normalized(log_prob, length, alpha)
    score = tf.where(log_prob <= NEG / 2, NEG, score)  # never-alive beams (V < B) last
    # Finished translations first; one cut off at max_length only if none finished.
    rank = tf.where(finished, score, score + NEG / 1000)
    order = tf.argsort(rank, axis=-1, direction="DESCENDING", stable=True)
    pick = lambda x: tf.gather(x, order, batch_dims=1)  # noqa: E731
    return {"tokens": pick(tokens)[:, :, 1:], "log_prob": pick(log_prob),
            "length": pick(length), "score": pick(score), "finished": pick(finished)}


def tile_beams(structure, beam_size):
    """Repeats every row beam_size times, consecutively ((B, ...) -> (B*K, ...))."""
    return tf.nest.map_structure(lambda x: tf.repeat(x, beam_size, axis=0), structure)


def _set_column(tokens, column, values):
    """tokens[:, column] = values (functional, for the loop)."""
    width = tf.shape(tokens)[1]
    hot = tf.equal(tf.range(width), column)[None, :]
    return tf.where(hot, values[:, None], tokens)


def model_step_fn(model, memory, banned=(PAD, BOS)):
    """The step function of a translation model (apps.translation.model).

    log P(y_{t+1} | x, y_<=t) = log_softmax(logits) with [PAD] and [START]
    excluded (they are never a next word).
    """
    def step(tokens, t, state):
        logits, state = model.step(memory, state, tokens, t)
        return next_log_probs(logits, banned), state

    return step


def next_log_probs(logits, banned=(PAD, BOS)):
    """log_softmax over the vocabulary with the `banned` ids' probability 0."""
    logits = tf.cast(logits, tf.float32)
    vocab = tf.shape(logits)[-1]
    ban = tf.reduce_any(tf.equal(tf.range(vocab)[:, None], tf.constant(banned)[None]), -1)
    logits = tf.where(ban, NEG, logits)
    return tf.nn.log_softmax(logits, axis=-1)


def score_targets(logits, targets):
    """Teacher-forced scores of given translations.

    For targets y_1..y_T ([END] included, 0 = padding) and logits of each
    position, returns (sum_t log P(y_t | x, y_<t) over real tokens (B,),
    T_y (B,), correct (B,) the positions where argmax = y_t).
    """
    log_probs = next_log_probs(logits)
    targets = tf.cast(targets, tf.int32)
    real = tf.not_equal(targets, PAD)
    picked = tf.gather(log_probs, targets, batch_dims=2)
    log_prob = tf.reduce_sum(tf.where(real, picked, 0.0), axis=-1)
    length = tf.reduce_sum(tf.cast(real, tf.int32), axis=-1)
    hit = tf.logical_and(real, tf.equal(tf.argmax(log_probs, -1, output_type=tf.int32), targets))
    return log_prob, length, tf.reduce_sum(tf.cast(hit, tf.int32), axis=-1)


def translate_ids(model, source_ids, beam_size, max_length, alpha):
    """Encodes a batch of source ids and beam-searches (B = 1: greedily) in-graph."""
    memory = model.encode(source_ids, training=False)
    batch = tf.shape(source_ids)[0]
    if beam_size == 1:
        out = greedy(model_step_fn(model, memory), model.initial_state(memory), batch,
                     max_length, alpha)
        return tf.nest.map_structure(lambda x: x[:, None], out)
    memory = tile_beams(memory, beam_size)
    return beam_search(model_step_fn(model, memory), model.initial_state(memory), batch,
                       beam_size, max_length, alpha)


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
