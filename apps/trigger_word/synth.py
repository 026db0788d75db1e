"""Training clips as the course builds them, and the embedded word banks.

A clip is a background (clip_seconds long) with 0..max_triggers trigger words
and 0..max_negatives negative words overlaid at random, non-overlapping
positions (the course's get_random_time_segment / is_overlapping /
insert_audio_clip). The label y has Ty output steps; after each trigger word
ending at sample e it is 1 for the label_steps steps right after e's step
(insert_ones):

    y[s + 1 : s + 1 + label_steps] = 1,    s = e // step_samples

Trigger words are placed so that their whole label lies inside the clip.

The embedded default data (source "synthetic"): the trigger word and a list
of negative words spoken by eSpeak NG (apps/trigger_word/speech.py) with many
speakers (accent x voice variant) and per-utterance rate, pitch and pitch
range; the voice variants of the validation and test splits are not used in
training. Backgrounds are generated: coloured noise (white to brown), mains
hum with harmonics, and babble (quiet words of other speakers).
"""

import numpy as np

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


def insert_audio_clip(rng, background, clip, previous_segments, end_limit=None, tries=50):
    """Adds `clip` to `background` at a random place free of `previous_segments`.

    Returns the (start, end) segment (also appended to previous_segments), or
    None when no free place was found in `tries` draws (or the clip is too long).
    """
    end_limit = len(background) - 1 if end_limit is None else end_limit
    if len(clip) > end_limit + 1:
        return None
    for _ in range(tries):
        segment = get_random_time_segment(rng, len(clip), end_limit)
        if not is_overlapping(segment, previous_segments):
            background[segment[0]:segment[1] + 1] += clip
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
    """Noise with power spectrum ~ 1 / f^exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / f ** (exponent / 2), n=samples).astype(np.float32)


def hum(rng, samples, sample_rate):
    """Mains hum: 50 or 60 Hz and a few harmonics of random strengths."""
    t = np.arange(samples) / sample_rate
    f0 = (50.0, 60.0)[rng.integers(2)]
    wave = sum(rng.uniform(0, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3))
               for k in range(1, 6) if f0 * k < sample_rate / 2)
    return np.asarray(wave, np.float32)


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


def create_training_example(rng, bank, g, label_steps, max_triggers, max_negatives):
    """One clip: (float32 waveform, uint8 labels (Ty,), int32 events (max_triggers, 2)).

    `events` holds the (start, end) samples of each trigger word, -1 where none.
    """
    samples = g.clip_samples
    if bank.get("backgrounds"):
        wave = recorded_background(rng, samples, bank["backgrounds"])
    else:
        wave = generated_background(rng, samples, g.sample_rate, bank.get("babble"))
    y = np.zeros(g.ty, np.uint8)
    segments = []
    trigger_limit = (g.ty - 1 - label_steps) * g.step_samples - 1
    events = []
    for _ in range(int(rng.integers(0, max_triggers + 1))):
        word = bank["triggers"][rng.integers(len(bank["triggers"]))]
        word = audio.set_level(word, rng.uniform(-32, -14))
        segment = insert_audio_clip(rng, wave, word, segments, end_limit=trigger_limit)
        if segment is not None:
            insert_ones(y, segment[1], label_steps, g.step_samples)
            events.append(segment)
    for _ in range(int(rng.integers(0, max_negatives + 1))):
        word = bank["negatives"][rng.integers(len(bank["negatives"]))]
        insert_audio_clip(rng, wave, audio.set_level(word, rng.uniform(-32, -14)), segments)
    # As the course's match_target_amplitude: loud clips are scaled down, not clipped.
    peak = np.abs(wave).max()
    if peak > 0.99:
        wave *= 0.99 / peak
    table = np.full((max_triggers, 2), -1, np.int32)
    for i, segment in enumerate(sorted(events)):
        table[i] = segment
    return wave, y, table


def compose(bank, n, g, label_steps, max_triggers, max_negatives, seed):
    """`n` clips from `bank`: int16 waveforms (n, samples), labels (n, Ty), events."""
    rng = np.random.default_rng(seed)
    waves = np.zeros((n, g.clip_samples), np.int16)
    labels = np.zeros((n, g.ty), np.uint8)
    events = np.full((n, max_triggers, 2), -1, np.int32)
    for i in range(n):
        wave, labels[i], events[i] = create_training_example(
            rng, bank, g, label_steps, max_triggers, max_negatives)
        waves[i] = audio.to_int16(wave)
    return waves, labels, events
