"""The feature extractor whose activations the costs compare: VGG19 or a
fixed random-filter encoder.

    config.extractor.weights = "imagenet"  VGG19 with Keras's ImageNet weights: the
                                           file cached in $KERAS_HOME/models (or
                                           ~/.keras/models) is used when present;
                                           else it is downloaded when
                                           config.extractor.download and the
                                           server is reachable; else the run falls
                                           back, with a warning, to "random" (or
                                           stops, if not config.extractor.fallback).
                             = "random"    the embedded encoder below (no download).
                             = PATH        VGG19 weights in a local file (Keras's
                                           notop or full .h5, or a .weights.h5 of
                                           keras.applications.VGG19(include_top=False)).

The embedded encoder mirrors VGG19's layout and layer names (blocks 1..5,
each two 3x3 convolutions with ReLU, 2x2 average pooling between blocks), with
fixed random He-normal filters drawn from config.extractor.seed. Random
convolutional features carry texture statistics well (Ustyuzhaninov et al.,
"Texture synthesis using shallow convolutional networks with random filters",
2016; He et al., "A powerful generative model using random weights for the
deep image representation", 2016): Gram matrices of such a multi-scale random
encoder reproduce colours, local textures and the strokes of the style image,
but the content is kept more literally (no learned notion of objects), so
results look like a texture overlaid on the photograph rather than the
repainting ImageNet features give.

Inputs are float images in [0, 1], shape (batch, H, W, 3). VGG19's input is
prepared per config.extractor.preprocess: "none" feeds [0, 1] RGB as the
course's assignment does (its alpha = 10, beta = 40 are tuned for that
scale), "caffe" applies keras.applications.vgg19.preprocess_input to 0..255
pixels (ImageNet's own preprocessing; activations are ~255 times larger, so
the style cost, quartic in them, needs a much smaller beta, e.g. alpha=1e4,
beta=1e-2 as in TensorFlow's style-transfer tutorial).
"""

import os
import socket

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from apps.core.errors import UserError

VGG19_NOTOP = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_FULL = "vgg19_weights_tf_dim_ordering_tf_kernels.h5"
_DOWNLOAD_HOST = ("storage.googleapis.com", 443)
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class Extractor:
    """Maps float images in [0, 1] (batch, H, W, 3) to {layer name: activation}.

    `kind` is "vgg19" or "random", `source` says where the weights came from.
    """

    def __init__(self, model, preprocess, kind, source):
        self.model = model
        self.preprocess = preprocess
        self.kind = kind
        self.source = source

    def __call__(self, images):
        return self.model(self.preprocess(tf.convert_to_tensor(images, tf.float32)),
                          training=False)


def build(config, layer_names):
    """The extractor config.extractor asks for, with outputs at `layer_names`.

    It computes in float32 whatever the global precision policy: Gram
    matrices sum products over every position, too much for 16-bit floats.
    """
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return _build(config, layer_names)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _build(config, layer_names):
    weights = config.extractor.weights
    if weights == "random":
        return _random(config, layer_names, "config.extractor.weights = 'random'")
    if weights == "imagenet":
        cached = cached_imagenet_weights()
        if cached:
            return _vgg19(config, layer_names, cached, f"ImageNet weights cached at {cached}")
        reason = "no cached VGG19 ImageNet weights in " + " or ".join(_cache_dirs())
        if config.extractor.download:
            if _reachable(*_DOWNLOAD_HOST):
                try:
                    base = keras.applications.VGG19(include_top=False, weights="imagenet",
                                                    input_shape=(None, None, 3))
                    return _vgg19(config, layer_names, base, "ImageNet weights (downloaded)")
                except Exception as e:  # noqa: BLE001 - any download failure falls back
                    reason += f", and the download failed ({str(e).splitlines()[0]})"
            else:
                reason += f", and {_DOWNLOAD_HOST[0]} is not reachable (offline)"
        else:
            reason += ", and config.extractor.download is false"
        if not config.extractor.fallback:
            raise UserError(f"config.extractor.weights = 'imagenet': {reason} (and "
                            "config.extractor.fallback is false); put "
                            f"{VGG19_NOTOP} in {_cache_dirs()[0]} or set "
                            "config.extractor.weights to a local weights file")
        logging.warning(
            "WARNING: %s. Falling back to the embedded random-filter encoder: it needs no "
            "download and transfers colours and textures, but not the repainting that "
            "VGG19's ImageNet features give. For VGG19, put %s in %s, or set "
            "config.extractor.weights to a local weights file.",
            reason, VGG19_NOTOP, os.path.join(_cache_dirs()[0]))
        return _random(config, layer_names, f"fallback: {reason}")
    if not os.path.isfile(weights):
        raise UserError(f"config.extractor.weights = {weights!r}: no such file (expected "
                        "'imagenet', 'random' or a VGG19 weights file)")
    return _vgg19(config, layer_names, weights, f"weights file {weights}")


