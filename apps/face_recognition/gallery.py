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
import unicodedata

import numpy as np
from absl import logging
from PIL import Image

from apps.core.errors import UserError
from apps.core.images import IMAGE_EXTENSIONS, read_image

FILENAME = "gallery.npz"
MIN_FACE_SIDE = 8  # pixels; a smaller picture holds no recognisable face


class Gallery:
    """Names (M,), embeddings (M, D) and the files they came from (M,)."""

    def __init__(self, names=(), embeddings=None, files=()):
        self.names = np.asarray([nfc(n) for n in names], dtype=str)
        self.embeddings = (np.zeros((0, 0), np.float32) if embeddings is None
                           else np.asarray(embeddings, np.float32))
        self.files = np.asarray(files, dtype=str)

    def __len__(self):
        return len(self.names)

    @property
    def people(self):
        return sorted(set(self.names.tolist()))

    @classmethod
    def load(cls, path, dim=None):
        """The gallery at `path` (empty when there is none); UserError for a file that
        is not a gallery, or whose embeddings are not `dim`-dimensional."""
        if not os.path.exists(path):
            return cls()
        not_a_gallery = f"{path}: not a gallery written by --mode=enroll"
        try:
            archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            raise UserError(f"{not_a_gallery} (not a NumPy .npz archive)") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise UserError(f"{not_a_gallery} (a single array, not an .npz archive)")
        with archive:
            missing = {"names", "embeddings", "files"} - set(archive.files)
            if missing:
                raise UserError(f"{not_a_gallery} (no {', '.join(sorted(missing))} array)")
            gallery = cls(archive["names"], archive["embeddings"], archive["files"])
        shape = gallery.embeddings.shape
        if len(shape) != 2 or not len(gallery) == shape[0] == len(gallery.files):
            raise UserError(f"{not_a_gallery} ({len(gallery)} names, embeddings of shape "
                            f"{shape}, {len(gallery.files)} files)")
        if dim is not None and len(gallery) and shape[1] != dim:
            raise UserError(f"{path} holds {shape[1]}-d embeddings but this workdir's model "
                            f"gives {dim}-d ones (config.model.embedding_dim): it comes from "
                            "another model; move it away and enroll again")
        return gallery

    def save(self, path):
        """Writes the gallery atomically (temp file then rename)."""
        tmp = path + ".tmp.npz"
        np.savez(tmp, names=self.names, embeddings=self.embeddings, files=self.files)
        os.replace(tmp, path)
        return path

    def enroll(self, names, embeddings, files):
        """Adds people; the entries of anyone enrolled again are replaced."""
        names = np.asarray([nfc(n) for n in names], dtype=str)
        embeddings = np.asarray(embeddings, np.float32)
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

    def require(self, name):
        """UserError unless `name` is enrolled."""
        if nfc(name) not in set(self.names.tolist()):
            raise UserError(f"--identity={name}: not in the gallery (enrolled: "
                            f"{', '.join(self.people) or 'nobody'})")

    def verify(self, embedding, name, threshold):
        """(distance, accepted) of `embedding` against the enrolled `name`."""
        self.require(name)
        distance = self.distances(embedding)[nfc(name)]
        return distance, distance < threshold

    def identify(self, embedding, threshold):
        """(closest name or None when its distance >= threshold, distance, closest name)."""
        if not len(self):
            raise UserError("the gallery is empty; enroll people first (--mode=enroll)")
        distances = self.distances(embedding)
        name = min(distances, key=distances.get)
        distance = distances[name]
        return (name if distance < threshold else None), distance, name


def nfc(name):
    """`name` in Unicode's composed form: macOS writes folder names decomposed
    ("Zoe" + a combining diaeresis), what a user types is composed ("Zoë")."""
    return unicodedata.normalize("NFC", str(name))


def gallery_files(root):
    """{person: [files]} from a folder: one sub-folder per person, or one image per person.

    A sub-folder's name is the person's name; a loose image's name (without its
    extension) is the person's name. A sub-folder with no image file is
    skipped with a warning naming it.
    """
    if not root:
        raise UserError("--gallery is required: a folder with one sub-folder or one image "
                        "per person")
    if not os.path.exists(root):
        raise UserError(f"--gallery={root}: no such folder")
    if not os.path.isdir(root):
        raise UserError(f"--gallery={root}: a file; expected a folder with one sub-folder "
                        "or one image per person")
    people, empty = {}, []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if entry.startswith("."):
            continue
        if os.path.isdir(path):
            files = [os.path.join(path, f) for f in sorted(os.listdir(path))
                     if f.lower().endswith(IMAGE_EXTENSIONS)]
            if files:
                people.setdefault(entry, []).extend(files)
            else:
                empty.append(path)
                logging.warning("skipped %s: no image files (%s)", path,
                                ", ".join(IMAGE_EXTENSIONS))
        elif entry.lower().endswith(IMAGE_EXTENSIONS):
            people.setdefault(os.path.splitext(entry)[0], []).append(path)
    if not people:
        raise UserError(f"--gallery={root}: no face images ({', '.join(IMAGE_EXTENSIONS)}) "
                        "in it or in its sub-folders"
                        + (f" ({len(empty)} empty sub-folders)" if empty else ""))
    return people


def read_face(file, image_size, channels, crop=1.0):
    """One face image file -> uint8 (image_size, image_size, channels).

    A UserError names the file when it is not a readable image, or when it is
    smaller than MIN_FACE_SIDE pixels a side: resized up to image_size, such a
    picture would give an embedding of nothing.
    """
    face = read_image(file, image_size, channels, crop)
    with Image.open(file) as image:
        width, height = image.size
    if min(width, height) < MIN_FACE_SIDE:
        raise UserError(f"{file}: the image is {width}x{height} pixels; expected a face "
                        f"image of at least {MIN_FACE_SIDE}x{MIN_FACE_SIDE}")
    return face


def read_faces(files, image_size, channels, crop=1.0):
    """(images uint8 (N, S, S, C), readable files, skipped messages).

    Unreadable files are skipped, each named in a warning.
    """
    images, kept, skipped = [], [], []
    for file in files:
        try:
            images.append(read_face(file, image_size, channels, crop))
            kept.append(file)
        except UserError as e:
            logging.warning("skipped %s", e)
            skipped.append(str(e))
    if not images:
        return np.zeros((0, image_size, image_size, channels), np.uint8), [], skipped
    return np.stack(images), kept, skipped
