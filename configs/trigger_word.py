"""Trigger-word detection ("activate").

    python -m apps.trigger_word --config=configs/trigger_word.py --workdir=runs/trigger_word
    python -m apps.trigger_word --config=configs/trigger_word.py --workdir=runs/trigger_word \\
        --mode=predict --input=recording.wav
    python -m apps.trigger_word --config=configs/trigger_word.py:tiny --workdir=/tmp/tw

Variants (after the colon): "" (default: 5-second clips at 8 kHz of eSpeak NG
speech over generated backgrounds, the course's network with stride 4 over
10 ms frames, i.e. 40 ms output steps), "tiny" (seconds; what the tests use),
"course" (the course's dimensions: 10-second clips at 44.1 kHz, nfft 200,
overlap 120, Tx 5511 frames of 101 frequencies, Ty 1375 steps, labels of 50
steps, refractory period 75 steps, Dropout(0.8)), "folder" (set
--config.data.path to a folder with activates/, negatives/, backgrounds/) and
"speech_commands" (TFDS by name; set --config.data.data_dir and
--config.data.keyword).
"""

import ml_collections

from apps.core.config import (
    Rule,
    check_source_fields,
    common_config,
    fractions_summing_to_one,
    int_in,
    non_negative_float,
    non_negative_int,
    one_of,
    positive_float,
    positive_fraction,
    positive_int,
    probability,
)
from apps.core.errors import UserError
from apps.core.optim import optimizer_config
from apps.trigger_word import features as features_lib
from apps.trigger_word.synth import NEGATIVE_WORDS

# What each field must hold (apps.core.config.check).
RULES = {
    "data.source": one_of("synthetic", "folder", "tfds"),
    "data.cache": one_of("none", "memory"),
    "data.split": fractions_summing_to_one,
    "data.max_examples": non_negative_int,
    "data.trigger_word": Rule(lambda v: isinstance(v, str) and v.strip(), "a word"),
    "data.negative_words": Rule(lambda v: isinstance(v, (list, tuple)) and len(v) >= 1
                                and all(isinstance(w, str) and w.strip() for w in v),
                                "a non-empty list of words"),
    "data.synthetic.trigger_utterances": positive_int,
    "data.synthetic.negative_utterances": positive_int,
    "data.synthetic.babble_utterances": positive_int,
    "data.synthetic.eval_fraction": positive_fraction,
    "data.sample_rate": int_in(4000, 192000),
    "data.clip_seconds": Rule(lambda v: 0.5 <= v <= 60, "seconds in [0.5, 60]"),
    "data.num_clips": Rule(lambda v: len(v) == 3 and all(isinstance(n, int) and n > 0
                                                         for n in v),
                           "three clip counts > 0 (train, val, test)"),
    "data.max_triggers": int_in(1, 20),
    "data.max_negatives": int_in(0, 20),
    "data.label_steps": positive_int,
    "data.ty": non_negative_int,
    "data.trim_db": non_negative_float,
    "features.kind": one_of("spectrogram", "log_mel"),
    "features.nfft": int_in(16, 8192),
    "features.overlap": non_negative_int,
    "features.num_mel_bins": int_in(4, 512),
    "model.filters": positive_int,
    "model.kernel_size": positive_int,
    "model.stride": positive_int,
    "model.units": positive_int,
    "model.dropout": probability,
    "augment.gain_db": non_negative_float,
    "detect.threshold": Rule(lambda v: 0 < v < 1, "a number in (0, 1)"),
    "detect.refractory_steps": positive_int,
    "detect.context_steps": non_negative_int,
    "eval.tolerance_steps": non_negative_int,
    "eval.batch_size": positive_int,
    "eval.clips_shown": non_negative_int,
    "optimizer.learning_rate": positive_float,
}


