"""Trigger-word data: word banks from one of three sources, composed into clips.

    config.data.source = "synthetic"  the embedded default: eSpeak NG speech and
                                      generated backgrounds (apps/trigger_word/synth.py);
                                      the spoken words are cached under
                                      config.data.cache_dir
                       = "folder"     config.data.path in the course's raw_data layout:
                                        activates/    recordings of the trigger word
                                        negatives/    recordings of other words
                                        backgrounds/  background recordings
                                      (.wav of any sample rate, resampled); the words
                                      are split by config.data.split, the backgrounds
                                      too when there are at least 3 (else shared)
                       = "tfds"       TFDS speech_commands by name in config.data.data_dir:
                                      config.data.keyword is the trigger word, the other
                                      words are negatives, its background-noise clips
                                      (_silence_) the backgrounds

A split's word bank (its short recordings of words and its backgrounds) is
held in memory, float32: small beside the clips made of it (the default
train bank is 1.7 M samples, 6.7 MB; its 4,000 clips would be 160 M, 320 MB).
The config.data.num_clips clips of a split are never materialized: clip i is
composed when it is read, as the course composes its training examples
(synth.create_training_example), with the random generator seeded with
(config.seed, 1000 + split index, i), so it is the same clip whenever, in
whatever order and in whichever worker it is read (exact resume).
config.data.cache = "memory" composes a split once, at the start, into
memory instead.

A Split's inputs are int16 waveforms (samples,); its targets {"labels":
uint8 (Ty,), "events": int32 (max_triggers, 2)}, the (start, end) samples
of each trigger word (-1: none): three ClipColumns of one ClipComposer.
"""

import hashlib
import json
import os
import zipfile

import numpy as np
from absl import logging

from apps.core.columns import Column
from apps.core.data import Split, cached, load_tfds
from apps.core.errors import UserError
from apps.core.task import Data
from apps.trigger_word import audio, synth
from apps.trigger_word.features import geometry

CACHE_VERSION = 2  # 2: the cache holds the word banks, not composed clips
FOLDERS = ("activates", "negatives", "backgrounds")
BANK_KINDS = ("triggers", "negatives", "babble", "backgrounds")


def load(config):
    """Data (train, val, test) for config.data: columns of clips composed on read."""
    banks = word_banks(config)
    return Data(*(cached(clip_split(config, banks[s], i), config.data.cache)
                  for i, s in enumerate(synth.SPLITS)))


def clip_split(config, bank, index):
    """The Split of the config.data.num_clips[index] clips of `bank`."""
    d = config.data
    composer = ClipComposer(bank, geometry(config), d.label_steps, d.max_triggers,
                            d.max_negatives, seed=(config.seed, 1000 + index))
    rows = np.arange(d.num_clips[index])  # one index for the three columns
    return Split(ClipColumn(composer, "waves", rows),
                 {"labels": ClipColumn(composer, "labels", rows),
                  "events": ClipColumn(composer, "events", rows)})


class ClipComposer:
    """The clips of one split, each composed from its index when asked.

    Clip i is synth.create_training_example with the generator seeded with
    (*seed, i): a pure function of (config.seed, split, i) and the bank.
    `targets(i)` makes only the clip's first draws (synth.plan_clip: which
    words go where, about 40 us); `wave(i)` makes them again, then the
    audio (about 1 ms at the default 5 s at 8 kHz). So the three columns of
    a split each read what they need, the audio of a clip is composed once
    per example, and tf.data's parallel readers share no cache and no lock.
    """

    def __init__(self, bank, g, label_steps, max_triggers, max_negatives, seed):
        self.bank, self.geometry = bank, g
        self.label_steps, self.max_triggers = label_steps, max_triggers
        self.max_negatives, self.seed = max_negatives, tuple(seed)

    def _rng(self, i):
        return np.random.default_rng([*self.seed, int(i)])

    def _plan(self, rng):
        return synth.plan_clip(rng, self.bank, self.geometry, self.label_steps,
                               self.max_triggers, self.max_negatives)

    def targets(self, i):
        """(labels uint8 (Ty,), events int32 (max_triggers, 2)) of clip i."""
        _, labels, events = self._plan(self._rng(i))
        return labels, events

    def wave(self, i):
        """The int16 waveform (clip_samples,) of clip i."""
        rng = self._rng(i)
        words, _, _ = self._plan(rng)
        return audio.to_int16(synth.render_clip(rng, self.bank, self.geometry, words))


