"""Synthetic faces, the identity split, the folder loader and a TFDS set like `lfw`."""

import numpy as np
import pytest
from PIL import Image

from apps.core.columns import ExampleColumn
from apps.face_recognition import data as data_lib
from apps.face_recognition import metrics as m
from apps.face_recognition import synth
from configs.face_recognition import get_config
from tests.apps import tfds_toys


def test_synthetic_faces_are_deterministic_and_identity_major():
    images, labels = synth.faces(5, 3, size=24, seed=7)
    assert images.shape == (15, 24, 24, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.repeat(np.arange(5), 3))
    again, _ = synth.faces(5, 3, size=24, seed=7)
    np.testing.assert_array_equal(images, again)
    other, _ = synth.faces(5, 3, size=24, seed=8)
    assert not np.array_equal(images, other)
    assert images.std() > 20  # real pictures, not blank


def test_without_variation_a_person_is_always_the_same_picture():
    images, _ = synth.faces(4, 3, size=24, seed=0, variation=0.0)
    people = images.reshape(4, 3, -1).astype(int)
    assert (people == people[:, :1]).all()  # the three images of each person are equal
    assert np.abs(people[0, 0] - people[1, 0]).mean() > 5  # people differ


def test_pixel_distance_does_poorly_on_synthetic_faces():
    images, labels = synth.faces(60, 6, size=32, seed=3)
    pixels = images.reshape(len(images), -1) / 255.0
    same, diff = m.pair_indices(labels, 500, seed=0)
    # Even with the threshold fitted on these very pairs, pixels verify poorly.
    _, accuracy = m.best_threshold(m.pair_distances(pixels, same),
                                   m.pair_distances(pixels, diff))
    assert 0.5 <= accuracy <= 0.75


def test_split_is_by_identity_and_drops_people_with_one_image():
    labels = np.concatenate([np.repeat(np.arange(20), 3), [20, 21]])  # 20 and 21: one image
    train, val, test = data_lib.split_identities(labels, (0.6, 0.2, 0.2), seed=0)
    people = [set(labels[i]) for i in (train, val, test)]
    assert [len(p) for p in people] == [12, 4, 4]
    assert not (people[0] & people[1] or people[0] & people[2] or people[1] & people[2])
    assert 20 not in set().union(*people) and 21 not in set().union(*people)
    assert len(train) + len(val) + len(test) == 60


def _write_people(root, people=("ada", "bob", "cy"), per_person=3, size=(20, 18)):
    rng = np.random.default_rng(0)
    for name in people:
        (root / name).mkdir(parents=True)
        for i in range(per_person):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
                root / name / f"{name}_{i:04d}.jpg")
    return root


def test_folder_source_through_the_config(tmp_path):
    root = _write_people(tmp_path / "people", people=[f"p{i}" for i in range(10)])
    config = get_config("folder")
    config.data.path = str(root)
    config.data.image_size = 16
    config.data.split = (0.6, 0.2, 0.2)
    data, names = data_lib.load(config)
    assert names == [f"p{i}" for i in range(10)]
    sizes = [len(np.unique(s.targets)) for s in (data.train, data.val, data.test)]
    assert sizes == [6, 2, 2]
    assert data.train.inputs.shape[1:] == (16, 16, 3)


@pytest.mark.parametrize("file_format", ["array_record", "tfrecord"])
def test_tfds_lfw_like_set_streams_its_images(tmp_path, file_format):
    people = [f"person_{i}" for i in range(8) for _ in range(3)] + ["Zoë"]
    data_dir = tfds_toys.faces(tmp_path, people, file_format=file_format)
    config = get_config("lfw")
    config.data.update(name="toy_lfw", data_dir=data_dir, image_size=20, split=(0.5, 0.25, 0.25))
    data, names = data_lib.load(config)  # Zoë has one image: left out (min_images)
    assert names == sorted(set(people))
    assert [len(np.unique(s.targets)) for s in (data.train, data.val, data.test)] == [4, 2, 2]
    assert isinstance(data.test.inputs, ExampleColumn)
    assert data.test.inputs.shape[1:] == (20, 20, 3)
    assert data.test.inputs[np.arange(len(data.test))].shape == (len(data.test), 20, 20, 3)
