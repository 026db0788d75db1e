"""Streaming detection (threshold, refractory period, windows) and the metrics."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import precision_recall_fscore_support

from apps.trigger_word import detect


def test_detection_on_a_hand_built_curve():
    p = np.zeros(300)
    p[10:20] = 0.9   # fires at 10, not again within the refractory period
    p[40:45] = 0.7   # 30 steps after 10 < 75: suppressed
    p[90:95] = 0.6   # 80 steps after 10: fires at 90
    p[100] = 0.5     # equal to the threshold: not above it
    p[200] = 0.51    # fires
    np.testing.assert_array_equal(detect.detect(p, 0.5, 75), [10, 90, 200])
    np.testing.assert_array_equal(detect.detect(p, 0.65, 75), [10])
    np.testing.assert_array_equal(detect.detect(p, 0.5, 20), [10, 40, 90, 200])
    np.testing.assert_array_equal(detect.detect(p, 0.95, 75), [])
    np.testing.assert_array_equal(detect.detect(p, 0.5, 1), np.flatnonzero(p > 0.5))


def test_tensorflow_detection_equals_the_numpy_reference():
    rng = np.random.default_rng(0)
    curves = rng.uniform(0, 1, (4, 200)).astype(np.float32) ** 3
    for threshold, refractory in ((0.5, 75), (0.3, 7), (0.9, 1)):
        fired = detect.detect_tf(curves, threshold, refractory).numpy()
        for curve, row in zip(curves, fired, strict=True):
            np.testing.assert_array_equal(np.flatnonzero(row),
                                          detect.detect(curve, threshold, refractory))
    times, counts = detect.firing_times(tf.constant([[False, True, False, True],
                                                     [False, False, False, False]]), 0.5)
    np.testing.assert_array_equal(times.numpy(), [[0.5, 1.5], [-1, -1]])
    np.testing.assert_array_equal(counts.numpy(), [2, 0])


def _causal_model(step_samples, ty):
    """A stand-in for the network: step j of a window = the sum of the samples from the
    window's start to the end of step j (so it depends on where the window starts)."""
    def run(windows):
        return tf.cumsum(windows, axis=1)[:, step_samples - 1::step_samples][:, :ty]
    return run


def test_streaming_windows_line_up_with_the_stream():
    step, ty, context = 4, 10, 3
    clip = step * ty
    run = _causal_model(step, ty)
    rng = np.random.default_rng(1)
    for length in (clip, clip + 1, 95, 200, 13):
        x = rng.uniform(-1, 1, (2, length)).astype(np.float32)
        curve = detect.stream_probabilities(tf.constant(x), run, clip, ty, step, context).numpy()
        hop = (ty - context) * step
        windows = 1 + max(0, -(-(length - clip) // hop))
        assert curve.shape == (2, min(-(-length // step), ty + (windows - 1) * (ty - context)))
        padded = np.pad(x, [(0, 0), (0, 400)])
        for g in range(curve.shape[1]):
            k = 0 if g < ty else (g - context) // (ty - context)
            start = k * hop
            j = g - k * (ty - context)
            assert 0 <= j < ty and (k == 0 or j >= context)
            expected = padded[:, start:(g + 1) * step].sum(axis=1)
            np.testing.assert_allclose(curve[:, g], expected, rtol=1e-4, atol=1e-4)


def test_frame_metrics_equal_scikit_learn():
    rng = np.random.default_rng(2)
    labels = (rng.uniform(size=(5, 60)) < 0.2).astype(np.uint8)
    p = np.clip(labels * 0.6 + rng.uniform(0, 0.5, labels.shape), 0, 1)
    got = detect.frame_metrics(labels, p, 0.5)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels.reshape(-1), (p > 0.5).reshape(-1), average="binary")
    assert got["frame_precision"] == pytest.approx(precision)
    assert got["frame_recall"] == pytest.approx(recall)
    assert got["frame_f1"] == pytest.approx(f1)
    assert got["frame_f1"] == pytest.approx(2 / (1 / precision + 1 / recall))
    zeros = detect.frame_metrics(labels, np.zeros_like(p))
    assert zeros["frame_f1"] == 0 and zeros["frame_accuracy"] > 0.75  # accuracy misleads


def test_event_matching_counts_hits_duplicates_and_false_alarms():
    events = np.array([[400, 800], [2000, 2400], [-1, -1]])  # steps 10..20+5, 50..60+5
    hits, alarms = detect.match_events([22, 24, 55, 90], events, 40, 5)
    assert (hits, alarms) == (2, 2)  # 24: a second firing for word 1; 90: nothing near
    assert detect.match_events([9], events, 40, 5) == (0, 1)  # before the word starts
    assert detect.match_events([], events, 40, 5) == (0, 0)
    p = np.zeros((2, 100))
    p[0, 22] = p[1, 70] = 0.9
    m = detect.event_metrics(p, np.stack([events, events]), 40, 8000, 4000, 0.5, 10, 5)
    assert m["event_recall"] == pytest.approx(1 / 4)
    assert m["false_alarms_per_hour"] == pytest.approx(1 / (2 * 0.5 / 3600))