class ClipColumn(Column):
    """One part of the clips `rows` of a ClipComposer: "waves" (int16
    (clip_samples,)), "labels" (uint8 (Ty,)) or "events" (int32 (max_triggers, 2))."""

    def __init__(self, composer, part, rows):
        g = composer.geometry
        dtype, shape = {"waves": (np.int16, (g.clip_samples,)),
                        "labels": (np.uint8, (g.ty,)),
                        "events": (np.int32, (composer.max_triggers, 2))}[part]
        super().__init__(dtype, shape, rows)
        self.composer, self.part = composer, part

    def _read(self, row):
        if self.part == "waves":
            return self.composer.wave(row)
        labels, events = self.composer.targets(row)
        return labels if self.part == "labels" else events


def word_banks(config):
    """{split: bank} with bank = {"triggers", "negatives", "babble", "backgrounds"}."""
    source = config.data.source
    if source == "synthetic":
        return synthetic_banks(config)
    if source == "folder":
        return folder_banks(config)
    return tfds_banks(config)


def synthetic_banks(config):
    """The eSpeak NG banks of the three splits, from the cache when it holds them.

    eSpeak NG keeps some state from one utterance to the next, so a bank is
    a function of the calls its process made before: cached, every run (and
    a test's own process) gets the one a fresh process synthesized.
    """
    path = cache_path(config)
    if os.path.exists(path):
        try:
            banks = _read_cache(path)
            logging.info("trigger_word word banks from the cache %s", path)
            return banks
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            logging.warning("ignoring an unreadable cache %s (%s); building it again", path, e)
    banks = {s: synth.synthetic_bank(s, config, config.seed) for s in synth.SPLITS}
    _write_cache(path, banks)
    return banks


# --------------------------------------------------------------------------- folder


def read_folder(folder, sample_rate, trim_db=0.0):
    """The usable .wav files of `folder` (searched recursively, in name order) -> [waveforms].

    A corrupt, empty or silent wav is skipped with a warning naming the file,
    and the number skipped is logged; other files are ignored (and counted).
    A folder with no usable wav is a UserError giving those counts.
    """
    files = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        files += [os.path.join(root, n) for n in sorted(names) if not n.startswith(".")]
    wav = [f for f in files if f.lower().endswith(".wav")]
    waves, skipped = [], 0
    for path in wav:
        try:
            wave = audio.trim(audio.read_wav(path, sample_rate), sample_rate, trim_db)
            if not len(wave) or not np.any(wave):
                raise audio.BadAudio(f"{path}: silent (all samples are zero)")
        except audio.BadAudio as e:
            logging.warning("skipped %s", e)
            skipped += 1
            continue
        waves.append(wave)
    others = len(files) - len(wav)
    if skipped:
        logging.warning("%s: skipped %d of %d .wav files (corrupt, empty or silent)", folder,
                        skipped, len(wav))
    if others:
        logging.warning("%s: ignored %d file(s) that are not .wav", folder, others)
    if not waves:
        raise UserError(f"{folder}: no usable .wav files ({skipped} corrupt, empty or silent "
                        f"skipped; {others} other file(s) ignored)")
    return waves


def folder_banks(config):
    root = config.data.path
    if not root:
        raise UserError("config.data.path is empty: give the folder holding activates/, "
                        "negatives/ and backgrounds/")
    if not os.path.isdir(root):
        raise UserError(f"config.data.path = {root!r}: " + (
            "a file, expected a folder" if os.path.exists(root) else "no such folder"))
    for name in FOLDERS:
        if not os.path.isdir(os.path.join(root, name)):
            raise UserError(f"config.data.path = {root!r}: no {name}/ folder (expected "
                            f"{', '.join(f + '/' for f in FOLDERS)})")
    read = {}
    for name in FOLDERS:
        trim_db = 0.0 if name == "backgrounds" else config.data.trim_db
        read[name] = read_folder(os.path.join(root, name), config.data.sample_rate, trim_db)
    rng = np.random.default_rng(config.seed)
    parts = {name: _split_list(rng, read[name], config.data.split, os.path.join(root, name))
             for name in ("activates", "negatives")}
    if len(read["backgrounds"]) >= 3:
        parts["backgrounds"] = _split_list(rng, read["backgrounds"], config.data.split,
                                           os.path.join(root, "backgrounds"))
    else:
        parts["backgrounds"] = [read["backgrounds"]] * 3
    return {s: {"triggers": parts["activates"][i], "negatives": parts["negatives"][i],
                "babble": None, "backgrounds": parts["backgrounds"][i]}
            for i, s in enumerate(synth.SPLITS)}


def _split_list(rng, items, fractions, what):
    if len(items) < 3:
        raise UserError(f"{what}: {len(items)} usable .wav files; need at least 3 "
                        "(one each for train, val and test)")
    order = rng.permutation(len(items))
    counts = [max(1, int(round(f * len(items)))) for f in fractions[1:]]
    bounds = np.cumsum([len(items) - sum(counts)] + counts)[:-1]
    return [[items[i] for i in part] for part in np.split(order, bounds)]


