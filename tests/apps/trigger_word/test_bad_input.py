"""What users get wrong with the trigger-word app, and what each gets back.

One table. Most rows set up a mistake (a config value, a raw_data folder, a
wav file, a TFDS name, a workdir, a mode) and name the words the user must
read in the single `error: ...` line; they run the entrypoint's work in this
process (tests/apps/cli.py's `user_error_of`). The `loads` rows are files the
app reads past: a corrupt or empty wav is skipped, named in a warning and
counted (issue 10), and wavs of odd rates and channels are resampled and mixed
down. An unknown field, which only the command line's parser meets, goes
through a real `python -m apps.trigger_word`.
"""

import contextlib
import logging

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from scipy.io import wavfile

from apps.core import config as config_lib
from apps.trigger_word import data as data_lib
from apps.trigger_word.task import TriggerWordTask
from configs.trigger_word import get_config
from tests.apps.bad_input import (
    TinyConfig,
    assert_contains,
    case,
    earlier_run,
    expect_unknown_field,
    expect_user_error,
    loads,
    nothing_started,
)

RATE = 16000  # the recordings' rate; the tiny config reads them at 8 kHz


tiny = TinyConfig(get_config)  # tiny(variant="tiny", section__field=value)


def tone(hz, seconds=0.4, rate=RATE, level=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def pcm16(wave):
    return np.round(np.clip(wave, -1, 1) * 32767).astype(np.int16)


def raw_data(tmp, edit=None, **changes):
    """The course's raw_data layout in tmp/raw: 4 activates, 4 negatives (0.4 s tones)
    and 2 backgrounds (3 s of noise) at 16 kHz, and the folder config reading it;
    `edit(root)` then spoils it."""
    root = tmp / "raw"
    rng = np.random.default_rng(0)
    for name, count in (("activates", 4), ("negatives", 4), ("backgrounds", 2)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            wave = (0.02 * rng.standard_normal(3 * RATE) if name == "backgrounds"
                    else tone(500 + 300 * (name == "negatives") + 20 * i))
            wavfile.write(root / name / f"{i}.wav", RATE, pcm16(wave))
    if edit:
        edit(root)
    config = tiny(**{"data__source": "folder", "data__path": str(root),
                     "data__num_clips": (16, 4, 4), **changes})
    return {"config": config}


def _write(path, content):
    """`edit` that writes bytes to root/<path>."""
    return lambda root: (root / path).write_bytes(content)


def _empty_folder(name):
    def edit(root):
        for path in (root / name).iterdir():
            path.unlink()
    return edit


def _remove_folder(name):
    def edit(root):
        _empty_folder(name)(root)
        (root / name).rmdir()
    return edit


def _zero_rate(path):
    """A wav header claiming 0 samples per second (and 0 bytes per second)."""
    def edit(root):
        wavfile.write(root / path, RATE, pcm16(tone(700)))
        data = bytearray((root / path).read_bytes())
        data[24:32] = bytes(8)
        (root / path).write_bytes(bytes(data))
    return edit


def _only_bad_activates(root):
    _empty_folder("activates")(root)
    (root / "activates" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt junk")
    wavfile.write(root / "activates" / "empty.wav", RATE, np.zeros(0, np.int16))
    (root / "activates" / "notes.txt").write_text("recorded on a phone")


def _mp3_only(root):
    _empty_folder("activates")(root)
    (root / "activates" / "activate.mp3").write_bytes(b"ID3\x03\x00fake mp3")


def _two_activates(root):
    for name in ("2.wav", "3.wav"):
        (root / "activates" / name).unlink()


def _skippable_files(root):
    """Five bad files among the good ones: corrupt, truncated, empty, silent, and a link
    to nothing."""
    (root / "activates" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt junk")
    whole = (root / "activates" / "0.wav").read_bytes()
    (root / "activates" / "truncated.wav").write_bytes(whole[:30])
    wavfile.write(root / "negatives" / "empty.wav", RATE, np.zeros(0, np.int16))
    wavfile.write(root / "negatives" / "silent.wav", RATE, np.zeros(RATE, np.int16))
    (root / "negatives" / "gone.wav").symlink_to(root / "nowhere.wav")


def _odd_formats(root):
    """The same words at other rates, sample formats and channel counts, and one
    header with a zero rate (skipped)."""
    _empty_folder("activates")(root)
    t = tone(500, rate=11025)
    wavfile.write(root / "activates" / "stereo_11025.wav", 11025, pcm16(np.stack([t, t], 1)))
    t = tone(500, rate=44100)
    wavfile.write(root / "activates" / "uint8_44100.wav", 44100,
                  np.round(t * 127 + 128).astype(np.uint8))
    t = tone(500, rate=22050)
    wavfile.write(root / "activates" / "float_3ch_22050.wav", 22050, np.stack([t, t, t], 1))
    t = tone(500, rate=48000)
    wavfile.write(root / "activates" / "int32_48000.wav", 48000,
                  np.round(t * (2 ** 31 - 1)).astype(np.int32))
    _zero_rate("activates/zero_rate.wav")(root)


def _odd_formats_read(banks):
    """Each read at 8 kHz: 0.4 s long, the 500 Hz tone where it was."""
    words = [w for s in ("train", "val", "test") for w in banks[s]["triggers"]]
    assert len(words) == 4
    for wave in words:
        assert wave.dtype == np.float32 and abs(len(wave) - 3200) <= 80  # trimmed to 10 ms
        peak = np.argmax(np.abs(np.fft.rfft(wave))) * 8000 / len(wave)
        assert peak == pytest.approx(500, abs=5)
        assert np.max(np.abs(wave)) == pytest.approx(0.5, abs=0.02)


def _corrupt_cache(tmp):
    config = tiny(data__cache_dir=str(tmp / "cache"))
    path = data_lib.cache_path(config)
    (tmp / "cache").mkdir()
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 a cache cut short by a full disk")
    return {"config": config}


def _cache_rebuilt(data):
    assert data.train.inputs.shape == (48, 16000) and data.test.targets["labels"].shape[0] == 16


# ----------------------------------------------------------------- TFDS (mocked)


WORDS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_",
         "_unknown_"]


def _speech_commands(tmp, labels=range(12), empty=0, **changes):
    """configs/trigger_word.py:speech_commands on a mocked TFDS: one 0.5 s tone per label
    (noise for _silence_), then `empty` examples with no samples."""
    def as_dataset(self, split, **kwargs):
        def examples():
            for label in labels:
                wave = (np.random.default_rng(label).normal(0, 0.02, RATE)
                        if label == 10 else tone(200 + 50 * label, 0.5))
                yield {"audio": pcm16(wave), "label": np.int64(label)}
            for _ in range(empty):
                yield {"audio": np.zeros(0, np.int16), "label": np.int64(0)}
        return tf.data.Dataset.from_generator(
            examples, output_signature={"audio": tf.TensorSpec([None], tf.int16),
                                        "label": tf.TensorSpec([], tf.int64)})

    config = tiny("speech_commands", data__data_dir=str(tmp), data__clip_seconds=2.0,
                  data__num_clips=(16, 4, 4), **changes)
    return {"config": config, "within": tfds.testing.mock_data(as_dataset_fn=as_dataset)}


def _not_an_audio_set(tmp):
    return {"config": tiny(data__source="tfds", data__name="mnist", data__data_dir=str(tmp)),
            "within": tfds.testing.mock_data(num_examples=2)}


# ------------------------------------------------------------------ workdirs


def _workdir_of(config):
    """A workdir whose config.json an earlier run with `config` wrote."""
    return lambda tmp: {"config": tiny(), "workdir": earlier_run(tmp, config)}


def _corrupt_workdir(tmp):
    return {"config": tiny(), "workdir": earlier_run(tmp, config_json="{")}


def _predict(what, trained=None, export=True):
    """--mode=predict on tmp/<what>, in a workdir with a stand-in export (the errors
    come before it is loaded) trained by `trained` (a config) if given."""
    def make(tmp):
        run = tmp / "run"
        (run / "export").mkdir(parents=True)
        if export:
            (run / "export" / "saved_model.pb").write_bytes(b"")
        if trained is not None:
            config_lib.save(trained, str(run))
        if what == "talk.wav":
            wavfile.write(tmp / what, RATE, pcm16(tone(500, 2.0)))
        elif what == "broken.wav":
            (tmp / what).write_bytes(b"RIFF....WAVEnothing")
        elif what == "empty.wav":
            wavfile.write(tmp / what, RATE, np.zeros(0, np.int16))
        elif what == "mp3s":
            (tmp / what).mkdir()
            (tmp / what / "talk.mp3").write_bytes(b"ID3 fake")
        elif what == "all-broken":
            (tmp / what).mkdir()
            for name in ("a.wav", "b.wav"):
                (tmp / what / name).write_bytes(b"RIFF....WAVEnothing")
        return {"config": tiny(), "mode": "predict", "input": tmp / what, "workdir": run}
    return make


CASES = [
    # ------------------------------------------------------------ config values
    case("threshold-above-one", lambda t: {"config": tiny(detect__threshold=1.5)},
         "config.detect.threshold = 1.5", "expected a number in (0, 1)"),
    case("sample-rate-too-low", lambda t: {"config": tiny(data__sample_rate=100)},
         "config.data.sample_rate = 100", "expected an integer in [4000, 192000]"),
    case("source-unknown", lambda t: {"config": tiny(data__source="mp3")},
         "config.data.source = 'mp3'", "expected one of 'synthetic', 'folder', 'tfds'"),
    case("clip-too-long", lambda t: {"config": tiny(data__clip_seconds=600.0)},
         "config.data.clip_seconds = 600.0", "seconds in [0.5, 60]"),
    case("no-negative-words", lambda t: {"config": tiny(data__negative_words=())},
         "config.data.negative_words = ()", "a non-empty list of words"),
    case("num-clips-not-three", lambda t: {"config": tiny(data__num_clips=(48, 16))},
         "config.data.num_clips = (48, 16)", "three clip counts > 0"),
    case("dropout-one", lambda t: {"config": tiny(model__dropout=1.0)},
         "config.model.dropout = 1.0", "expected a number in [0, 1)"),
    case("features-kind-unknown", lambda t: {"config": tiny(features__kind="mfcc")},
         "config.features.kind = 'mfcc'", "'spectrogram', 'log_mel'"),
    case("overlap-not-below-nfft", lambda t: {"config": tiny(features__overlap=200)},
         "config.features.overlap = 200", "fewer than config.features.nfft = 200"),
    case("too-many-mel-bins", lambda t: {"config": tiny(features__num_mel_bins=128)},
         "config.features.num_mel_bins = 128", "11 mel filters fall between the frequencies",
         "fewer mel bins or a larger nfft"),
    case("clip-shorter-than-the-kernel", lambda t: {"config": tiny(model__kernel_size=500)},
         "config.data.clip_seconds = 2.0", "too short for config.model.kernel_size = 500"),
    case("ty-not-the-network-s", lambda t: {"config": tiny(data__ty=99)},
         "config.data.ty = 99", "the network gives 46 output steps", "set 0 or 46"),
    case("label-longer-than-the-clip", lambda t: {"config": tiny(data__label_steps=45)},
         "config.data.label_steps = 45", "expected fewer than Ty - 1 = 45"),
    case("context-not-below-ty", lambda t: {"config": tiny(detect__context_steps=46)},
         "config.detect.context_steps = 46", "expected fewer than Ty = 46"),
    case("batch-larger-than-the-training-split",
         lambda t: {"config": tiny(train__batch_size=64)},
         "the training split has 48 examples", "config.train.batch_size = 64"),
    # ------------------------------------------------------- raw_data folder
    case("path-not-given", lambda t: raw_data(t, data__path=""),
         "config.data.path is empty", "activates/", "negatives/", "backgrounds/"),
    case("path-missing", lambda t: raw_data(t, data__path=str(t / "nope")),
         "config.data.path = ", "nope", "no such folder"),
    case("path-a-file", lambda t: raw_data(t, data__path=str(t / "raw" / "activates" / "0.wav")),
         "0.wav", "a file, expected a folder"),
    case("activates-missing", lambda t: raw_data(t, edit=_remove_folder("activates")),
         "no activates/ folder", "expected activates/, negatives/, backgrounds/"),
    case("negatives-missing", lambda t: raw_data(t, edit=_remove_folder("negatives")),
         "no negatives/ folder"),
    case("backgrounds-missing", lambda t: raw_data(t, edit=_remove_folder("backgrounds")),
         "no backgrounds/ folder"),
    case("backgrounds-empty", lambda t: raw_data(t, edit=_empty_folder("backgrounds")),
         "backgrounds: no usable .wav files", "0 other file(s)"),
    case("activates-only-corrupt-or-empty", lambda t: raw_data(t, edit=_only_bad_activates),
         "activates: no usable .wav files", "2 corrupt, empty or silent skipped",
         "1 other file(s) ignored"),
    case("activates-mp3-only", lambda t: raw_data(t, edit=_mp3_only),
         "activates: no usable .wav files", "1 other file(s) ignored"),
    case("too-few-activates", lambda t: raw_data(t, edit=_two_activates),
         "activates: 2 usable .wav files; need at least 3", "train, val and test"),
    loads("corrupt-truncated-empty-silent-wavs-skipped",
          lambda t: raw_data(t, edit=_skippable_files),
          "skipped", "corrupt.wav: not a readable wav file", "truncated.wav",
          "empty.wav: the wav file holds no samples", "silent.wav: silent", "gone.wav: not a readable wav file",
          "activates: skipped 2 of 6 .wav files", "negatives: skipped 3 of 7 .wav files"),
    loads("odd-rates-formats-and-channels-resampled", lambda t: raw_data(t, edit=_odd_formats),
          "zero_rate.wav: sample rate 0 Hz in the wav header; expected > 0",
          "activates: skipped 1 of 5 .wav files", check=_odd_formats_read),
    loads("corrupt-data-cache-rebuilt", _corrupt_cache,
          "ignoring an unreadable cache", "building it again", check=_cache_rebuilt),
    # --------------------------------------------------------------------- TFDS
    case("tfds-name-unknown", lambda t: {"config": tiny("speech_commands",
                                                         data__name="speech_comands")},
         "config.data.name = 'speech_comands': not a TFDS data set"),
    case("tfds-not-prepared", lambda t: {"config": tiny("speech_commands",
                                                         data__data_dir=str(t))},
         "TFDS data set 'speech_commands' is not prepared in config.data.data_dir"),
    case("tfds-keyword-not-a-word", lambda t: _speech_commands(t, data__keyword="activate"),
         "config.data.keyword = 'activate': not a word of speech_commands", "yes"),
    case("tfds-not-an-audio-set", _not_an_audio_set,
         "config.data.name = 'mnist': expected an audio data set", "'audio' and class 'label'"),
    case("tfds-label-out-of-range", lambda t: _speech_commands(t, labels=[9, 0, 20]),
         "speech_commands split 'train': label 20 is outside its 12 classes (0..11)"),
    case("tfds-keyword-absent-from-a-split", lambda t: _speech_commands(t, labels=[0, 1, 10]),
         "speech_commands split 'train' has no examples of 'yes'"),
    loads("tfds-empty-examples-skipped", lambda t: _speech_commands(t, empty=2),
          "speech_commands split 'train': skipped 2 examples with no samples"),
    # ------------------------------------------------------------------ workdir
    case("workdir-of-another-app",
         _workdir_of(config_lib.common_config("classification")),
         "holds a run of the 'classification' app, not 'trigger_word'"),
    case("workdir-of-another-model", _workdir_of(tiny(model__units=32)),
         "was trained with a different config.model"),
    case("workdir-config-corrupt", _corrupt_workdir,
         "config.json: unreadable config from an earlier run"),
    # -------------------------------------------------------------------- modes
    case("mode-unknown", lambda t: {"config": tiny(), "mode": "listen"},
         "--mode=listen: expected one of train, eval, predict, export, tune"),
    case("predict-without-input", lambda t: {"config": tiny(), "mode": "predict"},
         "--mode=predict needs --input=PATH"),
    case("predict-missing-path", _predict("none.wav"),
         "--input=", "none.wav: no such file or folder"),
    case("predict-folder-without-wavs", _predict("mp3s"), "mp3s: no .wav files"),
    case("predict-before-training", _predict("talk.wav", export=False),
         "no SavedModel in", "train or --mode=export first"),
    case("predict-corrupt-wav", _predict("broken.wav"),
         "broken.wav: not a readable wav file"),
    case("predict-empty-wav", _predict("empty.wav"),
         "empty.wav: the wav file holds no samples"),
    case("predict-folder-all-corrupt", _predict("all-broken"),
         "all-broken: none of its 2 .wav files is readable"),
    case("predict-export-corrupt", _predict("talk.wav"),
         "export: not a loadable SavedModel", "re-export it with --mode=export"),
    case("predict-other-sample-rate",
         _predict("talk.wav", trained=tiny(data__sample_rate=16000)),
         "was trained with a different config.data.sample_rate",
         "16000 there, 8000 here"),
    case("predict-other-features",
         _predict("talk.wav", trained=tiny(features__kind="spectrogram")),
         "was trained with a different config.features",
         "kind: 'spectrogram' there, 'log_mel' here"),
    case("eval-before-training", lambda t: {"config": tiny(), "mode": "eval"},
         "no checkpoint in", "train first"),
    case("export-before-training", lambda t: {"config": tiny(), "mode": "export"},
         "no checkpoint in", "train first"),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One synthetic-data cache for the rows that get as far as the data."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("row", CASES)
def test_bad_input_is_one_line_or_a_counted_skip(tmp_path, cache, caplog, row):
    made = row.make(tmp_path)
    config = made["config"]
    if not config.data.cache_dir:
        config.data.cache_dir = cache
    if row.check is None:
        expect_user_error(TriggerWordTask, made, tmp_path, row.needles)
        return
    with (made.get("within") or contextlib.nullcontext(), nothing_started(tmp_path / "run"),
          caplog.at_level(logging.WARNING)):
        source = config.data.source
        row.check(data_lib.load(config) if source == "synthetic" else data_lib.word_banks(config))
    assert_contains(caplog.text, row.needles)


def test_unknown_config_field_on_the_command_line(tmp_path):
    expect_unknown_field("trigger_word", tmp_path, "--config.data.sample_rat=8000")
