"""Training clips as the course builds them, and the embedded word banks.

A clip is a background (clip_seconds long) with 0..max_triggers trigger words
and 0..max_negatives negative words overlaid at random, non-overlapping
positions (the course's get_random_time_segment / is_overlapping /
insert_audio_clip, here free_segment). The label y has Ty output steps; after
each trigger word ending at sample e it is 1 for the label_steps steps right
after e's step (insert_ones):

    y[s + 1 : s + 1 + label_steps] = 1,    s = e // step_samples

Trigger words are placed so that their whole label lies inside the clip.
A clip's random draws come in two parts: first its words, their levels and
places (plan_clip: what its labels and events depend on), then its
background (render_clip), so the targets of a clip cost a few draws, not its
audio.

The embedded default data (source "synthetic"): the trigger word and a list
of negative words spoken by eSpeak NG (apps/trigger_word/speech.py) with many
speakers (accent x voice variant) and per-utterance rate, pitch and pitch
range; the voice variants of the validation and test splits are not used in
training. Backgrounds are generated: coloured noise (white to brown), mains
hum with harmonics, and babble (quiet words of other speakers).
"""

import math

import numpy as np
import scipy.fft

from apps.trigger_word import audio, speech

# Everyday words, a few of them sharing sounds with "activate" (rhymes such as
# "motivate" are left out: the label follows the word's end, which they share).
NEGATIVE_WORDS = (
    "active", "acting", "actor", "captain", "vacation", "hello", "computer", "weather",
    "music", "morning", "window", "coffee", "yellow", "garden", "paper", "river", "baby",
    "table", "station", "seven", "tomorrow", "kitchen", "pilot", "dinner",
)
BABBLE_WORDS = (
    "the", "and", "people", "think", "about", "really", "because", "something", "maybe",
    "going", "there", "little", "after", "never", "always", "number", "water", "money",
)
SPLITS = ("train", "val", "test")


def split_variants(split):
    """The eSpeak voice variants of a split: test and val have their own speakers."""
    index = SPLITS.index(split)
    if index == 0:
        return [v for i, v in enumerate(speech.VARIANTS) if i % 8 not in (3, 6)]
    return [v for i, v in enumerate(speech.VARIANTS) if i % 8 == (3, 6)[index - 1]]


def synthesize_words(words, count, split, sample_rate, rng, trim_db=35.0):
    """`count` utterances, each of a random word of `words` by a random speaker of `split`."""
    variants = split_variants(split)
    out = []
    for _ in range(count):
        wave = speech.synthesize(
            str(words[rng.integers(len(words))]), sample_rate,
            language=speech.LANGUAGES[rng.integers(len(speech.LANGUAGES))],
            variant=variants[rng.integers(len(variants))],
            rate=int(rng.integers(120, 241)), pitch=int(rng.integers(20, 81)),
            pitch_range=int(rng.integers(20, 91)))
        wave = audio.trim(wave, sample_rate, trim_db)
        if len(wave):
            out.append(wave)
    return out


def synthetic_bank(split, config, seed):
    """{"triggers", "negatives", "babble": [waveforms], "backgrounds": None} of one split."""
    s = config.data.synthetic
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    sr = config.data.sample_rate
    scale = 1 if split == "train" else s.eval_fraction
    count = lambda n: max(4, int(round(n * scale)))  # noqa: E731
    return {
        "triggers": synthesize_words([config.data.trigger_word], count(s.trigger_utterances),
                                     split, sr, rng),
        "negatives": synthesize_words(list(config.data.negative_words),
                                      count(s.negative_utterances), split, sr, rng),
        "babble": synthesize_words(BABBLE_WORDS, count(s.babble_utterances), split, sr, rng),
        "backgrounds": None,
    }


# ----------------------------------------------------------------- the course's pieces


def get_random_time_segment(rng, segment_samples, end_limit):
    """A random (start, end) segment, end inclusive, with 0 <= start and end <= end_limit."""
    start = int(rng.integers(0, end_limit - segment_samples + 2))
    return start, start + segment_samples - 1


def is_overlapping(segment, previous_segments):
    """True if `segment` (start, end) shares a sample with any of `previous_segments`."""
    start, end = segment
    return any(start <= prev_end and end >= prev_start
               for prev_start, prev_end in previous_segments)


def free_segment(rng, length, previous_segments, end_limit, tries=50):
    """A place for a clip of `length` samples: the course's insert_audio_clip
    without the audio. A random (start, end) segment with end <= end_limit,
    sharing no sample with `previous_segments` (it is appended to them), or
    None when `tries` draws found none (or the clip is longer than the room)."""
    if length > end_limit + 1:
        return None
    for _ in range(tries):
        segment = get_random_time_segment(rng, length, end_limit)
        if not is_overlapping(segment, previous_segments):
            previous_segments.append(segment)
            return segment
    return None


def insert_ones(y, end_sample, label_steps, step_samples):
    """Sets the label_steps steps right after the step holding `end_sample` to 1."""
    first = end_sample // step_samples + 1
    y[first:first + label_steps] = 1
    return y


# -------------------------------------------------------------------- backgrounds


