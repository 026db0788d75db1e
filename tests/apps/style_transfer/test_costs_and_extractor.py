"""The costs the app builds from layers.losses, and its two feature extractors.

The formulas themselves (Gram matrix, layer style cost, content cost, total
variation) are checked against NumPy and numeric gradients in
tests/layers/test_losses.py; here: that the app combines them as
J = alpha J_content + beta J_style + tv_weight TV, with the right layers and
weights, and that the extractor is the one config.extractor asks for (VGG19
from a cached or local file, or the embedded encoder, with a warning when it
is a fallback).
"""

import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.core.errors import UserError
from apps.style_transfer import costs as costs_lib
from apps.style_transfer import extractor as extractor_lib
from configs.style_transfer import get_config


def _config(**extractor):
    config = get_config("tiny")
    for key, value in extractor.items():
        config.extractor[key] = value
    return config


def _np_gram(a):  # a: (h, w, c)
    flat = a.reshape(-1, a.shape[-1]).astype(np.float64)
    return flat.T @ flat


def _np_layer_style(a_s, a_g):  # one image each, (h, w, c)
    h, w, c = a_g.shape
    return np.sum((_np_gram(a_s) - _np_gram(a_g)) ** 2) / (4 * c**2 * (h * w) ** 2)


def _np_content(a_c, a_g):
    return np.sum((a_c.astype(np.float64) - a_g) ** 2) / (4 * a_g.size)  # a: (h, w, c)


def _np_tv(images):
    x = images.astype(np.float64)
    return np.abs(np.diff(x, axis=1)).sum() + np.abs(np.diff(x, axis=2)).sum()


def test_cost_is_alpha_content_plus_beta_style_plus_tv_against_numpy():
    config = _config(weights="random")
    config.cost.alpha, config.cost.beta, config.cost.tv_weight = 3.0, 7.0, 0.01
    config.cost.style_layers = (("block1_conv1", 0.5), ("block3_conv1", 0.25),
                                ("block5_conv1", 0.25))
    config.cost.content_layer = "block4_conv2"
    extractor = extractor_lib.build(config, costs_lib.Costs.layer_names(config.cost))
    costs = costs_lib.Costs(extractor, config.cost)
    rng = np.random.default_rng(0)
    content, style, generated = (rng.uniform(0, 1, (n, 32, 48, 3)).astype(np.float32)
                                 for n in (2, 1, 2))
    terms = costs(generated, costs.content_features(content), costs.style_features(style))

    f_c, f_s, f_g = (tf.nest.map_structure(np.asarray, extractor(x))
                     for x in (content, style, generated))
    layer = config.cost.content_layer
    content_ref = sum(_np_content(f_c[layer][i], f_g[layer][i]) for i in range(2))
    style_ref = sum(w * _np_layer_style(f_s[name][0], f_g[name][i])
                    for name, w in config.cost.style_layers for i in range(2))
    tv_ref = _np_tv(generated)
    np.testing.assert_allclose(float(terms["content"]), content_ref, rtol=1e-4)
    np.testing.assert_allclose(float(terms["style"]), style_ref, rtol=1e-4)
    np.testing.assert_allclose(float(terms["tv"]), tv_ref, rtol=1e-4)
    np.testing.assert_allclose(float(terms["total"]),
                               3.0 * content_ref + 7.0 * style_ref + 0.01 * tv_ref, rtol=1e-4)
    assert content_ref > 0 and style_ref > 0
    # Only the layers the cost names are computed.
    assert set(f_g) == {"block1_conv1", "block3_conv1", "block5_conv1", "block4_conv2"}


