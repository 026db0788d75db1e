"""TensorBoard's embedding projector of faces: their embeddings, names and thumbnails.

Written beside the export (FaceRecognitionTask.write_beside_export) into
WORKDIR/tb/projector, which TensorBoard lists as a run: its Projector tab
shows the test faces in the embedding space, each named and with its picture.
"""

import os
import shutil

import numpy as np
import tensorflow as tf

from apps.core import images as images_lib


def write_projector(logdir, embeddings, names, faces, people):
    """Writes the projector files for `embeddings` (N, D) into `logdir`, replacing
    an earlier export's; returns `logdir`.

    `names` (N,) label the points, `faces` (uint8 (N, S, S, 1 or 3)) are their
    thumbnails, and `people` (how many distinct ones) goes into the run's note.
    """
    from PIL import Image
    from tensorboard.plugins import projector

    shutil.rmtree(logdir, ignore_errors=True)
    os.makedirs(logdir)
    with open(os.path.join(logdir, "metadata.tsv"), "w") as f:
        f.writelines(f"{name}\n" for name in names)
    if faces.shape[-1] == 1:
        faces = np.repeat(faces, 3, axis=-1)
    sprite = images_lib.grid(faces, columns=int(np.ceil(np.sqrt(len(faces)))))[0]
    Image.fromarray(sprite).save(os.path.join(logdir, "sprite.png"))
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(embeddings, name="embedding"))
    checkpoint.save(os.path.join(logdir, "embedding.ckpt"))
    config = projector.ProjectorConfig()
    entry = config.embeddings.add()
    entry.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    entry.metadata_path = "metadata.tsv"
    entry.sprite.image_path = "sprite.png"
    entry.sprite.single_image_dim.extend(faces.shape[1:3])
    projector.visualize_embeddings(logdir, config)
    # TensorBoard lists a folder as a run only when it holds an event file.
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default(step=0):
        tf.summary.text("projector", f"{len(faces)} test faces of {people} held-out people: "
                        "open the Projector tab")
    writer.close()
    return logdir
