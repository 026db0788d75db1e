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
    from apps.core.optim import RULES
    from apps.trigger_word.task import TriggerWordTask

    config = get_config(variant)
    config_lib.check(config, {**config_lib.COMMON_RULES, **RULES, **TriggerWordTask.rules})
    g = TriggerWordTask(config).geometry
    assert g.ty > config.data.label_steps + 1 and g.ty > config.detect.context_steps
    if variant == "course":
        assert (g.tx, g.ty, config.data.label_steps, config.detect.refractory_steps) == (
            5511, 1375, 50, 75)
