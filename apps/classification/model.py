"""The classification model zoo, from the course notes, sized for the input.

Every model maps float images (S, S, C) in [0, 1] to class logits through a
final Dense (or, for NiN, 1x1 convolution) layer named "head", which transfer
learning replaces. `width` scales the channel counts; the layouts follow the
papers at reduced width, since the inputs here are small:

    lenet5     conv5-pool-conv5-pool-fc120-fc84 (LeCun et al., 1998)
    alexnet    5 convolutions with max pooling, two dropout FC layers (Krizhevsky et al., 2012)
    vgg        blocks of 3x3 convolutions, each block halving the resolution (Simonyan and Zisserman, 2014)
    nin        mlpconv blocks (kxk conv + two 1x1), global average pooling (Lin et al., 2013)
    googlenet  inception modules (apps.core.backbones.inception)
    resnet     residual stages with identity/projection shortcuts (apps.core.backbones.resnet)
    densenet   dense blocks of BN-ReLU-conv1x1-conv3x3 with transitions (Huang et al., 2016)
"""

import math

import keras

import layers
from apps.core import backbones

NAMES = ("lenet5", "alexnet", "vgg", "nin", "googlenet", "resnet", "densenet")
# The smallest input side a model takes: LeNet-5's second 5x5 convolution (no
# padding) needs 5x5 after the first 2x2 pooling. The others adapt their pooling.
MIN_IMAGE_SIZE = {"lenet5": 10}


def build(name, image_size, channels, num_classes, width=1.0, dropout=0.0, freeze_layers=0):
    """Returns the Keras model `name`; the first `freeze_layers` layers are frozen."""
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = _BODIES[name](inputs, width, dropout, num_classes)
    if name != "nin":
        x = keras.layers.Dense(num_classes, name="head", dtype="float32")(x)
    model = keras.Model(inputs, x, name=name)
    for layer in model.layers[1:1 + freeze_layers]:
        layer.trainable = False
    return model


def _w(base, width):
    return max(4, int(round(base * width)))


def _lenet5(x, width, dropout, num_classes):
    x = keras.layers.Conv2D(_w(6, width), 5, padding="same", activation="tanh", name="c1")(x)
    x = keras.layers.AveragePooling2D(2, name="s2")(x)
    x = keras.layers.Conv2D(_w(16, width), 5, activation="tanh", name="c3")(x)
    x = keras.layers.AveragePooling2D(2, name="s4")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(_w(120, width), activation="tanh", name="c5")(x)
    x = keras.layers.Dense(_w(84, width), activation="tanh", name="f6")(x)
    return keras.layers.Dropout(dropout, name="dropout")(x) if dropout else x


def _alexnet(x, width, dropout, num_classes):
    for i, (filters, pool) in enumerate([(64, True), (192, True), (384, False), (256, False),
                                         (256, True)]):
        x = keras.layers.Conv2D(_w(filters, width), 3, padding="same", activation="relu",
                                name=f"conv{i + 1}")(x)
        if pool and x.shape[1] >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = keras.layers.Dropout(dropout or 0.5, name=f"dropout{i}")(x)
        x = keras.layers.Dense(_w(512, width), activation="relu", name=f"fc{i}")(x)
    return x


def _vgg(x, width, dropout, num_classes):
    blocks = max(1, min(5, int(math.log2(x.shape[1])) - 1))
    for b, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3),
                                          (512, 3)][:blocks]):
        for c in range(convs):
            x = keras.layers.Conv2D(_w(filters, width), 3, padding="same", activation="relu",
                                    name=f"block{b + 1}_conv{c + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{b + 1}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(_w(512, width), activation="relu", name="fc1")(x)
    return keras.layers.Dropout(dropout or 0.5, name="dropout")(x)


def _nin(x, width, dropout, num_classes):
    for b, (filters, kernel) in enumerate([(96, 5), (192, 5), (192, 3)]):
        last = b == 2
        x = keras.layers.Conv2D(_w(filters, width), kernel, padding="same", activation="relu",
                                name=f"mlpconv{b + 1}_a")(x)
        x = keras.layers.Conv2D(_w(filters, width), 1, activation="relu",
                                name=f"mlpconv{b + 1}_b")(x)
        if last:
            x = keras.layers.Conv2D(num_classes, 1, name="head", dtype="float32")(x)
        else:
            x = keras.layers.Conv2D(_w(filters, width), 1, activation="relu",
                                    name=f"mlpconv{b + 1}_c")(x)
            x = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"pool{b + 1}")(x)
            x = keras.layers.Dropout(dropout or 0.5, name=f"dropout{b + 1}")(x)
    return keras.layers.GlobalAveragePooling2D(name="gap", dtype="float32")(x)


def _googlenet(x, width, dropout, num_classes):
    x = backbones.inception(x, width=_w(64, width / 4), name="inception")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.layers.Dropout(dropout or 0.4, name="dropout")(x)


def _resnet(x, width, dropout, num_classes):
    x = backbones.resnet(x, stage_blocks=(2, 2, 2), width=_w(16, width), name="resnet")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.layers.Dropout(dropout, name="dropout")(x) if dropout else x


def _densenet(x, width, dropout, num_classes, blocks=(4, 4, 4), growth=12):
    growth = _w(growth, width)
    x = keras.layers.Conv2D(2 * growth, 3, padding="same", use_bias=False, name="stem")(x)
    for b, count in enumerate(blocks):
        for i in range(count):
            y = layers.BatchNorm(name=f"dense{b}_{i}_bn1")(x)
            y = keras.layers.ReLU(name=f"dense{b}_{i}_relu1")(y)
            y = keras.layers.Conv2D(4 * growth, 1, use_bias=False, name=f"dense{b}_{i}_conv1")(y)
            y = layers.BatchNorm(name=f"dense{b}_{i}_bn2")(y)
            y = keras.layers.ReLU(name=f"dense{b}_{i}_relu2")(y)
            y = keras.layers.Conv2D(growth, 3, padding="same", use_bias=False,
                                    name=f"dense{b}_{i}_conv2")(y)
            x = keras.layers.Concatenate(name=f"dense{b}_{i}_concat")([x, y])
        if b < len(blocks) - 1:
            x = layers.BatchNorm(name=f"transition{b}_bn")(x)
            x = keras.layers.ReLU(name=f"transition{b}_relu")(x)
            x = keras.layers.Conv2D(x.shape[-1] // 2, 1, use_bias=False,
                                    name=f"transition{b}_conv")(x)
            if x.shape[1] >= 2:
                x = keras.layers.AveragePooling2D(2, name=f"transition{b}_pool")(x)
    x = layers.BatchNorm(name="final_bn")(x)
    x = keras.layers.ReLU(name="final_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.layers.Dropout(dropout, name="dropout")(x) if dropout else x


_BODIES = {"lenet5": _lenet5, "alexnet": _alexnet, "vgg": _vgg, "nin": _nin,
           "googlenet": _googlenet, "resnet": _resnet, "densenet": _densenet}
