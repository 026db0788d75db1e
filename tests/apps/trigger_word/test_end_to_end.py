"""End to end, as a user runs it: train (tiny), resume, export, reload in a process that
cannot import the project, predict on a wav file."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from scipy.io import wavfile

from apps.core import config as config_lib
from apps.core.errors import UserError
from apps.core.optim import RULES as OPTIMIZER_RULES
from apps.core.workdir import read_metrics as _metrics
from apps.trigger_word import audio, detect
from apps.trigger_word import data as data_lib
from apps.trigger_word.task import TriggerWordTask
from configs.trigger_word import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
KEYS = ("test_event_recall", "test_false_alarms_per_hour", "test_frame_precision",
        "test_frame_recall", "test_frame_f1", "examples_per_sec", "train_seconds")


def _run(workdir, cache, *extra, check=True):
    command = [sys.executable, "-m", "apps.trigger_word", "--config=configs/trigger_word.py:tiny",
               f"--workdir={workdir}", f"--config.data.cache_dir={cache}", *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch, then the same workdir trained to the tiny config's two (a resume)."""
    workdir = str(tmp_path_factory.mktemp("run"))
    cache = str(tmp_path_factory.mktemp("cache"))
    first = _run(workdir, cache, "--config.train.epochs=1")
    second = _run(workdir, cache)
    return workdir, cache, first, second


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
    printed = json.loads(second.stdout[second.stdout.index("{"):])
    assert printed["test_frame_f1"] == metrics["test_frame_f1"]
    events = os.listdir(os.path.join(workdir, "tb", "eval"))
    assert events  # spectrogram plots and audio clips are written there
    from tensorboard.backend.event_processing import event_accumulator

    tb = event_accumulator.EventAccumulator(os.path.join(workdir, "tb", "eval"),
                                            size_guidance={"tensors": 0})
    tb.Reload()
    tags = tb.Tags()["tensors"]  # TF2 summaries are tensors
    assert "clips" in tags and "clips_with_chimes" in tags and "val_clips" in tags


ISOLATED = textwrap.dedent("""
    import sys
    for name in ("apps", "layers", "optimizers", "configs"):
        sys.modules[name] = None  # this process cannot import the project
    import json
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
""")


def test_saved_model_detects_in_a_process_without_the_project(run, tmp_path):
    workdir, cache, _, _ = run
    config = get_config("tiny")
    config.data.cache_dir = cache
    task = TriggerWordTask(config)
    test = data_lib.load(config).test  # the run's test split (same seed, same cache)
    clips = test.inputs.astype(np.float32) / 32768.0
    stream = np.concatenate(clips[:5])  # 10 s: several overlapping windows
    np.savez(tmp_path / "test.npz", clips=clips, stream=stream)
    result = subprocess.run([sys.executable, "-I", "-c", ISOLATED,
                             os.path.join(workdir, "export"), str(tmp_path / "test.npz")],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    g = task.geometry
    p = np.asarray(out["clips"])
    assert p.shape == (len(test), g.ty)  # one clip = one window: Ty steps
    # The exported model scores the test clips exactly as the run's evaluation did.
    metrics = _metrics(workdir)
    frame = detect.frame_metrics(test.targets["labels"], p, config.detect.threshold)
    events = detect.event_metrics(p, test.targets["events"], g.step_samples, g.sample_rate,
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
    config = get_config("tiny")
    config.data.cache_dir = cache
    clips = data_lib.load(config).test.inputs[:3].astype(np.float32) / 32768.0
    wave16k = audio.resample(np.concatenate(clips), 8000, 16000)  # another sample rate
    wavfile.write(tmp_path / "talk.wav", 16000, audio.to_int16(wave16k))
    result = _run(workdir, cache, "--mode=predict", f"--input={tmp_path / 'talk.wav'}")
    line = next(x for x in result.stdout.splitlines() if x.startswith(str(tmp_path)))
    count = int(line.split(": ")[1].split(" ")[0])
    serve = tf.saved_model.load(os.path.join(workdir, "export")).signatures["serving_default"]
    wave = audio.read_wav(str(tmp_path / "talk.wav"), 8000)
    out = serve(waveforms=tf.constant(wave[None]))
    assert count == int(out["num_detections"][0])
    chimed = audio.read_wav(os.path.join(workdir, "predict", "talk_chime.wav"), 8000)
    assert chimed.shape == wave.shape
    times = out["detection_times"][0, :count].numpy()
    np.testing.assert_allclose(chimed, audio.chime_on_activate(wave, times, 8000), atol=1e-4)
    assert os.path.getsize(os.path.join(workdir, "predict", "talk_detections.png")) > 1000

    with pytest.raises(UserError, match="none.wav: no such file"):
        TriggerWordTask(config).run_mode("predict", workdir, str(tmp_path / "none.wav"))
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEnothing")
    with pytest.raises(UserError, match="broken.wav: not a readable wav"):
        TriggerWordTask(config).run_mode("predict", workdir, str(tmp_path / "broken.wav"))


def test_bad_config_values_name_the_field():
    rules = {**config_lib.COMMON_RULES, **OPTIMIZER_RULES, **TriggerWordTask.rules}
    config = get_config("tiny")
    config.detect.threshold = 1.5
    with pytest.raises(UserError, match=r"config.detect.threshold = 1.5: expected"):
        config_lib.check(config, rules)
    config = get_config("tiny")
    config.data.ty = 99
    with pytest.raises(UserError, match=r"config.data.ty = 99: the network gives 46"):
        TriggerWordTask(config)
    config = get_config("tiny")
    config.features.overlap = 200
    with pytest.raises(UserError, match=r"config.features.overlap = 200"):
        TriggerWordTask(config)