def check(config):
    """The checks across fields: the clip, its spectrogram frames, the network's
    output steps (Ty) and the labels and detection windows measured in them fit
    together (apps.trigger_word.features.geometry)."""
    check_source_fields(config.data, {"path": ("folder",), "data_dir": ("tfds",)})
    f, d = config.features, config.data
    if f.overlap >= f.nfft:
        raise UserError(f"config.features.overlap = {f.overlap}: expected fewer than "
                        f"config.features.nfft = {f.nfft} samples")
    g = features_lib.geometry(config)
    if g.clip_samples < f.nfft or g.tx < g.kernel:
        raise UserError(f"config.data.clip_seconds = {d.clip_seconds}: too short for "
                        f"config.model.kernel_size = {g.kernel} frames")
    if d.ty and d.ty != g.ty:
        raise UserError(f"config.data.ty = {d.ty}: the network gives {g.ty} output steps for "
                        f"these clips (set 0 or {g.ty})")
    if d.label_steps >= g.ty - 1:
        raise UserError(f"config.data.label_steps = {d.label_steps}: expected fewer than "
                        f"Ty - 1 = {g.ty - 1}")
    empty = features_lib.empty_mel_filters(g) if f.kind == "log_mel" else 0
    if empty:
        raise UserError(
            f"config.features.num_mel_bins = {f.num_mel_bins}: {empty} mel filters fall "
            "between the frequencies "
            f"of config.features.nfft = {f.nfft} ({d.sample_rate / f.nfft:g} Hz apart); "
            "expected fewer mel bins or a larger nfft")
    if config.detect.context_steps >= g.ty:
        raise UserError(f"config.detect.context_steps = {config.detect.context_steps}: "
                        f"expected fewer than Ty = {g.ty}")


