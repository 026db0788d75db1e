"""The gallery: a database of enrolled people's embeddings, and who_is_it.

One-shot recognition, as in the notes: one image per person is enough to
enroll them. The gallery lives in the workdir as `gallery.npz` (names,
embeddings, source files); enrolling again replaces the people enrolled
again and keeps everyone else. A person enrolled from several images has
several embeddings; their distance to a face is the smallest one.

    verify(face, name)  distance to `name`; accepted when distance < threshold
    identify(face)      the closest person, or None ("not in the database")
                        when even the closest is at distance >= threshold
"""

import os

import numpy as np
from absl import logging

from apps.core.errors import UserError
from apps.core.images import IMAGE_EXTENSIONS, read_image

FILENAME = "gallery.npz"


class Gallery:
    """Names (M,), embeddings (M, D) and the files they came from (M,)."""

    def __init__(self, names=(), embeddings=None, files=()):
        self.names = np.asarray(names, dtype=str)
        self.embeddings = (np.zeros((0, 0), np.float32) if embeddings is None
                           else np.asarray(embeddings, np.float32))
        self.files = np.asarray(files, dtype=str)

    def __len__(self):
        return len(self.names)

    @property
    def people(self):
        return sorted(set(self.names.tolist()))

    @classmethod
    def load(cls, path):
        if not os.path.exists(path):
            return cls()
        try:
            with np.load(path) as f:
                return cls(f["names"], f["embeddings"], f["files"])
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{path}: not a readable gallery ({e})") from None

    def save(self, path):
        """Writes the gallery atomically (temp file then rename)."""
        tmp = path + ".tmp.npz"
        np.savez(tmp, names=self.names, embeddings=self.embeddings, files=self.files)
        os.replace(tmp, path)
        return path

    def enroll(self, names, embeddings, files):
        """Adds people; the entries of anyone enrolled again are replaced."""
        names, embeddings = np.asarray(names, dtype=str), np.asarray(embeddings, np.float32)
        if len(self) and self.embeddings.shape[1] != embeddings.shape[1]:
            raise UserError(f"the gallery holds {self.embeddings.shape[1]}-d embeddings but "
                            f"the model gives {embeddings.shape[1]}-d ones; enroll everyone "
                            "again into a new workdir")
        keep = ~np.isin(self.names, names)
        self.embeddings = (np.concatenate([self.embeddings[keep], embeddings]) if len(self)
                           else embeddings)
        self.names = np.concatenate([self.names[keep], names])
        self.files = np.concatenate([self.files[keep], np.asarray(files, dtype=str)])
        return self

    def distances(self, embedding):
        """{person: smallest Euclidean distance from `embedding` to their embeddings}."""
        d = np.linalg.norm(self.embeddings - np.asarray(embedding, np.float32)[None], axis=-1)
        out = {}
        for name, value in zip(self.names.tolist(), d.tolist(), strict=True):
            out[name] = min(value, out.get(name, np.inf))
        return out

    def verify(self, embedding, name, threshold):
        """(distance, accepted) of `embedding` against the enrolled `name`."""
        if name not in set(self.names.tolist()):
            raise UserError(f"--identity={name}: not in the gallery (enrolled: "
                            f"{', '.join(self.people) or 'nobody'})")
        distance = self.distances(embedding)[name]
        return distance, distance < threshold

    def identify(self, embedding, threshold):
        """(closest name or None when its distance >= threshold, distance, closest name)."""
        if not len(self):
            raise UserError("the gallery is empty; enroll people first (--mode=enroll)")
        distances = self.distances(embedding)
        name = min(distances, key=distances.get)
        distance = distances[name]
        return (name if distance < threshold else None), distance, name


def gallery_files(root):
    """{person: [files]} from a folder: one sub-folder per person, or one image per person.

    A sub-folder's name is the person's name; a loose image's name (without its
    extension) is the person's name.
    """
    if not root:
        raise UserError("--gallery is required: a folder with one sub-folder or one image "
                        "per person")
    if not os.path.isdir(root):
        raise UserError(f"--gallery={root}: no such folder")
    people = {}
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if entry.startswith("."):
            continue
        if os.path.isdir(path):
            files = [os.path.join(path, f) for f in sorted(os.listdir(path))
                     if f.lower().endswith(IMAGE_EXTENSIONS)]
            if files:
                people.setdefault(entry, []).extend(files)
        elif entry.lower().endswith(IMAGE_EXTENSIONS):
            people.setdefault(os.path.splitext(entry)[0], []).append(path)
    if not people:
        raise UserError(f"--gallery={root}: no face images ({', '.join(IMAGE_EXTENSIONS)}) "
                        "in it or in its sub-folders")
    return people


def read_faces(files, image_size, channels, crop=1.0):
    """(images uint8 (N, S, S, C), readable files); unreadable files are skipped, named."""
    images, kept = [], []
    for file in files:
        try:
            images.append(read_image(file, image_size, channels, crop))
            kept.append(file)
        except UserError as e:
            logging.warning("skipped %s", e)
    if not images:
        return np.zeros((0, image_size, image_size, channels), np.uint8), []
    return np.stack(images), kept
