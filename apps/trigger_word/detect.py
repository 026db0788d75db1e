"""Streaming detection, and the frame- and event-level metrics.

Detection (as the course's chime_on_activate): walking the per-step
probabilities p[t], the detector fires at step t when

    p[t] > threshold   and   t - t_last >= refractory    (t_last: the last firing)

so it fires at most once per refractory period (the course's 75 steps); the
first firing needs no wait. A firing at step t is reported at t * step_seconds.

Streaming: a long waveform is read in windows of clip_samples overlapping by
`context` output steps (hop = Ty - context steps, a whole number of steps, so
the windows' steps line up with the stream's); the first window gives all its
Ty steps, each later one its steps after the context (the model, a
left-to-right GRU, starts each window with an empty state; the context lets it
hear the start of a word that straddles two windows).

Metrics, with p > threshold as the frame prediction:

    frame precision P = TP / (TP + FP),   recall R = TP / (TP + FN),
    F1 = 2 / (1/P + 1/R) = 2PR / (P + R)      (0 where undefined)

and, per trigger word spoken from `start` to `end`, a hit when a firing falls
in [start, end + (label_steps + tolerance_steps) * step]; event recall =
hits / trigger words; every other firing (none near a trigger word, or a second
one for the same word) is a false alarm, counted per hour of audio.
"""

import numpy as np
import tensorflow as tf


def detect(probabilities, threshold=0.5, refractory=75):
    """The firing steps of one probability curve (NumPy; the reference)."""
    fired, last = [], None
    for t, p in enumerate(np.asarray(probabilities, np.float64).reshape(-1)):
        if p > threshold and (last is None or t - last >= refractory):
            fired.append(t)
            last = t
    return np.asarray(fired, np.int64)


def detect_tf(probabilities, threshold, refractory):
    """Batched twin of `detect` in TensorFlow: (batch, T) -> bool (batch, T) firings."""
    p = tf.transpose(tf.convert_to_tensor(probabilities, tf.float32))  # (T, batch)
    steps = tf.range(tf.shape(p)[0], dtype=tf.int32)

    def fire(state, inputs):
        last, _ = state
        t, p_t = inputs
        now = tf.logical_and(p_t > threshold, t - last >= refractory)
        return tf.where(now, t, last), now

    first = tf.fill(tf.shape(p)[1:2], tf.int32.min // 2)
    _, fired = tf.scan(fire, (steps, p), initializer=(first, tf.zeros(tf.shape(p)[1:2], tf.bool)))
    return tf.transpose(fired)


def stream_probabilities(waveforms, run_model, clip_samples, ty, step_samples, context):
    """Per-step probabilities (batch, steps) of float32 waveforms (batch, samples) of any length.

    `run_model` maps windows (n, clip_samples) to probabilities (n, ty).
    """
    hop_steps = ty - context
    hop = hop_steps * step_samples
    length = tf.shape(waveforms)[1]
    windows = 1 + tf.maximum(0, (length - clip_samples + hop - 1) // hop)
    padded = tf.pad(waveforms, [[0, 0], [0, clip_samples + (windows - 1) * hop - length]])
    framed = tf.signal.frame(padded, clip_samples, hop)  # (batch, windows, clip)
    batch = tf.shape(waveforms)[0]
    p = tf.reshape(run_model(tf.reshape(framed, [-1, clip_samples])), [batch, windows, ty])
    rest = tf.reshape(p[:, 1:, context:], [batch, -1])
    curve = tf.concat([p[:, 0, :], rest], axis=1)
    valid = tf.minimum(tf.shape(curve)[1], (length + step_samples - 1) // step_samples)
    return curve[:, :valid]


def firing_times(fired, step_seconds):
    """bool (batch, T) -> (times (batch, max firings) padded with -1, counts (batch,))."""
    steps = tf.cast(tf.range(tf.shape(fired)[1]), tf.float32) * step_seconds
    times = tf.ragged.boolean_mask(tf.broadcast_to(steps, tf.shape(fired)), fired)
    return times.to_tensor(default_value=-1.0), tf.cast(times.row_lengths(), tf.int32)


# -------------------------------------------------------------------------- metrics


def frame_metrics(labels, probabilities, threshold=0.5):
    """Frame precision, recall, F1 and accuracy (and the all-zeros model's accuracy)."""
    y = np.asarray(labels).reshape(-1) > 0
    pred = np.asarray(probabilities).reshape(-1) > threshold
    tp = float(np.sum(y & pred))
    fp = float(np.sum(~y & pred))
    fn = float(np.sum(y & ~pred))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 / (1 / precision + 1 / recall) if precision and recall else 0.0
    return {"frame_precision": precision, "frame_recall": recall, "frame_f1": f1,
            "frame_accuracy": float(np.mean(y == pred)),
            "all_zeros_frame_accuracy": float(np.mean(~y))}


def match_events(fired_steps, events, step_samples, window_steps):
    """(hits, false alarms) of one clip's firings against its trigger words.

    `events`: (k, 2) start/end samples (rows with -1 ignored); a word is hit
    by the first firing at a step in [start // step_samples,
    end // step_samples + window_steps].
    """
    words = [(int(s) // step_samples, int(e) // step_samples + window_steps)
             for s, e in np.asarray(events).reshape(-1, 2) if s >= 0]
    hit = [False] * len(words)
    false_alarms = 0
    for t in fired_steps:
        for i, (lo, hi) in enumerate(words):
            if lo <= t <= hi and not hit[i]:
                hit[i] = True
                break
        else:
            false_alarms += 1
    return sum(hit), false_alarms


def event_metrics(probabilities, events, step_samples, sample_rate, clip_samples, threshold,
                  refractory, window_steps):
    """Event recall and false alarms per hour over clips (N, Ty) with events (N, k, 2)."""
    hits = alarms = 0
    words = int(np.sum(np.asarray(events)[..., 0] >= 0))
    for p, clip_events in zip(probabilities, events, strict=True):
        h, f = match_events(detect(p, threshold, refractory), clip_events, step_samples,
                            window_steps)
        hits += h
        alarms += f
    hours = len(probabilities) * clip_samples / sample_rate / 3600
    return {"event_recall": hits / words if words else 0.0,
            "false_alarms_per_hour": alarms / hours if hours else 0.0,
            "trigger_words": words, "detections": hits + alarms}
