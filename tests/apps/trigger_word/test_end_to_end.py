"""End to end, as a user runs it: train (tiny), resume, export, reload in a process that
cannot import the project, predict on a wav file.

The two training runs and --mode=predict are real `python -m apps.trigger_word`
processes (tests/apps/cli.py); bad input is tests/apps/trigger_word/test_bad_input.py.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from scipy.io import wavfile

from apps.core.workdir import read_metrics as _metrics
from apps.trigger_word import audio, detect
from apps.trigger_word import data as data_lib
from apps.trigger_word.task import TriggerWordTask
from configs.trigger_word import get_config
from tests.apps.cli import run_app, run_isolated

KEYS = ("test_event_recall", "test_false_alarms_per_hour", "test_frame_precision",
        "test_frame_recall", "test_frame_f1", "examples_per_sec", "train_seconds")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch, then the same workdir trained to the tiny config's two (a resume)."""
    workdir = str(tmp_path_factory.mktemp("run"))
    cache = str(tmp_path_factory.mktemp("cache"))
    first = run_app("trigger_word", workdir, f"--config.data.cache_dir={cache}",
                    "--config.train.epochs=1")
    second = run_app("trigger_word", workdir, f"--config.data.cache_dir={cache}")
    return workdir, cache, first, second


def _config(cache):
    """The config of the runs, built in this process."""
    config = get_config("tiny")
    config.data.cache_dir = cache
    return config


