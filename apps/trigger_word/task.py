"""Trigger-word detection: the task the shared trainer runs.

Training: clips (data.py) -> spectrograms (features.py) -> the course's
Conv1D + GRU network (model.py), trained with the per-step binary
cross-entropy averaged over the Ty steps:

    loss = -1/Ty sum_t [y_t log p_t + (1 - y_t) log(1 - p_t)]

Evaluation: frame precision / recall / F1 and event recall / false alarms per
hour (detect.py). The SavedModel's serving_default takes float32 waveforms
(batch, samples) at config.data.sample_rate, of any length, reads them in
overlapping windows and returns the per-step probabilities and detection times.

--mode=predict --input=WAV_OR_FOLDER prints each file's detection times and
writes NAME_chime.wav (the input with a chime at each detection) and
NAME_detections.png (spectrogram and output); it detects on the SavedModel's
probabilities with this config's threshold and refractory period.
"""

import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from apps.core import images as images_lib
from apps.core.errors import UserError
from apps.core.inference import predict_outputs
from apps.core.task import Task
from apps.trigger_word import audio, detect
from apps.trigger_word import data as data_lib
from apps.trigger_word import features as features_lib
from apps.trigger_word import model as model_lib

STATS_CLIPS = 256  # training clips the standardisation statistics come from


