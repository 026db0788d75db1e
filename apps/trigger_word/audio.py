"""Waveforms: wav files in and out, resampling, trimming, levels, the chime.

Waveforms are float32 NumPy arrays in [-1, 1], mono, at the config's sample
rate (held as int16 in memory: x_int16 = round(32767 * clip(x, -1, 1))).
"""

import math
import os
import warnings

import numpy as np
from scipy import signal
from scipy.io import wavfile

from apps.core.errors import UserError


class BadAudio(ValueError):
    """A wav file that cannot be used (corrupt, empty, not audio)."""


def read_wav(path, sample_rate):
    """A wav file (PCM 8/16/24/32-bit or float, any rate, mono or not) -> float32 mono.

    Channels are averaged and the result resampled to `sample_rate`.
    Raises BadAudio naming the file if it is corrupt or holds no samples.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except Exception as e:  # noqa: BLE001 - scipy raises many kinds for a corrupt file
        raise BadAudio(f"{path}: not a readable wav file ({str(e).splitlines()[0]})") from None
    if data.size == 0:
        raise BadAudio(f"{path}: the wav file holds no samples")
    if rate <= 0:
        raise BadAudio(f"{path}: sample rate {rate} Hz in the wav header; expected > 0")
    if data.dtype == np.uint8:
        wave = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        wave = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    else:
        wave = data.astype(np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if not np.all(np.isfinite(wave)):
        raise BadAudio(f"{path}: the wav file holds non-finite samples")
    return resample(wave, rate, sample_rate)


def write_wav(path, wave, sample_rate):
    """float32 waveform -> 16-bit PCM wav (written to a temp file, then renamed)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        wavfile.write(f, sample_rate, to_int16(wave))
    os.replace(tmp, path)


def to_int16(wave):
    return np.round(np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)


def resample(wave, rate, target_rate):
    """Polyphase resampling from `rate` to `target_rate` (scipy.signal.resample_poly)."""
    wave = np.asarray(wave, np.float32)
    if int(rate) == int(target_rate):
        return wave
    g = math.gcd(int(rate), int(target_rate))
    return signal.resample_poly(wave, int(target_rate) // g, int(rate) // g).astype(np.float32)


def rms(wave):
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)) + 1e-20))


def set_level(wave, dbfs):
    """Scales `wave` so its RMS level is `dbfs` decibels below full scale."""
    return (wave * (10.0 ** (dbfs / 20.0) / rms(wave))).astype(np.float32)


def trim(wave, sample_rate, top_db=30.0, frame_seconds=0.01):
    """Cuts the leading and trailing parts quieter than the loudest 10 ms frame - top_db.

    0 for `top_db` keeps the waveform as it is.
    """
    if not top_db or len(wave) == 0:
        return wave
    frame = max(1, int(frame_seconds * sample_rate))
    n = len(wave) // frame
    if n == 0:
        return wave
    energy = np.mean(np.square(wave[:n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    loud = np.flatnonzero(10 * np.log10(energy + 1e-20) >= 10 * np.log10(energy.max() + 1e-20)
                          - top_db)
    return wave[loud[0] * frame:(loud[-1] + 1) * frame]


def chime(sample_rate, seconds=0.3):
    """A short bell: 880 Hz and 1320 Hz with an exponential decay."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    bell = np.sin(2 * np.pi * 880 * t) + 0.5 * np.sin(2 * np.pi * 1320 * t)
    return (0.5 * bell * np.exp(-t / (seconds / 4))).astype(np.float32)


def chime_on_activate(wave, times, sample_rate):
    """The input with a chime overlaid at each detection time (the course's chime_on_activate)."""
    out = np.array(wave, np.float32, copy=True)
    bell = chime(sample_rate)
    for t in times:
        start = int(round(t * sample_rate))
        if 0 <= start < len(out):
            part = bell[:len(out) - start]
            out[start:start + len(part)] += part
    return np.clip(out, -1.0, 1.0)


def wav_files(path):
    """The .wav files at `path` (a file, or a folder searched recursively), sorted."""
    if os.path.isfile(path):
        return [path]
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names
                   if f.lower().endswith(".wav") and not f.startswith("."))
    if not files:
        raise UserError(f"{path}: no .wav files")
    return files