def coloured_noise(rng, samples, exponent):
    """Noise with power spectrum ~ 1 / f^exponent (0 white, 1 pink, 2 brown): white
    noise's spectrum scaled by f^(-exponent / 2). scipy.fft, not np.fft: the same
    transform, 4x faster at 40,000 samples (every clip composed on read makes one)."""
    spectrum = scipy.fft.rfft(rng.standard_normal(samples))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    return scipy.fft.irfft(spectrum / f ** (exponent / 2), n=samples).astype(np.float32)


def hum(rng, samples, sample_rate):
    """Mains hum: 50 or 60 Hz and a few harmonics of random strengths,

        h[n] = sum_k a_k / k sin(2 pi k f0 n / sample_rate + phi_k),   k f0 < sample_rate / 2.

    h repeats every sample_rate / gcd(sample_rate, f0) samples (160 at 8 kHz
    and 50 Hz): one period is computed and tiled, as each clip composed on
    read makes its own (the sines of a whole clip took half its time).
    """
    f0 = (50, 60)[rng.integers(2)]
    period = sample_rate // math.gcd(int(sample_rate), f0)
    t = np.arange(min(period, samples)) / sample_rate
    wave = sum(rng.uniform(0, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3))
               for k in range(1, 6) if f0 * k < sample_rate / 2)
    return np.resize(np.asarray(wave, np.float32), samples)


def generated_background(rng, samples, sample_rate, babble):
    """Coloured noise, maybe hum, maybe a babble of quiet words."""
    out = audio.set_level(coloured_noise(rng, samples, rng.uniform(0, 2)), rng.uniform(-55, -30))
    if rng.uniform() < 0.5:
        out += audio.set_level(hum(rng, samples, sample_rate), rng.uniform(-55, -35))
    if babble and rng.uniform() < 0.6:
        for _ in range(int(rng.integers(2, 9))):
            word = babble[rng.integers(len(babble))][:samples]
            start = int(rng.integers(0, samples - len(word) + 1))
            out[start:start + len(word)] += audio.set_level(word, rng.uniform(-48, -33))
    return out


def recorded_background(rng, samples, backgrounds):
    """A random stretch of one of the recorded backgrounds (tiled if short), 0-20 dB quieter."""
    wave = backgrounds[rng.integers(len(backgrounds))]
    if len(wave) < samples:
        wave = np.tile(wave, samples // len(wave) + 1)
    start = int(rng.integers(0, len(wave) - samples + 1))
    return (wave[start:start + samples] * 10 ** (rng.uniform(-20, 0) / 20)).astype(np.float32)


# ---------------------------------------------------------------------------- clips


def plan_clip(rng, bank, g, label_steps, max_triggers, max_negatives):
    """Where the words of one clip go, and its labels: the first draws of a clip.

    Returns (words, labels, events): words = [(kind, index, level_dbfs, start)]
    (bank[kind][index] at level_dbfs from sample `start`), labels uint8 (Ty,),
    events int32 (max_triggers, 2), the (start, end) samples of each trigger
    word (sorted; -1 where none). Drawing the words before the background
    lets a clip's targets be known without composing its audio.
    """
    y = np.zeros(g.ty, np.uint8)
    segments, words, events = [], [], []
    trigger_limit = (g.ty - 1 - label_steps) * g.step_samples - 1
    for kind, most, end_limit in (("triggers", max_triggers, trigger_limit),
                                  ("negatives", max_negatives, g.clip_samples - 1)):
        for _ in range(int(rng.integers(0, most + 1))):
            index = int(rng.integers(len(bank[kind])))
            level = float(rng.uniform(-32, -14))
            segment = free_segment(rng, len(bank[kind][index]), segments, end_limit)
            if segment is None:
                continue
            words.append((kind, index, level, segment[0]))
            if kind == "triggers":
                insert_ones(y, segment[1], label_steps, g.step_samples)
                events.append(segment)
    table = np.full((max_triggers, 2), -1, np.int32)
    for i, segment in enumerate(sorted(events)):
        table[i] = segment
    return words, y, table


def render_clip(rng, bank, g, words):
    """The float32 waveform of a clip: a background (the draws after
    plan_clip's) with `words` (plan_clip's) added where planned."""
    samples = g.clip_samples
    if bank.get("backgrounds"):
        wave = recorded_background(rng, samples, bank["backgrounds"])
    else:
        wave = generated_background(rng, samples, g.sample_rate, bank.get("babble"))
    for kind, index, level, start in words:
        word = audio.set_level(bank[kind][index], level)
        wave[start:start + len(word)] += word
    # As the course's match_target_amplitude: loud clips are scaled down, not clipped.
    peak = np.abs(wave).max()
    if peak > 0.99:
        wave *= 0.99 / peak
    return wave


def create_training_example(rng, bank, g, label_steps, max_triggers, max_negatives):
    """One clip: (float32 waveform, uint8 labels (Ty,), int32 events (max_triggers, 2)).

    `events` holds the (start, end) samples of each trigger word, -1 where none.
    """
    words, labels, events = plan_clip(rng, bank, g, label_steps, max_triggers, max_negatives)
    return render_clip(rng, bank, g, words), labels, events
