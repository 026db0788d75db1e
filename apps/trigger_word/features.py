"""Spectrogram features and the time geometry of input frames and output steps.

The spectrogram of a waveform x (tf.signal.stft, periodic Hann window w of
nfft samples, hop `frame_step` = nfft - overlap):

    X[t, k] = sum_n x[t * frame_step + n] w[n] exp(-2 pi i k n / nfft),  k = 0 .. nfft/2
    feature[t, k] = log(|X[t, k]|^2 + 1e-6)                    (kind = "spectrogram")
    feature[t, m] = log(sum_k |X[t, k]|^2 M[k, m] + 1e-6)      (kind = "log_mel", M the
                                                                 mel filter bank)

giving Tx = 1 + (samples - nfft) // frame_step frames of nfft/2 + 1 frequencies
(or num_mel_bins). The model standardises each frequency with the training
set's mean and standard deviation (model.Standardize).

The course's spectrogram (matplotlib's specgram, nfft 200, overlap 120) of
its 10-second clips, recorded at 44.1 kHz, has Tx = 1 + (441000 - 200) // 80 =
5511 frames of 101 frequencies ("fs=8000" in its code only labels the plot's
axis); the network's Conv1D(kernel 15, stride 4) then gives
Ty = (5511 - 15) // 4 + 1 = 1375 output steps.

Output step j of the network sees frames j*stride .. j*stride + kernel - 1; it
is placed at time j * step_seconds with step_samples = frame_step * stride.
"""

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Geometry:
    sample_rate: int
    clip_samples: int
    nfft: int
    frame_step: int
    kernel: int
    stride: int
    kind: str = "spectrogram"
    num_mel_bins: int = 40

    @property
    def tx(self):
        return frames(self.clip_samples, self.nfft, self.frame_step)

    @property
    def ty(self):
        return (self.tx - self.kernel) // self.stride + 1

    @property
    def step_samples(self):
        return self.frame_step * self.stride

    @property
    def step_seconds(self):
        return self.step_samples / self.sample_rate

    @property
    def num_features(self):
        return self.nfft // 2 + 1 if self.kind == "spectrogram" else self.num_mel_bins


def frames(samples, nfft, frame_step):
    return 1 + (samples - nfft) // frame_step


def geometry(config):
    """The Geometry of an app config."""
    d, f, m = config.data, config.features, config.model
    return Geometry(sample_rate=d.sample_rate, clip_samples=int(round(d.clip_seconds
                                                                      * d.sample_rate)),
                    nfft=f.nfft, frame_step=f.nfft - f.overlap, kernel=m.kernel_size,
                    stride=m.stride, kind=f.kind, num_mel_bins=f.num_mel_bins)


def mel_matrix(g):
    """The (nfft/2 + 1, num_mel_bins) mel filter bank M, 20 Hz to sample_rate / 2."""
    return tf.signal.linear_to_mel_weight_matrix(
        g.num_mel_bins, g.nfft // 2 + 1, g.sample_rate, 20.0, g.sample_rate / 2)


def empty_mel_filters(g):
    """How many mel filters hold no frequency of the STFT (too narrow for its bins)."""
    return int(tf.reduce_sum(tf.cast(tf.reduce_sum(mel_matrix(g), axis=0) <= 0, tf.int32)))


def spectrogram(waveform, g):
    """float32 waveform(s) (..., samples) -> features (..., Tx, num_features)."""
    stft = tf.signal.stft(waveform, frame_length=g.nfft, frame_step=g.frame_step,
                          fft_length=g.nfft, window_fn=tf.signal.hann_window, pad_end=False)
    power = tf.math.square(tf.math.abs(stft))
    if g.kind == "log_mel":
        power = tf.tensordot(power, mel_matrix(g), 1)
    return tf.math.log(power + 1e-6)
