"""Spectrogram shapes and values, the network's size, the config geometry."""

import numpy as np
import pytest

from apps.trigger_word import features as features_lib
from apps.trigger_word import model as model_lib
from configs.trigger_word import get_config


def test_course_dimensions_give_5511_by_101_frames_and_1375_steps():
    g = features_lib.geometry(get_config("course"))
    assert (g.clip_samples, g.tx, g.num_features, g.ty) == (441000, 5511, 101, 1375)
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 441000)).astype(np.float32)
    assert features_lib.spectrogram(wave, g).shape == (1, 5511, 101)


def test_spectrogram_equals_a_numpy_transcription():
    g = features_lib.Geometry(sample_rate=8000, clip_samples=1000, nfft=200, frame_step=80,
                              kernel=15, stride=4)
    x = np.random.default_rng(1).standard_normal(1000)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(200) / 200)  # periodic Hann
    frames = np.stack([x[t * 80:t * 80 + 200] * window for t in range(g.tx)])
    expected = np.log(np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-6)
    got = features_lib.spectrogram(x.astype(np.float32), g).numpy()
    assert got.shape == (11, 101)
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_log_mel_features_have_the_mel_bins():
    g = features_lib.geometry(get_config("tiny"))
    assert g.kind == "log_mel" and g.num_features == 40
    wave = np.zeros((2, g.clip_samples), np.float32)
    assert features_lib.spectrogram(wave, g).shape == (2, g.tx, 40)


def test_the_course_network_has_522561_parameters():
    net = model_lib.network(101, time_steps=5511)
    assert net.count_params() == 522_561
    assert net.output_shape == (None, 1375, 1)
    short = model_lib.network(101)  # the same weights run on any number of frames
    short.set_weights(net.get_weights())
    out = short(np.random.default_rng(0).standard_normal((1, 59, 101)).astype(np.float32))
    assert out.shape == (1, 12, 1)  # (59 - 15) // 4 + 1
    assert np.all((out.numpy() > 0) & (out.numpy() < 1))  # sigmoid outputs


def test_standardize_uses_the_given_statistics():
    mean = np.linspace(-1, 1, 8).astype(np.float32)
    std = np.linspace(1, 3, 8).astype(np.float32)
    model = model_lib.build(8, mean, std, filters=4, kernel_size=3, stride=2, units=3)
    x = np.random.default_rng(2).standard_normal((2, 9, 8)).astype(np.float32)
    np.testing.assert_allclose(model.get_layer("standardize")(x), (x - mean) / std, rtol=1e-6)
    assert model(x).shape == (2, 4, 1)  # (9 - 3) // 2 + 1 steps
    assert sum(w.numpy().size for w in model.non_trainable_weights
               if "standardize" in w.path) == 16


def test_default_config_geometry():
    g = features_lib.geometry(get_config())
    assert (g.sample_rate, g.tx, g.ty, g.num_features) == (8000, 498, 121, 101)
    assert g.step_seconds == pytest.approx(0.04)


@pytest.mark.parametrize("variant", ["", "tiny", "course", "folder", "speech_commands"])
def test_every_variant_passes_its_checks(variant):
    from apps.core import config as config_lib
    from apps.trigger_word.task import TriggerWordTask

    config = get_config(variant)
    config_lib.check_app(config)
    g = TriggerWordTask(config).geometry
    assert g.ty > config.data.label_steps + 1 and g.ty > config.detect.context_steps
    if variant == "course":
        assert (g.tx, g.ty, config.data.label_steps, config.detect.refractory_steps) == (
            5511, 1375, 50, 75)


