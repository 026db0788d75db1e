"""The detector: a ResNet backbone (apps.core.backbones.resnet) and a YOLO head.

    image (S_img, S_img, C)
      -> ResNet: 7x7/2 stem + 3x3/2 max pool, then stages of residual blocks
         (our layers.ResidualBlock and layers.BatchNorm), each after the first
         halving the resolution: stride 4 * 2**(stages - 1)
      -> head: conv 3x3 + BatchNorm + ReLU, conv 1x1 to B * (5 + C) channels
      -> reshape to (S, S, B, 5 + C): per cell and anchor the raw objectness,
         box (t_x, t_y, t_w, t_h) and class logits (decoded in encoding.py)

The objectness bias starts at log(0.01 / 0.99), so the first steps are not
swamped by the many empty cells (the prior of Lin et al., 2017).
"""

import math

import keras

from apps.core import backbones


def stride(stages):
    return 4 * 2 ** (len(stages) - 1)


def build(image_size, channels, num_classes, num_anchors, stages=(2, 2), width=32,
          head_width=128):
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = backbones.resnet(inputs, stage_blocks=tuple(stages), width=width, stem_stride=2,
                         name="backbone")
    x = backbones.conv_bn_relu(x, head_width, 3, name="head_conv")
    per_anchor = 5 + num_classes
    x = keras.layers.Conv2D(num_anchors * per_anchor, 1, name="head", dtype="float32")(x)
    grid = x.shape[1]
    x = keras.layers.Reshape((grid, grid, num_anchors, per_anchor), name="yolo",
                             dtype="float32")(x)
    model = keras.Model(inputs, x, name="yolo")
    head = model.get_layer("head")
    bias = head.bias.numpy().reshape(num_anchors, per_anchor)
    bias[:, 0] = math.log(0.01 / 0.99)
    head.bias.assign(bias.reshape(-1))
    return model
