"""End to end, as a user runs it: train, run again (not retrained), export, reload
the SavedModel in a process that cannot import the project, then enroll a
gallery, identify and verify.

Every training run is a real `python -m apps.face_recognition` process on the
tiny config.
"""

import glob
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.core.errors import UserError
from apps.core.workdir import read_metrics as _metrics
from apps.face_recognition import data as data_lib
from apps.face_recognition import gallery as gallery_lib
from apps.face_recognition import metrics as metrics_lib
from apps.face_recognition.task import FaceRecognitionTask
from configs.face_recognition import get_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
CONFIG = "--config=configs/face_recognition.py:tiny"
KEYS = ("test_verification_accuracy", "test_roc_auc", "test_tar_at_far_1e-2", "test_rank1",
        "pixel_baseline_verification_accuracy", "threshold", "examples_per_sec",
        "train_seconds")


def _run(workdir, *extra, check=True):
    result = subprocess.run([sys.executable, "-m", "apps.face_recognition", CONFIG,
                             f"--workdir={workdir}", *extra],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("faces"))
    result = _run(workdir)
    assert "SavedModel:" in result.stdout
    return workdir


@pytest.fixture(scope="module")
def test_split():
    data, names = data_lib.load(get_config("tiny"))  # the run's split (same seed)
    return data.test, names


def test_train_writes_metrics_tensorboard_and_projector(finished):
    assert {"metrics.json", "config.json", "ckpt", "tb", "export"} <= set(os.listdir(finished))
    metrics = _metrics(finished)
    for key in KEYS:
        assert isinstance(metrics[key], float), key
    for key in KEYS[:5]:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert 0.0 < metrics["threshold"] < 2.0
    projector = os.path.join(finished, "tb", "projector")
    assert {"projector_config.pbtxt", "metadata.tsv", "sprite.png"} <= set(os.listdir(projector))
    with open(os.path.join(projector, "metadata.tsv")) as f:
        assert len(f.read().splitlines()) == 24  # config.eval.projector_images
    tags = set()
    for events in glob.glob(os.path.join(finished, "tb", "eval", "events*")):
        for event in tf.compat.v1.train.summary_iterator(events):
            tags |= {(v.tag, v.metadata.plugin_data.plugin_name) for v in event.summary.value}
    assert {("val_active_triplets", "scalars"), ("val_roc_curve", "images"),
            ("val_distance_histograms", "images"), ("val_same_person_distance", "histograms"),
            ("different_person_distance", "histograms"),
            ("test_rank1", "scalars")} <= tags


def test_a_second_run_is_not_retrained(finished):
    before = _metrics(finished)
    again = _run(finished)
    assert "already finished" in again.stderr
    assert _metrics(finished) == before


ISOLATED = textwrap.dedent("""
    import sys
    for name in ("apps", "layers", "optimizers", "configs"):
        sys.modules[name] = None  # this process cannot import the project
    import json
    import numpy as np
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    serve = model.signatures["serving_default"]
    data = np.load(sys.argv[2])
    out = serve(images=tf.constant(data["images"]))
    e = out["embeddings"].numpy().astype(np.float64)
    t = float(out["threshold"].numpy()[0])
    same_d = np.linalg.norm(e[data["same"][:, 0]] - e[data["same"][:, 1]], axis=-1)
    diff_d = np.linalg.norm(e[data["diff"][:, 0]] - e[data["diff"][:, 1]], axis=-1)
    grey = serve(images=tf.constant(data["big_grey"]))["embeddings"].numpy()
    pairs = model.signatures["verify"](images=tf.constant(data["images"][:4]),
                                       references=tf.constant(data["images"][1:5]))
    print(json.dumps({
        "norms": np.linalg.norm(e, axis=-1).tolist(),
        "threshold": t,
        "accuracy": float((np.sum(same_d < t) + np.sum(diff_d >= t)) / (len(same_d) + len(diff_d))),
        "grey_shape": list(grey.shape),
        "verify_distance": pairs["distance"].numpy().tolist(),
        "embedding_distance": np.linalg.norm(e[:4] - e[1:5], axis=-1).tolist(),
        "verify_same": pairs["same"].numpy().tolist(),
    }))
""")


def test_saved_model_embeds_in_a_process_without_the_project(finished, test_split, tmp_path):
    test, _ = test_split
    config = get_config("tiny")
    same, diff = metrics_lib.pair_indices(test.targets, config.eval.pairs, config.seed)
    big_grey = np.kron(test.inputs[:3].mean(-1, keepdims=True).astype(np.uint8),
                       np.ones((1, 3, 3, 1), np.uint8))  # 48x48 grey: another size
    np.savez(tmp_path / "test.npz", images=test.inputs, same=same, diff=diff, big_grey=big_grey)
    result = subprocess.run([sys.executable, "-I", "-c", ISOLATED,
                             os.path.join(finished, "export"), str(tmp_path / "test.npz")],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    metrics = _metrics(finished)
    np.testing.assert_allclose(out["norms"], 1.0, atol=1e-5)  # L2-normalised
    assert out["threshold"] == pytest.approx(metrics["threshold"], abs=1e-6)
    # The held-out verification accuracy again, from the export (one pair may flip
    # on a rounding difference at the threshold).
    assert out["accuracy"] == pytest.approx(metrics["test_verification_accuracy"],
                                            abs=1 / (len(same) + len(diff)) + 1e-9)
    assert out["grey_shape"] == [3, 16]
    np.testing.assert_allclose(out["verify_distance"], out["embedding_distance"], atol=1e-5)
    assert out["verify_same"] == [d < out["threshold"] for d in out["verify_distance"]]


def test_enroll_identify_and_verify(finished, test_split, tmp_path, capsys):
    test, names = test_split
    people = tmp_path / "gallery"
    (people / "broken").mkdir(parents=True)
    (people / "broken" / "face.jpg").write_bytes(b"not a jpeg")
    firsts = [int(np.flatnonzero(test.targets == p)[0]) for p in np.unique(test.targets)[:3]]
    for i in firsts:
        Image.fromarray(test.inputs[i]).save(people / f"{names[test.targets[i]]}.png")
    result = _run(finished, "--mode=enroll", f"--gallery={people}")
    assert "enrolled 3 people (3 images)" in result.stdout
    assert "face.jpg" in result.stderr  # the unreadable file is named and skipped

    # identify and verify in this process (the same code path; the flags are tested above).
    query = people / f"{names[test.targets[firsts[1]]]}.png"
    who = names[test.targets[firsts[1]]]
    task = FaceRecognitionTask(get_config("tiny"))
    task.run_mode("identify", finished, str(query))
    assert f"{query}: {who} (distance 0.000" in capsys.readouterr().out
    task.run_mode("verify", finished, str(query), identity=who)
    assert f"distance 0.000 to {who} (threshold" in capsys.readouterr().out
    assert len(gallery_lib.Gallery.load(os.path.join(finished, "gallery.npz"))) == 3
    with pytest.raises(UserError, match="--mode=verify needs --identity"):
        task.run_mode("verify", finished, str(query))