class TriggerWordTask(Task):
    # The network's input depends on these too: a workdir keeps them.
    workdir_fields = ("model", "data.sample_rate", "data.clip_seconds", "features")
    headline_metrics = ("frame_f1", "event_recall", "false_alarms_per_hour")
    input_kind = "a .wav file or a folder of them"
    input_unit = ".wav files"

    def __init__(self, config):
        super().__init__(config)
        self.geometry = g = features_lib.geometry(config)
        self.mean = self.std = None
        self._summary = None
        logging.info("clips of %d samples: Tx = %d frames of %d features, Ty = %d steps of "
                     "%.1f ms", g.clip_samples, g.tx, g.num_features, g.ty,
                     1000 * g.step_seconds)

    # ------------------------------------------------------------------ data

    def load_data(self):
        data = data_lib.load(self.config)
        logging.info("data: %d train, %d val, %d test clips", len(data.train), len(data.val),
                     len(data.test))
        mean, std = self.feature_statistics(data.train.inputs, min(STATS_CLIPS, len(data.train)))
        self.mean = mean.astype(np.float32)
        self.std = np.maximum(std, 1e-3).astype(np.float32)
        return data

    def feature_statistics(self, waves, count=None, chunk=16):
        """Per-feature mean and standard deviation over every frame of the first
        `count` (default: all) clips of `waves` (an array or a column).

        Accumulated in float64 over chunks of clips, read a chunk at a time (at
        the course's dimensions the features of 256 clips would take 570 MB at
        once): with n frames, S1 = sum x and S2 = sum x^2 per feature,

            mean = S1 / n,    std = sqrt(max(0, S2 / n - mean^2)).
        """
        count = len(waves) if count is None else count
        n, s1, s2 = 0, 0.0, 0.0
        for start in range(0, count, chunk):
            clips = waves[np.arange(start, min(start + chunk, count))]
            x = self.features(clips).numpy().astype(np.float64)
            x = x.reshape(-1, x.shape[-1])
            n += len(x)
            s1 = s1 + x.sum(axis=0)
            s2 = s2 + np.square(x).sum(axis=0)
        mean = s1 / n
        return mean, np.sqrt(np.maximum(0.0, s2 / n - np.square(mean)))

    def features(self, waves):
        """int16 or float32 waveforms (..., samples) -> spectrogram features."""
        waves = tf.convert_to_tensor(waves)
        if waves.dtype == tf.int16:
            waves = tf.cast(waves, tf.float32) / 32768.0
        return features_lib.spectrogram(waves, self.geometry)

    def eval_example(self, wave, targets):
        return self.features(wave), {"labels": tf.cast(targets["labels"], tf.float32),
                                     "events": targets["events"]}

    def train_example(self, wave, targets, seed):
        gain = self.config.augment.gain_db
        wave = tf.cast(wave, tf.float32) / 32768.0
        if gain:
            db = tf.random.stateless_uniform([], seed, -gain, gain)
            wave = wave * tf.pow(10.0, db / 20.0)
        return self.eval_example(wave, targets)

    # ----------------------------------------------------------------- model

    def build_model(self):
        m = self.config.model
        return model_lib.build(self.geometry.num_features, self.mean, self.std,
                               filters=m.filters, kernel_size=m.kernel_size, stride=m.stride,
                               units=m.units, dropout=m.dropout)

    def per_example_loss(self, targets, outputs):
        bce = keras.losses.binary_crossentropy(targets["labels"][..., None], outputs)
        return tf.reduce_mean(bce, axis=-1)  # (batch, Ty) -> (batch,)

    # ------------------------------------------------------------ evaluation

    def probabilities(self, model, split):
        p = predict_outputs(model, split, self.config.eval.batch_size, self.eval_example)
        return p[..., 0]

    def evaluate(self, model, split):
        """Frame and event metrics of `split`, whose clips are read in batches.

        The metrics need the probabilities and targets of every clip at once:
        they are held (Ty float32 + Ty uint8 + max_triggers int32 pairs per
        clip, 0.6 KB at the default), never the clips' waveforms (80 KB each)."""
        c, g = self.config, self.geometry
        p = self.probabilities(model, split)
        labels, events = np.asarray(split.targets["labels"]), np.asarray(split.targets["events"])
        metrics = detect.frame_metrics(labels, p, c.detect.threshold)
        metrics.update(detect.event_metrics(
            p, events, g.step_samples, g.sample_rate, g.clip_samples, c.detect.threshold,
            c.detect.refractory_steps, c.data.label_steps + c.eval.tolerance_steps))
        shown = np.flatnonzero(events[:, 0, 0] >= 0)[:c.eval.clips_shown]  # with a trigger word
        waves = [split.inputs[i] for i in shown]  # read one by one: a split may be a column
        images = {}
        if len(shown):
            figures = [self.figure(w, p[i], labels[i]) for w, i in zip(waves, shown, strict=True)]
            images["clips"] = np.concatenate([images_lib.figure_to_image(f) for f in figures])
        self._summary = [(w, p[i]) for w, i in zip(waves, shown, strict=True)]
        return metrics, images

    def write_summaries(self, prefix):
        """Audio of the clips shown, each with a chime where the model fires."""
        if not self._summary:
            return
        c, g = self.config, self.geometry
        waves = []
        for wave, p in self._summary:
            wave = wave.astype(np.float32) / 32768.0
            times = detect.detect(p, c.detect.threshold, c.detect.refractory_steps)
            waves.append(audio.chime_on_activate(wave, times * g.step_seconds, g.sample_rate))
        tf.summary.audio(prefix + "clips_with_chimes", np.stack(waves)[..., None],
                         g.sample_rate, max_outputs=len(waves))

    def figure(self, wave, probabilities, labels=None, detections=None, title=None):
        """Spectrogram above the label and output curves (a matplotlib figure)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        g = self.geometry
        spec = self.features(wave[None])[0].numpy()
        seconds = len(wave) / g.sample_rate
        steps = np.arange(len(probabilities)) * g.step_seconds
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4), dpi=72, sharex=True)
        top.imshow(spec.T, origin="lower", aspect="auto", cmap="magma",
                   extent=(0, seconds, 0, g.sample_rate / 2 if g.kind == "spectrogram"
                           else spec.shape[1]))
        top.set_ylabel("Hz" if g.kind == "spectrogram" else "mel bin")
        if title:
            top.set_title(title, fontsize=9)
        if labels is not None:
            bottom.plot(steps, labels, color="tab:green", label="label")
        bottom.plot(steps, probabilities, color="tab:blue", label="output")
        bottom.axhline(self.config.detect.threshold, color="grey", linestyle=":")
        if detections is not None:
            for t in detections:
                bottom.axvline(t, color="tab:red", linewidth=1)
        bottom.set_ylim(-0.05, 1.05)
        bottom.set_xlabel("seconds")
        bottom.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        return fig

    # ---------------------------------------------------------------- export

    def export_endpoints(self, model):
        c, g = self.config, self.geometry
        threshold, refractory = float(c.detect.threshold), int(c.detect.refractory_steps)
        context = int(c.detect.context_steps)

        def run_model(windows):
            return model(features_lib.spectrogram(windows, g), training=False)[..., 0]

        def serve(waveforms):
            """float32 waveforms (batch, samples) at config.data.sample_rate, any length."""
            p = detect.stream_probabilities(waveforms, run_model, g.clip_samples, g.ty,
                                            g.step_samples, context)
            times, counts = detect.firing_times(detect.detect_tf(p, threshold, refractory),
                                                g.step_seconds)
            return {"probabilities": p, "detection_times": times, "num_detections": counts,
                    "step_seconds": tf.fill(tf.shape(counts), tf.constant(g.step_seconds))}

        signature = [tf.TensorSpec([None, None], tf.float32, name="waveforms")]
        return {"serving_default": (serve, signature)}

    # --------------------------------------------------------------- predict

    def predict_items(self, path):
        return audio.wav_files(path)

    def read_item(self, file):
        try:
            return audio.read_wav(file, self.geometry.sample_rate)
        except audio.BadAudio as e:
            raise UserError(str(e)) from None

    def predict_item(self, saved_model, file, wave, output):
        """Detects the trigger word in one recording: prints the times, writes
        OUTPUT_chime.wav (a chime at each) and OUTPUT_detections.png (spectrogram
        and output curve). It detects on the SavedModel's probabilities with this
        config's threshold and refractory period (so they need no new export)."""
        c, g = self.config, self.geometry
        serve = saved_model.signatures["serving_default"]
        p = serve(waveforms=tf.constant(wave[None]))["probabilities"][0].numpy()
        times = detect.detect(p, c.detect.threshold, c.detect.refractory_steps) * g.step_seconds
        chime, plot = output + "_chime.wav", output + "_detections.png"
        audio.write_wav(chime, audio.chime_on_activate(wave, times, g.sample_rate),
                        g.sample_rate)
        fig = self.figure(wave, p, detections=times,
                          title=f"{os.path.basename(file)}: {len(times)} detection(s)")
        fig.savefig(plot)
        import matplotlib.pyplot as plt

        plt.close(fig)
        listed = ", ".join(f"{t:.2f}s" for t in times) or "none"
        print(f"{file}: {len(times)} detection(s) at {listed}")
        return {"file": file, "detection_times": [round(float(t), 3) for t in times],
                "chime": chime, "plot": plot}
