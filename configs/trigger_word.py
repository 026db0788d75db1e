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

from apps.core.config import common_config
from apps.core.optim import optimizer_config
from apps.trigger_word.synth import NEGATIVE_WORDS


def get_config(variant=""):
    config = common_config("trigger_word")

    config.data = ml_collections.ConfigDict()
    config.data.source = "synthetic"  # synthetic | folder | tfds
    config.data.path = ""  # source=folder: holds activates/, negatives/, backgrounds/
    config.data.name = "speech_commands"  # source=tfds
    config.data.data_dir = ""  # TFDS data_dir ('' = TFDS's default)
    config.data.keyword = "yes"  # source=tfds: the word used as the trigger
    config.data.max_examples = 0  # source=tfds: per split; 0 = all
    config.data.split = (0.7, 0.15, 0.15)  # source=folder: words to train, val, test
    config.data.cache_dir = ""  # source=synthetic; '' = ~/.cache/dlsuite/trigger_word
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

    if variant == "tiny":
        config.data.clip_seconds = 2.0
        config.data.num_clips = (48, 16, 16)
        config.data.max_triggers = 2
        config.data.max_negatives = 1
        config.data.synthetic.trigger_utterances = 12
        config.data.synthetic.negative_utterances = 12
        config.data.synthetic.babble_utterances = 8
        config.data.synthetic.eval_fraction = 0.5
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
    elif variant == "speech_commands":
        config.data.source = "tfds"
        config.data.max_examples = 10000  # per split, to bound memory
        config.data.sample_rate = 16000
        config.data.num_clips = (4000, 400, 400)
        config.features.nfft = 400
        config.features.overlap = 240
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: '', tiny, course, folder, "
                         "speech_commands")
    return config
