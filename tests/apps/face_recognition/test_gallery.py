"""The gallery: enroll, enroll again (update), verify and identify (who_is_it)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.core.errors import UserError
from apps.core.task import Run
from apps.face_recognition import gallery as gallery_lib
from apps.face_recognition import modes
from apps.face_recognition.task import FaceRecognitionTask
from configs.face_recognition import get_config

RED, GREEN, BLUE, GREY = (200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 120)


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_enroll_update_and_identify_round_trip(tmp_path):
    path = str(tmp_path / gallery_lib.FILENAME)
    gallery = gallery_lib.Gallery.load(path)
    assert len(gallery) == 0
    gallery.enroll(["ada", "bob"], _unit([[1, 0, 0], [0, 1, 0]]), ["a.png", "b.png"])
    gallery.save(path)

    gallery = gallery_lib.Gallery.load(path)
    assert gallery.people == ["ada", "bob"]
    # bob enrolled again (two new images) and cy added; ada is kept as she was.
    gallery.enroll(["bob", "bob", "cy"], _unit([[0, 0, 1], [0, 0.2, 1], [1, 1, 0]]),
                   ["b1.png", "b2.png", "c.png"])
    gallery.save(path)
    gallery = gallery_lib.Gallery.load(path)
    assert gallery.people == ["ada", "bob", "cy"] and len(gallery) == 4
    assert sorted(gallery.files.tolist()) == ["a.png", "b1.png", "b2.png", "c.png"]

    name, distance, closest = gallery.identify(_unit([0.1, 0, 1]), threshold=0.7)
    assert name == closest == "bob"
    assert distance == pytest.approx(np.linalg.norm(_unit([0.1, 0, 1]) - _unit([0, 0, 1])),
                                     abs=1e-6)
    # bob's old face is gone: a face like it is now "not in the database".
    name, distance, closest = gallery.identify(_unit([0, 1, 0]), threshold=0.7)
    assert name is None and closest == "cy" and distance == pytest.approx(0.7654, abs=1e-4)
    assert gallery.distances(_unit([0, 1, 0]))["bob"] > 1.2
    assert gallery.identify(_unit([1, 0.05, 0]), 0.7)[0] == "ada"

    distance, accepted = gallery.verify(_unit([1, 0.9, 0]), "cy", threshold=0.7)
    assert accepted and distance < 0.1
    distance, accepted = gallery.verify(_unit([1, 0.9, 0]), "ada", threshold=0.7)
    assert not accepted and distance > 0.7
    with pytest.raises(UserError, match="--identity=dan: not in the gallery"):
        gallery.verify(_unit([1, 0, 0]), "dan", 0.7)


def test_a_name_written_decomposed_is_found_as_typed(tmp_path):
    """macOS writes "Zoë" as "Zoe" + a combining diaeresis (NFD); a user types it composed."""
    gallery = gallery_lib.Gallery()
    gallery.enroll(["Zoe\u0308"], _unit([[1, 0, 0]]), ["z.png"])
    gallery.require("Zo\u00eb")
    distance, accepted = gallery.verify(_unit([1, 0, 0]), "Zo\u00eb", 0.5)
    assert accepted and distance == pytest.approx(0.0, abs=1e-6)
    assert gallery.people == ["Zo\u00eb"]


def test_gallery_folder_takes_sub_folders_and_loose_images(tmp_path):
    (tmp_path / "ada").mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8), RED).save(tmp_path / "ada" / f"{i}.png")
    Image.new("RGB", (8, 8), GREEN).save(tmp_path / "bob.jpg")
    (tmp_path / "notes.txt").write_text("not a face")
    people = gallery_lib.gallery_files(str(tmp_path))
    assert sorted(people) == ["ada", "bob"]
    assert len(people["ada"]) == 2 and people["bob"][0].endswith("bob.jpg")
    with pytest.raises(UserError, match="--gallery=.*no such folder"):
        gallery_lib.gallery_files(str(tmp_path / "missing"))


class _ColourModel(tf.Module):
    """A stand-in for the exported model: the normalised mean colour is the embedding."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8)])
    def serve(self, images):
        mean = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2]) - 120.0
        embeddings = tf.math.l2_normalize(mean, axis=-1)
        return {"embeddings": embeddings, "threshold": tf.fill(tf.shape(mean)[:1], 0.5)}


def test_enroll_skips_unreadable_images_and_identify_finds_who(tmp_path, capsys, caplog):
    workdir = str(tmp_path / "run")
    model = _ColourModel()
    tf.saved_model.save(model, os.path.join(workdir, "export"),
                        signatures={"serving_default": model.serve})
    people = tmp_path / "people"
    (people / "ada").mkdir(parents=True)
    Image.new("RGB", (40, 30), RED).save(people / "ada" / "1.png")
    (people / "ada" / "2.png").write_bytes(b"broken")
    Image.new("RGB", (12, 12), GREEN).save(people / "bob.png")
    config = get_config("tiny")
    config.model.embedding_dim = 3  # the stand-in's embedding: a colour
    task = FaceRecognitionTask(config)
    modes.enroll(task, Run(workdir, "enroll", options={"gallery": str(people)}))
    assert "2.png" in caplog.text
    out = capsys.readouterr().out
    assert "enrolled 2 people (2 images)" in out and "skipped 1 image file(s)" in out

    more = tmp_path / "more"
    more.mkdir()
    Image.new("RGB", (12, 12), BLUE).save(more / "cy.png")
    modes.enroll(task, Run(workdir, "enroll", options={"gallery": str(more)}))
    gallery = gallery_lib.Gallery.load(os.path.join(workdir, gallery_lib.FILENAME))
    assert gallery.people == ["ada", "bob", "cy"]
    queries = tmp_path / "queries"
    queries.mkdir()
    for name, colour in (("query", BLUE), ("stranger", GREY)):
        Image.new("RGB", (16, 16), colour).save(queries / f"{name}.png")
    modes.identify(task, Run(workdir, "identify", input=str(queries)))
    out = capsys.readouterr().out
    assert f"{queries / 'query.png'}: cy (distance 0.000, threshold 0.500)" in out
    assert f"{queries / 'stranger.png'}: not in the database" in out
