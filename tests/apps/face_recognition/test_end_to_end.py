"""End to end, as a user runs it: train (the real command line), run again (not
retrained), reload the SavedModel in a process that cannot import the project,
then predict (embeddings), enroll a gallery (the real command line), identify,
predict (identities) and verify.
"""

import glob
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.core.main import execute
from apps.core.workdir import read_metrics
from apps.face_recognition import data as data_lib
from apps.face_recognition import gallery as gallery_lib
from apps.face_recognition import metrics as metrics_lib
from apps.face_recognition.task import FaceRecognitionTask
from configs.face_recognition import get_config
from tests.apps.cli import run_app, run_isolated

KEYS = ("test_verification_accuracy", "test_roc_auc", "test_tar_at_far_1e-2", "test_rank1",
        "pixel_baseline_verification_accuracy", "threshold", "examples_per_sec",
        "train_seconds")


@pytest.fixture(scope="module")
def test_split():
    data, names = data_lib.load(get_config("tiny"))  # the run's split (same seed)
    return data.test, names


def test_train_writes_metrics_tensorboard_and_projector(trained_faces):
    assert {"metrics.json", "config.json", "ckpt", "tb", "export"} <= set(
        os.listdir(trained_faces))
    metrics = read_metrics(trained_faces)
    for key in KEYS:
        assert isinstance(metrics[key], float), key
    for key in KEYS[:5]:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert 0.0 < metrics["threshold"] < 2.0
    projector = os.path.join(trained_faces, "tb", "projector")
    assert {"projector_config.pbtxt", "metadata.tsv", "sprite.png"} <= set(os.listdir(projector))
    with open(os.path.join(projector, "metadata.tsv")) as f:
        assert len(f.read().splitlines()) == 24  # config.eval.projector_images
    tags = set()
    for events in glob.glob(os.path.join(trained_faces, "tb", "eval", "events*")):
        for event in tf.compat.v1.train.summary_iterator(events):
            tags |= {(v.tag, v.metadata.plugin_data.plugin_name) for v in event.summary.value}
    assert {("val_active_triplets", "scalars"), ("val_roc_curve", "images"),
            ("val_distance_histograms", "images"), ("val_same_person_distance", "histograms"),
            ("test_different_person_distance", "histograms"),
            ("test_rank1", "scalars")} <= tags


def test_a_second_run_is_not_retrained(trained_faces):
    before = read_metrics(trained_faces)
    files = ("metrics.json", "ckpt/checkpoint", "export/saved_model.pb")
    stamps = [os.path.getmtime(os.path.join(trained_faces, f)) for f in files]
    again = execute(FaceRecognitionTask, get_config("tiny"), trained_faces)
    assert again == before == read_metrics(trained_faces)
    # Nothing was trained, checkpointed or exported again.
    assert [os.path.getmtime(os.path.join(trained_faces, f)) for f in files] == stamps


ISOLATED = """
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
"""


def test_saved_model_embeds_in_a_process_without_the_project(trained_faces, test_split,
                                                             tmp_path):
    test, _ = test_split
    config = get_config("tiny")
    same, diff = metrics_lib.pair_indices(test.targets, config.eval.pairs, config.seed)
    big_grey = np.kron(test.inputs[:3].mean(-1, keepdims=True).astype(np.uint8),
                       np.ones((1, 3, 3, 1), np.uint8))  # 48x48 grey: another size
    np.savez(tmp_path / "test.npz", images=test.inputs, same=same, diff=diff, big_grey=big_grey)
    out = run_isolated(ISOLATED, os.path.join(trained_faces, "export"), tmp_path / "test.npz")
    metrics = read_metrics(trained_faces)
    np.testing.assert_allclose(out["norms"], 1.0, atol=1e-5)  # L2-normalised
    assert out["threshold"] == pytest.approx(metrics["threshold"], abs=1e-6)
    # The held-out verification accuracy again, from the export (one pair may flip
    # on a rounding difference at the threshold).
    assert out["accuracy"] == pytest.approx(metrics["test_verification_accuracy"],
                                            abs=1 / (len(same) + len(diff)) + 1e-9)
    assert out["grey_shape"] == [3, 16]
    np.testing.assert_allclose(out["verify_distance"], out["embedding_distance"], atol=1e-5)
    assert out["verify_same"] == [d < out["threshold"] for d in out["verify_distance"]]


def test_enroll_identify_and_verify(trained_faces, test_split, tmp_path, capsys):
    test, names = test_split
    workdir = tmp_path / "run"  # the trained run's export, and a gallery of its own
    workdir.mkdir()
    os.symlink(os.path.join(trained_faces, "export"), workdir / "export")
    people = tmp_path / "gallery"
    (people / "broken").mkdir(parents=True)
    (people / "broken" / "face.jpg").write_bytes(b"not a jpeg")
    firsts = [int(np.flatnonzero(test.targets == p)[0]) for p in np.unique(test.targets)[:3]]
    for i in firsts:
        Image.fromarray(test.inputs[i]).save(people / f"{names[test.targets[i]]}.png")
    # Nobody enrolled yet: predict prints each face's embedding, and records it.
    execute(FaceRecognitionTask, get_config("tiny"), str(workdir), "predict", str(people))
    assert re.search(r"\.png: embedding \[[-\d., ]+, \.\.\.\] \(16-d\)", capsys.readouterr().out)
    with open(workdir / "predictions" / "predictions.json") as f:
        records = json.load(f)
    assert len(records) == 3 and all(len(r["embedding"]) == 16 for r in records)
    result = run_app("face_recognition", workdir, "--mode=enroll", f"--gallery={people}")
    assert "enrolled 3 people (3 images)" in result.stdout
    assert "skipped 1 image file(s), unreadable or too small" in result.stdout
    assert "face.jpg" in result.stderr  # the unreadable file is named and skipped
    assert len(gallery_lib.Gallery.load(str(workdir / "gallery.npz"))) == 3

    # identify, verify and predict in this process, the flags as the entrypoint passes them.
    config = get_config("tiny")
    query = people / f"{names[test.targets[firsts[1]]]}.png"
    who = names[test.targets[firsts[1]]]
    execute(FaceRecognitionTask, config, str(workdir), "identify", str(query))
    assert f"{query}: {who} (distance 0.000" in capsys.readouterr().out
    execute(FaceRecognitionTask, config, str(workdir), "predict", str(query))
    assert f"{query}: {who} (distance 0.000" in capsys.readouterr().out
    with open(workdir / "predictions" / "predictions.json") as f:
        (record,) = json.load(f)
    assert record["identity"] == record["closest"] == who and record["distance"] < 1e-3
    execute(FaceRecognitionTask, config, str(workdir), "verify", str(query), identity=who)
    assert f"distance 0.000 to {who} (threshold" in capsys.readouterr().out
    stranger = names[test.targets[firsts[0]]]
    execute(FaceRecognitionTask, config, str(workdir), "verify", str(query), identity=stranger)
    line = capsys.readouterr().out
    distance, threshold, verdict = re.search(
        rf"distance ([\d.]+) to {stranger} \(threshold ([\d.]+)\): (\w+)", line).groups()
    assert float(distance) > 0
    assert verdict == ("accept" if float(distance) < float(threshold) else "reject")
