"""The embedding network: a shared backbone, then an L2-normalised embedding.

    f(x) = W . GAP(backbone(x)) + b,     embedding(x) = f(x) / ||f(x)||_2

so every face maps to a point on the unit sphere of `embedding_dim`
dimensions (128 by default, as FaceNet), where the Euclidean distance
between two faces lies in [0, 2]. The backbone is one of the project's
shared ones (apps.core.backbones): "resnet" (residual stages of
layers.ResidualBlock) or "inception" (layers.InceptionModule, GoogLeNet's
layout).
"""

import keras

from apps.core import backbones

BACKBONES = ("resnet", "inception")


def build(backbone, image_size, channels, embedding_dim=128, width=16, blocks=(2, 2, 2),
          dropout=0.0):
    """Returns the Keras model: float images (S, S, C) in [0, 1] -> (embedding_dim,)."""
    inputs = keras.Input((image_size, image_size, channels), name="image")
    if backbone == "resnet":
        x = backbones.resnet(inputs, stage_blocks=tuple(blocks), width=width, name="resnet")
    elif backbone == "inception":
        x = backbones.inception(inputs, width=width, name="inception")
    else:
        raise ValueError(backbone)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(embedding_dim, name="embedding", dtype="float32")(x)
    x = keras.layers.UnitNormalization(axis=-1, name="l2_normalize", dtype="float32")(x)
    return keras.Model(inputs, x, name=f"face_{backbone}")
