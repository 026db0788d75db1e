"""The course's trigger-word network, behind a per-frequency standardisation.

    spectrogram (Tx, F)
    -> Standardize: (x - mean_f) / std_f          (training-set statistics; not trained)
    -> Conv1D(196, kernel 15, stride 4) -> BatchNorm -> ReLU -> Dropout
    -> GRU(128) -> Dropout -> BatchNorm
    -> GRU(128) -> Dropout -> BatchNorm -> Dropout
    -> Dense(1, sigmoid) at every step               per-step probability (Ty, 1)

The GRUs are the notes' (`layers.GRU`, hand-coded: one bias per gate, the
twin of Keras's reset_after=False), so at the course's dimensions (Tx 5511,
101 frequencies) the network has 522,561 parameters. BatchNorm is this
project's `layers.BatchNorm`. The time
axis is left open, so the same weights run on any number of frames.

The course's TimeDistributed(Dense(1)) is a Dense layer applied to the
(batch, Ty, units) tensor: Dense acts on the last axis, so every step gets
the same weights, y[b, t] = sigmoid(h[b, t] . w + b0), with the same 129
parameters. Keras 3's TimeDistributed unrolls a Python loop over a time axis
of static length (Ty Dense calls in the graph: a first training step of
about a minute at the course's Ty = 1375), which the plain Dense avoids.
"""

import keras
from keras import ops

import layers


@keras.saving.register_keras_serializable(package="dlsuite_trigger_word")
class Standardize(keras.layers.Layer):
    """y[..., f] = (x[..., f] - mean[f]) / std[f], with fixed (non-trained) mean and std."""

    def __init__(self, num_features, **kwargs):
        super().__init__(**kwargs)
        self.num_features = num_features

    def build(self, input_shape):
        self.mean = self.add_weight(name="mean", shape=(self.num_features,),
                                    initializer="zeros", trainable=False)
        self.std = self.add_weight(name="std", shape=(self.num_features,),
                                   initializer="ones", trainable=False)

    def call(self, x):
        return (x - ops.cast(self.mean, x.dtype)) / ops.cast(self.std, x.dtype)

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features}


def network(num_features, filters=196, kernel_size=15, stride=4, units=128, dropout=0.8,
            time_steps=None):
    """The course's network (a keras.Model named "network")."""
    inputs = keras.Input((time_steps, num_features), name="spectrogram")
    x = keras.layers.Conv1D(filters, kernel_size, strides=stride, name="conv")(inputs)
    x = layers.BatchNorm(name="conv_bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.Dropout(dropout, name="conv_dropout")(x)
    x = layers.GRU(units, return_sequences=True, name="gru1")(x)
    x = keras.layers.Dropout(dropout, name="gru1_dropout")(x)
    x = layers.BatchNorm(name="gru1_bn")(x)
    x = layers.GRU(units, return_sequences=True, name="gru2")(x)
    x = keras.layers.Dropout(dropout, name="gru2_dropout")(x)
    x = layers.BatchNorm(name="gru2_bn")(x)
    x = keras.layers.Dropout(dropout, name="out_dropout")(x)
    # The course's TimeDistributed(Dense): Dense acts on each step (see the module docstring).
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="detector")(x)
    return keras.Model(inputs, outputs, name="network")


def build(num_features, mean=None, std=None, **kwargs):
    """Standardize + the network; `mean`, `std` (num_features,) set the standardisation."""
    inputs = keras.Input((None, num_features), name="spectrogram")
    standardize = Standardize(num_features, name="standardize")
    outputs = network(num_features, **kwargs)(standardize(inputs))
    if mean is not None:
        standardize.mean.assign(mean)
        standardize.std.assign(std)
    return keras.Model(inputs, outputs, name="trigger_word")
