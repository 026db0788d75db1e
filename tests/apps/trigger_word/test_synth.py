"""Clip synthesis: overlap-free placement, words added where planned and label
placement (the course's pieces)."""

import numpy as np
import pytest

from apps.trigger_word import audio, synth
from apps.trigger_word.features import Geometry


def test_is_overlapping_matches_the_course_cases():
    assert not synth.is_overlapping((5, 10), [])
    assert synth.is_overlapping((5, 10), [(10, 20)])  # sharing one sample is overlapping
    assert synth.is_overlapping((5, 30), [(10, 20)])  # containing
    assert synth.is_overlapping((12, 15), [(10, 20)])  # contained
    assert not synth.is_overlapping((21, 30), [(10, 20), (0, 4)])
    assert synth.is_overlapping((3, 7), [(10, 20), (0, 4)])


def test_random_segments_stay_inside_their_limit():
    rng = np.random.default_rng(0)
    segments = [synth.get_random_time_segment(rng, 100, 999) for _ in range(2000)]
    starts = np.array([s for s, _ in segments])
    ends = np.array([e for _, e in segments])
    assert starts.min() == 0 and ends.max() == 999  # both extremes are reachable
    np.testing.assert_array_equal(ends - starts, 99)


def test_free_segments_never_overlap_and_stay_inside_their_limit():
    rng = np.random.default_rng(1)
    for _ in range(50):
        segments = []
        placed = []
        for _ in range(5):
            length = int(rng.integers(50, 400))
            segment = synth.free_segment(rng, length, segments, end_limit=1999)
            if segment is not None:
                assert segment[1] - segment[0] + 1 == length
                assert 0 <= segment[0] and segment[1] <= 1999
                placed.append(segment)
        assert placed == segments and len(placed) >= 1
        for i, a in enumerate(placed):
            for b in placed[i + 1:]:
                assert a[1] < b[0] or b[1] < a[0]


def test_free_segment_gives_up_when_there_is_no_room():
    rng = np.random.default_rng(2)
    segments = [(0, 99)]
    assert synth.free_segment(rng, 10, segments, end_limit=99) is None
    assert synth.free_segment(rng, 101, [], end_limit=99) is None
    assert segments == [(0, 99)]


def test_words_are_added_where_planned_at_their_level():
    """render_clip over a silent recorded background: the clip is the planned
    words, each at its level where planned, and nothing else."""
    g = Geometry(sample_rate=8000, clip_samples=16000, nfft=200, frame_step=80, kernel=15,
                 stride=4)
    tone = lambda hz, n: np.sin(np.arange(n) * 2 * np.pi * hz / 8000).astype(np.float32)  # noqa: E731
    bank = {"triggers": [tone(440, 3000)], "negatives": [tone(900, 2500), tone(700, 1000)],
            "babble": None, "backgrounds": [np.zeros(20000, np.float32)]}
    for seed in range(20):
        rng = np.random.default_rng(seed)
        words, _, events = synth.plan_clip(rng, bank, g, 6, 3, 2)
        wave = synth.render_clip(rng, bank, g, words)
        expected = np.zeros(g.clip_samples, np.float32)
        for kind, index, level, start in words:
            word = bank[kind][index]
            assert -32 <= level <= -14
            expected[start:start + len(word)] = audio.set_level(word, level)
        np.testing.assert_allclose(wave, expected, atol=1e-6)
        starts = sorted(start for kind, _, _, start in words if kind == "triggers")
        np.testing.assert_array_equal(events[:len(starts), 0], starts)


def test_insert_ones_sets_the_steps_right_after_the_word():
    y = np.zeros(100, np.uint8)
    synth.insert_ones(y, end_sample=1000, label_steps=50, step_samples=40)  # end step 25
    np.testing.assert_array_equal(np.flatnonzero(y), np.arange(26, 76))
    y = np.zeros(30, np.uint8)
    synth.insert_ones(y, end_sample=1000, label_steps=50, step_samples=40)  # cut at the end
    np.testing.assert_array_equal(np.flatnonzero(y), np.arange(26, 30))


def test_training_examples_have_labels_after_each_trigger_word():
    g = Geometry(sample_rate=8000, clip_samples=16000, nfft=200, frame_step=80, kernel=15,
                 stride=4)
    rng = np.random.default_rng(3)
    tone = lambda hz, n: np.sin(np.arange(n) * 2 * np.pi * hz / 8000).astype(np.float32)  # noqa: E731
    bank = {"triggers": [tone(440, 3000), tone(500, 4000)], "negatives": [tone(900, 2500)],
            "babble": None, "backgrounds": None}
    label_steps, counts = 6, []
    for _ in range(40):
        wave, y, events = synth.create_training_example(rng, bank, g, label_steps, 3, 2)
        assert wave.shape == (16000,) and y.shape == (g.ty,) and events.shape == (3, 2)
        assert np.abs(wave).max() <= 0.99 + 1e-6
        expected = np.zeros(g.ty, np.uint8)
        real = events[events[:, 0] >= 0]
        for start, end in real:
            assert end - start + 1 in (3000, 4000)
            first = end // g.step_samples + 1
            assert first + label_steps <= g.ty  # the whole label lies inside the clip
            expected[first:first + label_steps] = 1
        np.testing.assert_array_equal(y, expected)
        assert list(real[:, 0]) == sorted(real[:, 0])
        counts.append(len(real))
    assert set(counts) >= {0, 1, 2}


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_coloured_noise_has_the_asked_spectral_slope(exponent):
    noise = synth.coloured_noise(np.random.default_rng(4), 2 ** 16, exponent)
    power = np.abs(np.fft.rfft(noise)) ** 2
    f = np.arange(len(power))
    band = (f > 100) & (f < 20000)
    slope = np.polyfit(np.log(f[band]), np.log(power[band] + 1e-30), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.1)


def test_val_and_test_speakers_are_not_training_speakers():
    train, val, test = (set(synth.split_variants(s)) for s in synth.SPLITS)
    assert val and test and len(train) > 4 * len(val)
    assert not train & val and not train & test and not val & test