# ----------------------------------------------------------------------------- TFDS


TFDS_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def tfds_banks(config):
    d = config.data
    banks = {}
    for split, tfds_split in TFDS_SPLITS.items():
        ds, info = load_tfds(d.name, d.data_dir, tfds_split)
        names = _audio_label_names(info, d.name)
        if d.keyword not in names:
            raise UserError(f"config.data.keyword = {d.keyword!r}: not a word of {d.name} "
                            f"({', '.join(names)})")
        rate = int(getattr(info.features["audio"], "sample_rate", 16000) or 16000)
        if d.max_examples:
            ds = ds.take(d.max_examples)
        bank = {"triggers": [], "negatives": [], "babble": None, "backgrounds": []}
        empty = 0
        for example in ds.as_numpy_iterator():
            raw = np.asarray(example["audio"])
            if raw.size == 0:
                empty += 1
                continue
            wave = raw.astype(np.float32) / (32768.0 if raw.dtype.kind == "i" else 1.0)
            if wave.ndim == 2:  # (samples, channels): averaged, as read_wav does
                wave = wave.mean(axis=1)
            wave = audio.resample(wave.reshape(-1), rate, d.sample_rate)
            label = int(example["label"])
            if not 0 <= label < len(names):
                raise UserError(f"{d.name} split {tfds_split!r}: label {label} is outside its "
                                f"{len(names)} classes (0..{len(names) - 1})")
            name = names[label]
            if name == "_silence_":
                bank["backgrounds"].append(wave)
                continue
            wave = audio.trim(wave, d.sample_rate, d.trim_db)
            if len(wave) and audio.rms(wave) > 1e-6:
                bank["triggers" if name == d.keyword else "negatives"].append(wave)
            else:
                empty += 1
        if empty:
            logging.warning("%s split %r: skipped %d examples with no samples or silent ones",
                            d.name, tfds_split, empty)
        for key in ("triggers", "negatives"):
            if not bank[key]:
                raise UserError(f"{d.name} split {tfds_split!r} has no "
                                f"{'examples of ' + repr(d.keyword) if key == 'triggers' else 'other words'}")
        if not bank["backgrounds"]:  # no noise clips: generated backgrounds with babble
            bank["backgrounds"] = None
            bank["babble"] = bank["negatives"]
        banks[split] = bank
    return banks


def _audio_label_names(info, name):
    """The word names of an audio data set with "audio" and class "label" features."""
    features = info.features
    names = getattr(features["label"], "names", None) if "label" in features else None
    if "audio" not in features or not names:
        raise UserError(f"config.data.name = {name!r}: expected an audio data set with "
                        f"'audio' and class 'label' features, as speech_commands "
                        f"(it has {', '.join(sorted(features)) or 'none'})")
    return list(names)


# ---------------------------------------------------------------------------- cache


def cache_dir(config):
    return config.data.cache_dir or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "dlsuite",
        "trigger_word")


def cache_path(config):
    """The cache file of the synthetic banks: named by what they are made from."""
    import espeakng_loader  # the voices' version is part of the key

    d = config.data
    key = {"version": CACHE_VERSION, "seed": config.seed, "sample_rate": d.sample_rate,
           "trigger_word": d.trigger_word, "negative_words": list(d.negative_words),
           "synthetic": d.synthetic.to_dict(), "babble": synth.BABBLE_WORDS,
           "espeak": os.path.getsize(espeakng_loader.get_library_path())}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return os.path.join(cache_dir(config), f"synthetic-{digest[:16]}.npz")


def _read_cache(path):
    """The banks of _write_cache: each list of waveforms is stored joined, with
    its lengths (a list that is None has no entry)."""
    banks = {}
    with np.load(path) as f:
        for split in synth.SPLITS:
            bank = dict.fromkeys(BANK_KINDS)
            for kind in BANK_KINDS:
                if f"{split}_{kind}" in f:
                    lengths = f[f"{split}_{kind}_lengths"]
                    bank[kind] = np.split(f[f"{split}_{kind}"], np.cumsum(lengths)[:-1])
            banks[split] = bank
    return banks


def _write_cache(path, banks):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + f".{os.getpid()}.tmp.npz"
        arrays = {}
        for split, bank in banks.items():
            for kind, waves in bank.items():
                if waves is not None:
                    arrays[f"{split}_{kind}"] = np.concatenate(waves)
                    arrays[f"{split}_{kind}_lengths"] = np.array([len(w) for w in waves])
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        logging.info("trigger_word word banks cached at %s", path)
    except OSError as e:
        logging.warning("could not cache the word banks at %s (%s)", path, e)
