"""Offline speech synthesis with eSpeak NG, through its C API (ctypes).

The `espeakng-loader` package ships eSpeak NG's shared library and its voice
data; nothing is downloaded. Speech is synthesized to memory (the library's
synchronous mode hands each chunk of 16-bit samples to a callback) at the
library's rate (22,050 Hz) and resampled to the rate asked for.

A speaker is a language (an accent of English) and a voice variant (m1..m8,
f1..f5, klatt, ... : formant, breathiness and pitch settings), and each
utterance also draws its own rate (words per minute), pitch and pitch range.

Determinism: the library is seeded at start-up, but it keeps some state from
one utterance to the next, so the waveforms are a function of the sequence of
calls made by the process (the data builder makes them in a fixed order from a
fresh process; its result is then cached).
"""

import ctypes
import threading

import numpy as np

from apps.trigger_word import audio

# English accents eSpeak NG has.
LANGUAGES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
             "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# Voice variants (espeak-ng-data/voices/!v) with a natural voiced sound; the
# whispering, croaking and robotic ones are left out.
VARIANTS = (
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Denis", "Diogo", "Gene",
    "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike",
    "Nguyen", "Reed", "RicishayMax", "RicishayMax2", "Storm", "Tweaky", "adam", "anika",
    "announcer", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed",
    "edward", "edward2", "f1", "f2", "f3", "f4", "f5", "fast", "grandma", "grandpa", "gustave",
    "ian", "iven", "iven2", "iven3", "iven4", "john", "kaukovalta", "klatt", "klatt2", "klatt3",
    "klatt4", "klatt5", "klatt6", "linda", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "marcelo", "max", "michel", "miguel", "mike2", "norbert", "pablo", "paul", "pedro",
    "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3", "travis",
    "victor", "zac",
)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


class _Engine:
    """The process's one eSpeak NG instance (the C library keeps global state)."""

    def __init__(self):
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                          espeakng_loader.get_data_path().encode(), 0)
        if self.rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise")
        # eSpeak NG draws random numbers (breath noise, flutter) and keeps some state
        # from one utterance to the next; with a fixed seed at start-up, a process that
        # makes the same calls in the same order gets the same waveforms.
        lib.espeak_ng_SetRandSeed(ctypes.c_long(0))
        self.chunks = []

        def collect(samples, count, _events):
            if count > 0 and samples:
                self.chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
            return 0

        self.callback = _CALLBACK(collect)  # kept alive as long as the engine
        lib.espeak_SetSynthCallback(self.callback)
        self.lib = lib
        self.lock = threading.Lock()

    def say(self, text, voice, rate, pitch, pitch_range):
        with self.lock:
            lib = self.lib
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}")
            for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range),
                                     (_VOLUME, 100)):
                lib.espeak_SetParameter(parameter, int(value), 0)
            self.chunks = []
            data = text.encode()
            lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
            lib.espeak_Synchronize()
            samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
            return samples.astype(np.float32) / 32768.0


_ENGINE = None


def engine():
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def synthesize(text, sample_rate, language="en", variant="m1", rate=175, pitch=50,
               pitch_range=50):
    """`text` spoken by one speaker -> float32 waveform at `sample_rate`.

    Args:
      language: one of LANGUAGES (any eSpeak NG voice name works).
      variant: one of VARIANTS.
      rate: words per minute (80..450).
      pitch, pitch_range: 0..100 (eSpeak NG's defaults are 50).
    """
    e = engine()
    wave = e.say(text, f"{language}+{variant}", rate, pitch, pitch_range)
    return audio.resample(wave, e.rate, sample_rate)