def test_training_resumes_and_writes_the_workdir(run):
    workdir, _, first, second = run
    assert "Restored" in second.stderr and "(step 3)" in second.stderr  # 48 clips / 16
    assert {"metrics.json", "config.json", "ckpt", "tb", "export"} <= set(os.listdir(workdir))
    metrics = _metrics(workdir)
    assert metrics["steps"] == 6
    for key in KEYS:
        assert isinstance(metrics[key], float) and np.isfinite(metrics[key]), key
    for key in ("test_event_recall", "test_frame_precision", "test_frame_recall",
                "test_frame_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    # The summary's headline: this run's test figures.
    assert f"test: frame_f1 {metrics['test_frame_f1']:.4f}, " in second.stdout
    events = os.listdir(os.path.join(workdir, "tb", "eval"))
    assert events  # spectrogram plots and audio clips are written there
    from tensorboard.backend.event_processing import event_accumulator

    tb = event_accumulator.EventAccumulator(os.path.join(workdir, "tb", "eval"),
                                            size_guidance={"tensors": 0})
    tb.Reload()
    tags = tb.Tags()["tensors"]  # TF2 summaries are tensors
    assert {"val_clips", "val_clips_with_chimes", "test_clips", "test_clips_with_chimes"} <= set(
        tags)


# Run by tests/apps/cli.py's run_isolated: the project cannot be imported.
ISOLATED = """
import json
import sys

import numpy as np
import tensorflow as tf

serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
data = np.load(sys.argv[2])
clips = serve(waveforms=tf.constant(data["clips"]))
stream = serve(waveforms=tf.constant(data["stream"][None]))
print(json.dumps({
    "clips": clips["probabilities"].numpy().tolist(),
    "stream": stream["probabilities"].numpy()[0].tolist(),
    "times": stream["detection_times"].numpy()[0].tolist(),
    "count": int(stream["num_detections"].numpy()[0]),
    "step_seconds": float(stream["step_seconds"].numpy()[0]),
}))
"""


def test_saved_model_detects_in_a_process_without_the_project(run, tmp_path):
    workdir, cache, _, _ = run
    config = _config(cache)
    task = TriggerWordTask(config)
    test = data_lib.load(config).test  # the run's test split (same seed, same cache)
    clips = np.asarray(test.inputs).astype(np.float32) / 32768.0  # composed on read
    labels, words = np.asarray(test.targets["labels"]), np.asarray(test.targets["events"])
    stream = np.concatenate(clips[:5])  # 10 s: several overlapping windows
    np.savez(tmp_path / "test.npz", clips=clips, stream=stream)
    out = run_isolated(ISOLATED, os.path.join(workdir, "export"), tmp_path / "test.npz")
    g = task.geometry
    p = np.asarray(out["clips"])
    assert p.shape == (len(test), g.ty)  # one clip = one window: Ty steps
    # The exported model scores the test clips exactly as the run's evaluation did.
    metrics = _metrics(workdir)
    frame = detect.frame_metrics(labels, p, config.detect.threshold)
    events = detect.event_metrics(p, words, g.step_samples, g.sample_rate,
                                  g.clip_samples, config.detect.threshold,
                                  config.detect.refractory_steps,
                                  config.data.label_steps + config.eval.tolerance_steps)
    for key in ("frame_precision", "frame_recall", "frame_f1"):
        assert frame[key] == pytest.approx(metrics["test_" + key], abs=1e-3)
    assert events["event_recall"] == pytest.approx(metrics["test_event_recall"], abs=0.05)
    # The stream: ceil(samples / step) steps; the first window's steps are the first clip's.
    curve = np.asarray(out["stream"])
    assert curve.shape == (-(-len(stream) // g.step_samples),)
    np.testing.assert_allclose(curve[:g.ty], p[0], atol=1e-4)
    assert out["step_seconds"] == pytest.approx(g.step_seconds)
    fired = detect.detect(curve, config.detect.threshold, config.detect.refractory_steps)
    assert out["count"] == len(fired)
    np.testing.assert_allclose(out["times"][:out["count"]], fired * g.step_seconds, atol=1e-5)


def test_predict_prints_detections_and_writes_the_chime_and_plot(run, tmp_path):
    workdir, cache, _, _ = run
    clips = data_lib.load(_config(cache)).test.inputs[np.arange(3)].astype(np.float32) / 32768.0
    wave16k = audio.resample(np.concatenate(clips), 8000, 16000)  # another sample rate
    wavfile.write(tmp_path / "talk.wav", 16000, audio.to_int16(wave16k))
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEnothing")  # skipped, counted
    result = run_app("trigger_word", workdir, f"--config.data.cache_dir={cache}",
                     "--mode=predict", f"--input={tmp_path}")
    line = next(x for x in result.stdout.splitlines() if x.startswith(str(tmp_path)))
    assert line.startswith(str(tmp_path / "talk.wav"))
    count = int(line.split(": ")[1].split(" ")[0])
    assert "skipped 1 of 2 .wav files" in result.stdout
    assert "broken.wav: not a readable wav file" in result.stderr
    serve = tf.saved_model.load(os.path.join(workdir, "export")).signatures["serving_default"]
    wave = audio.read_wav(str(tmp_path / "talk.wav"), 8000)
    out = serve(waveforms=tf.constant(wave[None]))
    assert count == int(out["num_detections"][0])
    times = out["detection_times"][0, :count].numpy()
    listed = ", ".join(f"{t:.2f}s" for t in times) or "none"
    assert line.endswith(f"{count} detection(s) at {listed}")
    predictions = os.path.join(workdir, "predictions")
    chimed = audio.read_wav(os.path.join(predictions, "talk_chime.wav"), 8000)
    assert chimed.shape == wave.shape
    np.testing.assert_allclose(chimed, audio.chime_on_activate(wave, times, 8000), atol=1e-4)
    assert os.path.getsize(os.path.join(predictions, "talk_detections.png")) > 1000
    with open(os.path.join(predictions, "predictions.json")) as f:
        records = json.load(f)  # the readable file only
    assert [r["file"] for r in records] == [str(tmp_path / "talk.wav")]
    np.testing.assert_allclose(records[0]["detection_times"], times, atol=1e-3)
    assert records[0]["chime"] == os.path.join(predictions, "talk_chime.wav")