def test_the_detector_is_the_course_s_time_distributed_dense():
    """The network's last layer, a Dense on (batch, Ty, units), equals the course's
    TimeDistributed(Dense(1, sigmoid)) with the same weights."""
    import keras

    net = model_lib.network(16, filters=8, kernel_size=5, stride=2, units=6, dropout=0.5)
    hidden = keras.Model(net.input, net.get_layer("out_dropout").output)
    x = np.random.default_rng(3).standard_normal((2, 41, 16)).astype(np.float32)
    course = keras.layers.TimeDistributed(keras.layers.Dense(1, activation="sigmoid"))
    h = hidden(x, training=False)
    course.build(tuple(h.shape))
    course.set_weights(net.get_layer("detector").get_weights())
    np.testing.assert_allclose(net(x, training=False), course(h), rtol=1e-6, atol=1e-7)
    assert net.get_layer("detector").count_params() == 6 + 1


def _mel_hz(mel):
    return 700.0 * (np.exp(mel / 1127.0) - 1.0)


@pytest.mark.parametrize("bins, nfft", [(40, 200), (101, 200), (128, 200), (64, 400)])
def test_empty_mel_filters_equal_a_numpy_count(bins, nfft):
    """A mel filter (lower, centre, upper edge: consecutive of bins + 2 points equally
    spaced in mel = 1127 ln(1 + f / 700) from 20 Hz to sr / 2) is empty when no STFT
    frequency k * sr / nfft, k >= 1, lies strictly between its lower and upper edges."""
    config = get_config("tiny")
    config.features.num_mel_bins, config.features.nfft = bins, nfft
    g = features_lib.geometry(config)
    edges = _mel_hz(np.linspace(1127 * np.log1p(20 / 700), 1127 * np.log1p(4000 / 700),
                                bins + 2))
    freqs = np.arange(1, nfft // 2 + 1) * 8000 / nfft
    expected = sum(not np.any((freqs > lo) & (freqs < hi))
                   for lo, hi in zip(edges[:-2], edges[2:], strict=True))
    assert features_lib.empty_mel_filters(g) == expected


def test_feature_statistics_equal_numpy_over_all_frames():
    from apps.trigger_word.task import TriggerWordTask

    task = TriggerWordTask(get_config("tiny"))
    waves = np.random.default_rng(4).integers(-9000, 9000, (7, task.geometry.clip_samples))
    waves = waves.astype(np.int16)
    mean, std = task.feature_statistics(waves, chunk=3)  # chunks of 3, 3 and 1 clips
    frames = task.features(waves).numpy().astype(np.float64).reshape(-1, 40)
    np.testing.assert_allclose(mean, frames.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(std, frames.std(axis=0), rtol=1e-6, atol=1e-9)


def test_the_course_variant_builds_522561_parameters_and_trains_a_step(tmp_path):
    """configs/trigger_word.py:course through the task and the trainer: 10-second clips
    at 44.1 kHz (Tx 5511 x 101), the course's network, one Adam step on two clips."""
    from apps.core.trainer import Trainer
    from apps.trigger_word.task import TriggerWordTask

    config = get_config("course")
    config.data.cache_dir = str(tmp_path / "cache")
    config.data.num_clips = (2, 1, 1)  # only the amount of data differs from the variant
    config.diagnosis.train_dev_fraction = 0.0  # two clips: none to hold out
    config.data.synthetic.trigger_utterances = 4
    config.data.synthetic.negative_utterances = 4
    config.data.synthetic.babble_utterances = 4
    config.train.batch_size = 2
    trainer = Trainer(TriggerWordTask(config), str(tmp_path / "run"))
    assert trainer.data.train.inputs.shape == (2, 441_000)
    assert trainer.data.train.targets["labels"].shape == (2, 1375)
    network = trainer.model.get_layer("network")
    assert network.count_params() == 522_561
    assert network.get_layer("conv_dropout").rate == 0.8
    assert trainer.task.mean.shape == trainer.task.std.shape == (101,)
    before = [v.numpy().copy() for v in trainer.model.trainable_variables]
    loss = float(trainer.train_step_function()(iter(trainer.train_dataset(0))))
    assert np.isfinite(loss) and 0.0 < loss < 2.0  # about ln 2 for a fresh sigmoid output
    after = trainer.model.trainable_variables
    assert all(not np.array_equal(a, b.numpy()) for a, b in zip(before, after, strict=True))