def test_random_encoder_is_fixed_by_its_seed_and_named_like_vgg19():
    a = extractor_lib.random_encoder((4, 4, 8, 8, 8), seed=3)
    b = extractor_lib.random_encoder((4, 4, 8, 8, 8), seed=3)
    c = extractor_lib.random_encoder((4, 4, 8, 8, 8), seed=4)
    for wa, wb, wc in zip(a.get_weights(), b.get_weights(), c.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
        if wa.ndim == 4:
            assert not np.array_equal(wa, wc)
    vgg = {layer.name for layer in keras.applications.VGG19(
        include_top=False, weights=None, input_shape=(None, None, 3)).layers}
    convs = {layer.name for layer in a.layers if "conv" in layer.name}
    assert len(convs) == 10 and convs <= vgg
    assert a.trainable_weights == []
    # He-normal filters: standard deviation sqrt(2 / fan_in).
    wide = extractor_lib.random_encoder((64, 64, 64, 64, 64), seed=0)
    kernel = wide.get_layer("block2_conv1").kernel.numpy()
    assert kernel.std() == pytest.approx(np.sqrt(2 / (9 * 64)), rel=0.05)


def test_imagenet_without_cache_or_download_falls_back_with_a_warning(monkeypatch, tmp_path,
                                                                        caplog):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(extractor_lib, "_cache_dirs", lambda: [str(tmp_path / "models")])
    config = _config(weights="imagenet", download=False)
    with caplog.at_level(logging.WARNING):
        extractor = extractor_lib.build(config, ["block1_conv1", "block4_conv2"])
    assert extractor.kind == "random"
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "Falling back to the embedded random-filter encoder" in warning
    assert "config.extractor.download is false" in warning
    features = extractor(np.zeros((1, 32, 32, 3), np.float32))
    assert features["block4_conv2"].shape == (1, 4, 4, 16)
    strict = _config(weights="imagenet", download=False, fallback=False)
    with pytest.raises(UserError, match="config.extractor.weights = 'imagenet': no cached"):
        extractor_lib.build(strict, ["block1_conv1"])


def test_offline_download_falls_back_too(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(extractor_lib, "_cache_dirs", lambda: [str(tmp_path / "models")])
    monkeypatch.setattr(extractor_lib, "_reachable", lambda host, port: False)
    with caplog.at_level(logging.WARNING):
        extractor = extractor_lib.build(_config(weights="imagenet"), ["block1_conv1"])
    assert extractor.kind == "random"
    assert "not reachable" in caplog.text


def test_vgg19_from_a_cached_file_and_from_a_local_path(monkeypatch, tmp_path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = keras.applications.VGG19(include_top=False, weights=None,
                                      input_shape=(None, None, 3))
    models = tmp_path / "models"
    models.mkdir()
    cached = models / extractor_lib.VGG19_NOTOP
    with h5py.File(cached, "w") as f:  # the layout of Keras's downloaded file
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    monkeypatch.setattr(extractor_lib, "_cache_dirs", lambda: [str(models)])
    assert extractor_lib.cached_imagenet_weights() == str(cached)

    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    want = keras.Model(source.input, source.get_layer("block2_conv1").output)(x).numpy()
    for weights in ("imagenet", str(cached)):
        extractor = extractor_lib.build(_config(weights=weights), ["block2_conv1"])
        assert extractor.kind == "vgg19" and str(cached) in extractor.source
        np.testing.assert_allclose(extractor(x)["block2_conv1"].numpy(), want, rtol=1e-5,
                                   atol=1e-5)
    caffe = extractor_lib.build(_config(weights=str(cached), preprocess="caffe"),
                                ["block2_conv1"])
    prepared = keras.applications.vgg19.preprocess_input(x * 255.0)
    want = keras.Model(source.input, source.get_layer("block2_conv1").output)(prepared)
    np.testing.assert_allclose(caffe(x)["block2_conv1"].numpy(), want.numpy(), rtol=1e-4,
                               atol=1e-3)


def test_bad_weights_and_layers_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="config.extractor.weights = .*no such file"):
        extractor_lib.build(_config(weights=str(tmp_path / "none.h5")), ["block1_conv1"])
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="config.extractor.weights = .*junk.h5.*not VGG19"):
        extractor_lib.build(_config(weights=str(junk)), ["block1_conv1"])
    with pytest.raises(UserError, match="config.cost: no layer 'block9_conv1'"):
        extractor_lib.build(_config(weights="random"), ["block9_conv1"])
    assert not os.path.exists(tmp_path / "models")


def test_the_extractor_computes_in_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        extractor = extractor_lib.build(_config(weights="random"), ["block1_conv1"])
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert extractor(np.zeros((1, 16, 16, 3), np.float32))["block1_conv1"].dtype == tf.float32
