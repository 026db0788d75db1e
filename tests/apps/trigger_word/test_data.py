"""Loading: wav files, the raw_data folder (with a corrupt and an empty file), TFDS
speech_commands (mocked), eSpeak NG synthesis and the on-disk cache of its words."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from scipy.io import wavfile

from apps.core.data import eval_batches
from apps.core.errors import UserError
from apps.trigger_word import audio, speech, synth
from apps.trigger_word import data as data_lib
from configs.trigger_word import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def _tone(hz, seconds, rate, level=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_read_wav_converts_formats_channels_and_rates(tmp_path):
    tone = _tone(300, 0.5, 16000)
    wavfile.write(tmp_path / "a.wav", 16000, np.round(tone * 32767).astype(np.int16))
    wavfile.write(tmp_path / "b.wav", 16000, np.stack([tone, tone], axis=1))  # float stereo
    a = audio.read_wav(str(tmp_path / "a.wav"), 8000)
    b = audio.read_wav(str(tmp_path / "b.wav"), 8000)
    assert a.shape == b.shape == (4000,) and a.dtype == np.float32
    expected = _tone(300, 0.5, 8000)
    np.testing.assert_allclose(a[200:-200], expected[200:-200], atol=2e-3)
    np.testing.assert_allclose(b, a, atol=1e-4)
    (tmp_path / "bad.wav").write_bytes(b"RIFF1234WAVEjunk")
    with pytest.raises(audio.BadAudio, match="bad.wav"):
        audio.read_wav(str(tmp_path / "bad.wav"), 8000)


def test_trim_cuts_silence_at_both_ends():
    wave = np.concatenate([np.zeros(800), _tone(200, 0.3, 8000), np.zeros(1600)])
    trimmed = audio.trim(wave, 8000, top_db=30)
    assert len(trimmed) == 2400 and np.abs(trimmed[:80]).max() > 0


def _raw_data(root, rate=16000):
    rng = np.random.default_rng(0)
    for name, count, hz in (("activates", 6, 500), ("negatives", 6, 1200), ("backgrounds", 2, 0)):
        os.makedirs(root / name)
        for i in range(count):
            wave = (_tone(hz + 20 * i, 0.4, rate) if hz else
                    0.01 * rng.standard_normal(3 * rate).astype(np.float32))
            wavfile.write(root / name / f"{name}_{i}.wav", rate,
                          np.round(wave * 32767).astype(np.int16))
    (root / "activates" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    wavfile.write(root / "negatives" / "empty.wav", rate, np.zeros(0, np.int16))


def test_folder_loader_skips_a_corrupt_and_an_empty_file_by_name(tmp_path, caplog):
    _raw_data(tmp_path)
    config = get_config("folder")
    config.data.path = str(tmp_path)
    config.data.clip_seconds = 2.0
    config.data.num_clips = (6, 3, 3)
    with caplog.at_level(logging.WARNING):
        banks = data_lib.word_banks(config)
    skipped = caplog.text
    assert "corrupt.wav" in skipped and "empty.wav" in skipped
    for split in synth.SPLITS:
        assert banks[split]["triggers"] and banks[split]["negatives"]
    assert sum(len(banks[s]["triggers"]) for s in synth.SPLITS) == 6  # the 6 good ones
    assert len(banks["train"]["triggers"]) == 4
    assert all(len(w) == 3200 for w in banks["train"]["triggers"])  # 0.4 s at 8 kHz
    assert len(banks["test"]["backgrounds"]) == 2  # only 2: shared by the splits
    # The skipped files were met when listing: the clips composed from the banks
    # (on read, config.data.cache = "none") all read, in training and evaluation.
    config.data.cache = "none"
    data = data_lib.load(config)
    assert data.train.inputs.shape == (6, 16000) and data.train.inputs.dtype == np.int16
    assert data.test.targets["labels"].shape == (3, 46)
    for split in (data.train, data.val, data.test):
        read = list(eval_batches(split, batch_size=2).as_numpy_iterator())
        waves = np.concatenate([x for x, _ in read])
        assert waves.shape == (len(split), 16000) and np.all(np.abs(waves).max(axis=1) > 0)


NAMES = ['down', 'go', 'left', 'no', 'off', 'on', 'right', 'stop', 'up', 'yes', '_silence_',
         '_unknown_']


def _speech_commands(self, split, **kwargs):
    """A stand-in for TFDS speech_commands: tones as words, noise as _silence_."""
    rng = np.random.default_rng(len(str(split)))
    audios, labels = [], []
    for i in range(24):
        label = i % 12
        if NAMES[label] == "_silence_":
            wave = 0.02 * rng.standard_normal(16000)
        else:
            wave = np.concatenate([np.zeros(2000), _tone(200 + 50 * label, 0.5, 16000),
                                   np.zeros(6000)])
        audios.append(np.round(wave * 32767).astype(np.int16))
        labels.append(label)
    return tf.data.Dataset.from_generator(
        lambda: ({"audio": a, "label": np.int64(y)} for a, y in zip(audios, labels,
                                                                    strict=True)),
        output_signature={"audio": tf.TensorSpec([None], tf.int16),
                          "label": tf.TensorSpec([], tf.int64)})


def test_speech_commands_keyword_is_the_trigger_and_silence_the_backgrounds():
    config = get_config("speech_commands")
    config.data.keyword = "yes"
    with tfds.testing.mock_data(as_dataset_fn=_speech_commands):
        banks = data_lib.tfds_banks(config)
    for split in synth.SPLITS:
        bank = banks[split]
        assert len(bank["triggers"]) == 2 and len(bank["backgrounds"]) == 2
        assert len(bank["negatives"]) == 20  # the 9 other words and _unknown_, twice
        # trimmed to the 0.5 s tone (to the 10 ms frame)
        assert all(abs(len(w) - 8000) <= 320 for w in bank["triggers"])  # 16 kHz
        spectrum = np.abs(np.fft.rfft(bank["triggers"][0]))
        assert np.argmax(spectrum) * 16000 / len(bank["triggers"][0]) == pytest.approx(650, abs=4)
    config.data.keyword = "hello"
    with tfds.testing.mock_data(as_dataset_fn=_speech_commands):
        with pytest.raises(UserError, match="config.data.keyword = 'hello'"):
            data_lib.tfds_banks(config)


SYNTH = """
import hashlib, sys
from apps.trigger_word import speech
waves = [speech.synthesize(w, 8000, "en-us", v) for w, v in (("activate", "f3"), ("coffee", "m1"))]
print(hashlib.sha1(b"".join(w.tobytes() for w in waves)).hexdigest())
"""


def test_espeak_synthesis_is_offline_deterministic_and_varied():
    runs = [subprocess.run([sys.executable, "-c", SYNTH], cwd=ROOT, capture_output=True,
                           text=True, timeout=60) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout  # the same calls give the same waveforms
    a = speech.synthesize("activate", 8000, "en-us", "f3", rate=175, pitch=60)
    slow = speech.synthesize("activate", 8000, "en-us", "f3", rate=100, pitch=60)
    other = speech.synthesize("activate", 8000, "en-gb-scotland", "m3", rate=175, pitch=20)
    assert 0.3 < len(a) / 8000 < 1.5 and audio.rms(a) > 0.01
    assert len(slow) > 1.3 * len(a)
    n = min(len(a), len(other))
    assert abs(np.corrcoef(a[:n], other[:n])[0, 1]) < 0.5  # another speaker sounds different


def test_synthetic_word_banks_are_cached_and_reloaded_identically(tmp_path):
    """The cache holds the spoken words (eSpeak NG's output depends on what the
    process said before), not the clips, which are composed from them on read."""
    config = get_config("tiny")
    config.data.cache_dir = str(tmp_path)
    first = data_lib.word_banks(config)
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith(".npz")
    size = os.path.getsize(tmp_path / files[0])
    words = sum(len(w) for bank in first.values() for kind in ("triggers", "negatives", "babble")
                for w in bank[kind])
    assert size < 4 * words + 10_000  # float32 samples and their lengths only
    config.data.num_clips = (480, 16, 16)  # the clips are not part of the cache
    second = data_lib.word_banks(config)
    assert os.listdir(tmp_path) == files
    for split in synth.SPLITS:
        assert first[split]["backgrounds"] is second[split]["backgrounds"] is None
        for kind in ("triggers", "negatives", "babble"):
            assert len(first[split][kind]) == len(second[split][kind]) >= 4
            for a, b in zip(first[split][kind], second[split][kind], strict=True):
                assert b.dtype == np.float32
                np.testing.assert_array_equal(a, b)
