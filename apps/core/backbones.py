"""Convolutional backbones that several apps share, built from `layers`.

Each function maps an input tensor to a feature map; apps add their heads
(classification: pooling + dense; detection: a YOLO head; face recognition:
an embedding). Widths scale with `width` so the same code serves 8x8 digits
and 224x224 photographs.
"""

import keras

import layers


def conv_bn_relu(x, filters, kernel_size=3, strides=1, name=None):
    """Convolution (no bias), BatchNorm, ReLU: the stem of the backbones."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                            use_bias=False, kernel_initializer="he_normal",
                            name=name and f"{name}_conv")(x)
    x = layers.BatchNorm(name=name and f"{name}_bn")(x)
    return keras.layers.ReLU(name=name and f"{name}_relu")(x)


def resnet(x, stage_blocks=(2, 2, 2, 2), width=16, bottleneck=False, stem_stride=1,
           name="resnet"):
    """ResNet (He et al., 2015): a stem, then stages of residual blocks.

    Stage s has `width * 2**s` filters and halves the resolution at its first
    block (except stage 0), whose shortcut is then a projection; the other
    blocks use identity shortcuts. (2, 2, 2, 2) with width 64 and stride-2 stem
    plus max pooling is ResNet-18; small inputs keep stem_stride=1.
    """
    x = conv_bn_relu(x, width, 3 if stem_stride == 1 else 7, stem_stride, name=f"{name}_stem")
    if stem_stride > 1:
        x = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"{name}_stem_pool")(x)
    for s, blocks in enumerate(stage_blocks):
        for b in range(blocks):
            x = layers.ResidualBlock(width * 2**s, strides=2 if (b == 0 and s > 0) else 1,
                                     bottleneck=bottleneck, name=f"{name}_s{s}_b{b}")(x)
    return x


def inception(x, width=16, name="inception"):
    """A GoogLeNet-style backbone (Szegedy et al., 2014), scaled by `width`.

    Stem, then inception modules 3a, 3b, max pool, 4a, 4b, max pool, 5a: each
    module's branch widths keep GoogLeNet's proportions (3a: 64, 96->128,
    16->32, pool->32 for width 64).
    """
    def module(x, c1, c3r, c3, c5r, c5, cp, tag):
        k = width / 64
        size = [max(4, round(v * k)) for v in (c1, c3r, c3, c5r, c5, cp)]
        return layers.InceptionModule(*size, use_batch_norm=True, name=f"{name}_{tag}")(x)

    x = conv_bn_relu(x, width, 3, name=f"{name}_stem1")
    x = conv_bn_relu(x, 3 * width, 3, name=f"{name}_stem2")
    x = module(x, 64, 96, 128, 16, 32, 32, "3a")
    x = module(x, 128, 128, 192, 32, 96, 64, "3b")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"{name}_pool3")(x)
    x = module(x, 192, 96, 208, 16, 48, 64, "4a")
    x = module(x, 160, 112, 224, 24, 64, 64, "4b")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"{name}_pool4")(x)
    x = module(x, 256, 160, 320, 32, 128, 128, "5a")
    return x
