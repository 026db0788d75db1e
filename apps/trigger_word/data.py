"""Trigger-word data: word banks from one of three sources, composed into clips.

    config.data.source = "synthetic"  the embedded default: eSpeak NG speech and
                                      generated backgrounds (apps/trigger_word/synth.py);
                                      cached under config.data.cache_dir
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

Each split is config.data.num_clips clips of clip_seconds, composed as the
course does (synth.create_training_example). A Split's inputs are int16
waveforms (N, samples); its targets {"labels": uint8 (N, Ty), "events": int32
(N, max_triggers, 2)}, the (start, end) samples of each trigger word (-1: none).
"""

import hashlib
import json
import os
import zipfile

import numpy as np
from absl import logging

from apps.core.data import Split, load_tfds
from apps.core.errors import UserError
from apps.core.task import Data
from apps.trigger_word import audio, synth
from apps.trigger_word.features import geometry

CACHE_VERSION = 1
FOLDERS = ("activates", "negatives", "backgrounds")


def load(config):
    """Data (train, val, test) for config.data; the synthetic set is cached on disk."""
    path = None
    if config.data.source == "synthetic":
        path = cache_path(config)
        if os.path.exists(path):
            try:
                with np.load(path) as f:
                    logging.info("trigger_word data from the cache %s", path)
                    return Data(*(Split(f[f"{s}_waves"], {"labels": f[f"{s}_labels"],
                                                          "events": f[f"{s}_events"]})
                                  for s in synth.SPLITS))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
                logging.warning("ignoring an unreadable cache %s (%s); building it again",
                                path, e)
    banks = word_banks(config)
    splits = [compose(config, banks[s], i) for i, s in enumerate(synth.SPLITS)]
    if path:
        _write_cache(path, splits)
    return Data(*splits)


def compose(config, bank, index):
    d = config.data
    waves, labels, events = synth.compose(
        bank, d.num_clips[index], geometry(config), d.label_steps, d.max_triggers,
        d.max_negatives, seed=[config.seed, 1000 + index])
    return Split(waves, {"labels": labels, "events": events})


def word_banks(config):
    """{split: bank} with bank = {"triggers", "negatives", "babble", "backgrounds"}."""
    source = config.data.source
    if source == "synthetic":
        return {s: synth.synthetic_bank(s, config, config.seed) for s in synth.SPLITS}
    if source == "folder":
        return folder_banks(config)
    return tfds_banks(config)


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
    import espeakng_loader  # the voices' version is part of the key

    key = {"version": CACHE_VERSION, "seed": config.seed,
           "data": {k: v for k, v in config.data.to_dict().items() if k != "cache_dir"},
           "geometry": repr(geometry(config)),
           "espeak": os.path.getsize(espeakng_loader.get_library_path())}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return os.path.join(cache_dir(config), f"synthetic-{digest[:16]}.npz")


def _write_cache(path, splits):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + f".{os.getpid()}.tmp.npz"
        arrays = {}
        for name, split in zip(synth.SPLITS, splits, strict=True):
            arrays[f"{name}_waves"] = split.inputs
            arrays[f"{name}_labels"] = split.targets["labels"]
            arrays[f"{name}_events"] = split.targets["events"]
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        logging.info("trigger_word data cached at %s", path)
    except OSError as e:
        logging.warning("could not cache the data at %s (%s)", path, e)