def get_config(variant=""):
    config = common_config("trigger_word")
    # --mode=tune's default search (apps.core.tune): Adam's learning rate and
    # beta_1, and dropout.
    config.tune.space = ("optimizer.learning_rate = log_uniform(1e-4, 1e-1); "
                         "optimizer.beta_1 = one_minus_log(0.8, 0.99); "
                         "model.dropout = uniform(0, 0.5)")

    config.data = ml_collections.ConfigDict()
    config.data.source = "synthetic"  # synthetic | folder | tfds
    config.data.path = ""  # source=folder: holds activates/, negatives/, backgrounds/
    config.data.name = "speech_commands"  # source=tfds
    config.data.data_dir = ""  # TFDS data_dir ('' = TFDS's default)
    config.data.keyword = "yes"  # source=tfds: the word used as the trigger
    config.data.max_examples = 0  # source=tfds: per split; 0 = all
    config.data.split = (0.7, 0.15, 0.15)  # source=folder: words to train, val, test
    config.data.cache_dir = ""  # source=synthetic: its spoken words; '' = ~/.cache/dlsuite/trigger_word
    # none: each clip composed when a batch needs it, so memory does not grow with
    # num_clips; memory: every clip composed once, at the start, and held (the
    # default's 4,000 clips: 320 MB, 6 s; training 1.3x faster on a 2-core CPU,
    # where composing on read takes CPU time from the training step)
    config.data.cache = "memory"
    config.data.trigger_word = "activate"  # source=synthetic
    config.data.negative_words = NEGATIVE_WORDS  # source=synthetic
    config.data.synthetic = ml_collections.ConfigDict()
    config.data.synthetic.trigger_utterances = 160  # training utterances of the trigger word
    config.data.synthetic.negative_utterances = 160
    config.data.synthetic.babble_utterances = 100
    config.data.synthetic.eval_fraction = 0.35  # val and test banks, relative to train's
    config.data.sample_rate = 8000
    config.data.clip_seconds = 5.0
    config.data.num_clips = (4000, 120, 240)  # train, val, test clips
    config.data.max_triggers = 3  # 0..max_triggers trigger words per clip (course: 4)
    config.data.max_negatives = 2  # 0..max_negatives negative words per clip
    config.data.label_steps = 10  # y = 1 for this many steps after each trigger word
    config.data.ty = 0  # output steps per clip; 0 = what the network gives (checked if set)
    config.data.trim_db = 30.0  # words: cut leading/trailing audio this far below the peak

    config.features = ml_collections.ConfigDict()
    config.features.kind = "spectrogram"  # spectrogram | log_mel
    config.features.nfft = 200
    config.features.overlap = 120  # hop = nfft - overlap samples
    config.features.num_mel_bins = 40  # kind=log_mel

    config.model = ml_collections.ConfigDict()
    config.model.filters = 196
    config.model.kernel_size = 15
    config.model.stride = 4
    config.model.units = 128
    config.model.dropout = 0.2  # a drop rate (the course's Dropout(0.8) drops 80%)

    config.augment = ml_collections.ConfigDict()
    config.augment.gain_db = 6.0  # random gain in [-gain_db, +gain_db] dB per training clip

    config.detect = ml_collections.ConfigDict()
    config.detect.threshold = 0.5
    config.detect.refractory_steps = 14  # at most one firing per this many steps (course: 75)
    config.detect.context_steps = 40  # streaming: window overlap, in output steps

    config.eval = ml_collections.ConfigDict()
    config.eval.tolerance_steps = 10  # a hit: a firing up to label_steps + this after a word
    config.eval.batch_size = 64
    config.eval.clips_shown = 3  # TensorBoard: spectrogram/label/prediction plots and audio

    config.optimizer = optimizer_config("adam", learning_rate=2e-3, schedule="warmup_cosine")
    config.optimizer.warmup_epochs = 0.5
    config.optimizer.clipnorm = 1.0

    config.train.batch_size = 32
    config.train.epochs = 20
    config.train.checkpoint_every = 50

    # The diagnosis at the end of a run (apps.core.diagnosis): the error is 1 - frame F1.
    config.diagnosis.metric = "frame_f1"
    config.diagnosis.metric_is_error = False
    # Synthetic clips: the labels follow from where the (clearly spoken) words
    # were placed, so 0 (not measured).
    config.diagnosis.human_level_error = 0.0

    if variant == "tiny":
        config.data.clip_seconds = 2.0
        config.data.num_clips = (48, 16, 16)
        config.diagnosis.train_dev_fraction = 0.0  # too few clips to hold any out
        config.data.max_triggers = 2
        config.data.max_negatives = 1
        config.data.synthetic.trigger_utterances = 12
        config.data.synthetic.negative_utterances = 12
        config.data.synthetic.babble_utterances = 8
        config.data.synthetic.eval_fraction = 0.5
        config.data.cache = "none"  # the tests train on clips composed on read
        config.features.kind = "log_mel"
        config.model.filters = 16
        config.model.units = 12
        config.model.dropout = 0.1
        config.detect.context_steps = 12
        config.train.batch_size = 16
        config.train.epochs = 2
        config.train.checkpoint_every = 2
        config.train.log_every = 1
        config.optimizer.warmup_epochs = 0.0
        config.eval.clips_shown = 2
    elif variant == "course":
        config.data.sample_rate = 44100
        config.data.clip_seconds = 10.0
        config.data.num_clips = (1000, 100, 100)
        config.data.max_triggers = 4
        config.data.label_steps = 50
        config.data.ty = 1375
        config.model.dropout = 0.8
        config.detect.refractory_steps = 75
        config.detect.context_steps = 275
        config.eval.tolerance_steps = 25
        config.eval.batch_size = 16
        config.optimizer = optimizer_config("adam", learning_rate=1e-4)
        config.train.batch_size = 16
        config.train.epochs = 20
    elif variant == "folder":
        config.data.source = "folder"
        config.data.cache = "none"  # real data: as many clips as asked, none held
        config.diagnosis.human_level_error = None  # your recordings: set it
    elif variant == "speech_commands":
        config.data.source = "tfds"
        config.diagnosis.human_level_error = None  # set it
        config.data.cache = "none"
        config.data.max_examples = 10000  # per split, to bound memory
        config.data.sample_rate = 16000
        config.data.num_clips = (4000, 400, 400)
        config.features.nfft = 400
        config.features.overlap = 240
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: '', tiny, course, folder, "
                         "speech_commands")
    return config
