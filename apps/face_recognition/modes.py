"""face_recognition's own modes (FaceRecognitionTask.extra_modes): enroll, verify, identify.

They run the workdir's exported SavedModel, so they need only WORKDIR/export,
and keep the enrolled people in WORKDIR/gallery.npz (apps.face_recognition.gallery):

    --mode=enroll   --gallery=DIR                embeds one sub-folder or one image per
                                                 person into the gallery (updating it)
    --mode=verify   --input=IMG --identity=NAME  distance to NAME; accept or reject
    --mode=identify --input=IMG_OR_DIR           the closest enrolled person, or
                                                 "not in the database" (who_is_it)

Each checks the user's paths, names and images before the SavedModel is
loaded, so a mistake is reported at once.
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core import modes as core_modes
from apps.core.errors import UserError
from apps.face_recognition import gallery as gallery_lib


def enroll(task, run):
    """Embeds the people of --gallery into the gallery (replacing those enrolled again).

    Unreadable images are skipped, each named in a warning, and counted.
    """
    root = run.option("gallery")
    people = gallery_lib.gallery_files(root)
    core_modes.saved_model_path(run.workdir)
    path = gallery_path(run.workdir)
    gallery = gallery_lib.Gallery.load(path, task.config.model.embedding_dim)
    names, faces, files, skipped = [], [], [], []
    for person, paths in people.items():
        images, kept, unreadable = read_faces(task, paths)
        skipped += unreadable
        if not kept:
            logging.warning("skipped %s: no readable face image", person)
            continue
        names += [person] * len(kept)
        faces.append(images)
        files += kept
    if not names:
        raise UserError(f"--gallery={root}: none of its {len(skipped)} image files is a "
                        f"readable face image (first: {skipped[0]})")
    embeddings, _ = embed(task, core_modes.load_saved_model(run.workdir), np.concatenate(faces))
    gallery.enroll(names, embeddings, files)
    gallery.save(path)
    print(f"enrolled {len(set(names))} people ({len(files)} images) into {path}; "
          f"the gallery holds {len(gallery.people)} people"
          + (f"; skipped {len(skipped)} image file(s), unreadable or too small (named "
             "above)" if skipped else ""))


def verify(task, run):
    """Is the face at --input the enrolled --identity? Prints the distance and verdict."""
    identity = run.option("identity")
    if not identity:
        raise UserError("--mode=verify needs --identity=NAME (an enrolled person)")
    if run.input and os.path.isdir(run.input):
        raise UserError(f"--input={run.input}: expected one face image, got a folder")
    core_modes.predict_items(task, run)  # the checks of --input
    gallery = _enrolled(run.workdir, task)
    gallery.require(identity)
    try:
        face = task.read_item(run.input)
    except UserError as e:
        raise UserError(f"--input={e}") from None
    embeddings, thresholds = embed(task, core_modes.load_saved_model(run.workdir), face[None])
    distance, accepted = gallery.verify(embeddings[0], identity, thresholds[0])
    verdict = f"accept: it's {identity}" if accepted else f"reject: not {identity}"
    print(f"{run.input}: distance {distance:.3f} to {identity} (threshold "
          f"{thresholds[0]:.3f}): {verdict}")


def identify(task, run):
    """Who is each face at --input: the closest enrolled person, or nobody. It is
    predict (FaceRecognitionTask.predict_item) that insists on a gallery."""
    core_modes.predict_items(task, run)  # the checks of --input
    _enrolled(run.workdir, task)
    core_modes.predict(task, run)


def _enrolled(workdir, task):
    """The workdir's gallery, checked in the order a user fixes things: the
    SavedModel, then the gallery, which must hold someone."""
    core_modes.saved_model_path(workdir)
    path = gallery_path(workdir)
    gallery = gallery_lib.Gallery.load(path, task.config.model.embedding_dim)
    if not len(gallery):
        raise UserError(f"no gallery in {path}; enroll people first "
                        f"(--mode=enroll --gallery=DIR --workdir={workdir})")
    return gallery


def identified(file, gallery, embedding, threshold):
    """Prints who the face of `file` is (or that nobody enrolled is); returns its record."""
    name, distance, closest = gallery.identify(embedding, threshold)
    if name is None:
        print(f"{file}: not in the database (closest {closest} at distance {distance:.3f}, "
              f"threshold {threshold:.3f})")
    else:
        print(f"{file}: {name} (distance {distance:.3f}, threshold {threshold:.3f})")
    return {"file": file, "identity": name, "distance": float(distance), "closest": closest,
            "threshold": float(threshold)}


def gallery_path(workdir):
    return os.path.join(workdir, gallery_lib.FILENAME)


def embed(task, saved_model, faces):
    """(embeddings (N, D), thresholds (N,)) of uint8 faces from the serving signature."""
    serve = saved_model.signatures["serving_default"]
    batch = task.config.eval.batch_size
    outputs = [serve(images=tf.constant(faces[i:i + batch])) for i in range(0, len(faces), batch)]
    return (np.concatenate([out["embeddings"].numpy() for out in outputs]),
            np.concatenate([out["threshold"].numpy().astype(float) for out in outputs]))


def read_faces(task, files):
    """(uint8 faces, readable files, skipped messages) of `files`, each skipped one
    named in a warning (gallery_lib.read_faces at the model's image format)."""
    d = task.config.data
    return gallery_lib.read_faces(files, d.image_size, d.channels, d.crop)