def _cache_dirs():
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    # Keras falls back to /tmp/.keras when the home folder is not writable.
    return [os.path.join(home, "models"), os.path.join("/tmp", ".keras", "models")]


def cached_imagenet_weights():
    """The path of Keras's cached VGG19 notop ImageNet weights, or None."""
    for folder in _cache_dirs():
        for name in (VGG19_NOTOP, VGG19_FULL):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def _reachable(host, port, timeout=3.0):
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _outputs(base, layer_names, what):
    names = [layer.name for layer in base.layers]
    for name in layer_names:
        if name not in names:
            convs = ", ".join(n for n in names if "conv" in n)
            raise UserError(f"config.cost: no layer {name!r} in the {what} (its layers: "
                            f"{convs})")
    return keras.Model(base.input, {n: base.get_layer(n).output for n in layer_names},
                       name=f"{base.name}_features")


def _vgg19(config, layer_names, weights, source):
    if isinstance(weights, keras.Model):
        base = weights
    else:
        base = keras.applications.VGG19(include_top=False, weights=None,
                                        input_shape=(None, None, 3))
        _load_vgg19_weights(base, weights)
    base.trainable = False
    model = _outputs(base, layer_names, "VGG19 extractor")
    if config.extractor.preprocess == "caffe":
        def preprocess(x):
            return keras.applications.vgg19.preprocess_input(x * 255.0)
    else:
        def preprocess(x):
            return x
    logging.info("feature extractor: VGG19, %s", source)
    return Extractor(model, preprocess, "vgg19", source)


def _load_vgg19_weights(base, path):
    try:
        base.load_weights(path)
        return
    except Exception as first:  # noqa: BLE001 - try the full (with top) layout next
        error = first
    if _has_top(path):
        try:  # Keras's full VGG19 file: load into the full model, keep its convolutions
            full = keras.applications.VGG19(include_top=True, weights=None)
            full.load_weights(path)
            for layer in base.layers:
                if layer.weights:
                    layer.set_weights(full.get_layer(layer.name).get_weights())
            return
        except Exception as second:  # noqa: BLE001
            error = second
    raise UserError(f"config.extractor.weights = {path!r}: not VGG19 weights "
                    f"({str(error).splitlines()[0][:200]})") from None


def _has_top(path):
    """True for Keras's legacy .h5 weights of the full VGG19 (with its classifier)."""
    if not path.endswith(".h5") or path.endswith(".weights.h5"):
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names = [n.decode() if isinstance(n, bytes) else n
                     for n in f.attrs.get("layer_names", [])]
    except OSError:
        return False
    return "fc1" in names


def random_encoder(widths=(32, 64, 128, 128, 128), seed=0):
    """The embedded encoder: VGG19's layout with fixed random filters.

    Block b (1..5) is conv3x3(widths[b-1]) - ReLU - conv3x3(widths[b-1]) - ReLU,
    named block{b}_conv1 / block{b}_conv2, with 2x2 average pooling between
    blocks. Filters are He-normal, W ~ N(0, 2 / (9 c_in)), and biases zero,
    drawn from NumPy's generator with `seed`, so the encoder is the same on
    every machine. The input is normalised with ImageNet's mean and standard
    deviation.
    """
    rng = np.random.default_rng(seed)
    inputs = keras.Input((None, None, 3), name="image")
    x = inputs
    convs = []
    for b, width in enumerate(widths, start=1):
        if b > 1:
            x = keras.layers.AveragePooling2D(2, name=f"block{b - 1}_pool")(x)
        for c in (1, 2):
            conv = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                       name=f"block{b}_conv{c}", trainable=False)
            x = conv(x)
            convs.append(conv)
    model = keras.Model(inputs, x, name="random_encoder")
    for conv in convs:
        kernel, bias = conv.get_weights()
        fan_in = np.prod(kernel.shape[:3])
        kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape).astype(np.float32)
        conv.set_weights([kernel, np.zeros_like(bias)])
    model.trainable = False
    return model


def _random(config, layer_names, source):
    base = random_encoder(tuple(config.extractor.random_widths), config.extractor.seed)
    model = _outputs(base, layer_names, "random-filter encoder")
    mean, std = tf.constant(_IMAGENET_MEAN), tf.constant(_IMAGENET_STD)

    def preprocess(x):
        return (x - mean) / std

    logging.info("feature extractor: random-filter encoder (%s)", source)
    return Extractor(model, preprocess, "random", source)
