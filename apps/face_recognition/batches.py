"""The batches triplets are mined from: P people x K images, whole across replicas.

Online mining needs positives in every batch, so an epoch is not a random
permutation of the faces but `pk_order`: P people drawn at random, K images
of each. With several replicas each holds a slice of the global batch, so
`global_batch` all-gathers the embeddings and labels and every replica mines
the triplets of the whole batch, as one replica would.
"""

import numpy as np
import tensorflow as tf


def pk_order(labels, people_per_batch, images_per_person, steps):
    """The epoch order of P people x K images per batch, as a graph function.

    For each of `steps` batches, P distinct people are drawn at random, and K
    of each one's images (without repetition; a person with fewer than K
    images repeats them in turn). A batch is laid out person by person, so
    the slice a replica takes still holds whole groups of K when its share is
    a multiple of K.

    Returns order(epoch_seed[2]) -> int64 indices of length steps * P * K.
    """
    labels = np.asarray(labels)
    people, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    width = max(int(counts.max()), images_per_person)
    table = np.zeros((len(people), width), np.int64)
    for person in range(len(people)):
        members = np.flatnonzero(inverse == person)
        table[person, :len(members)] = members
    table, counts = tf.constant(table), tf.constant(counts, tf.int32)
    p, k = people_per_batch, images_per_person

    def order(epoch_seed):
        seeds = tf.random.experimental.stateless_split(tf.cast(epoch_seed, tf.int64), num=2)
        keys = tf.random.stateless_uniform([steps, len(people)], seeds[0])
        chosen = tf.argsort(keys, axis=1, stable=True)[:, :p]  # (steps, P)
        have = tf.gather(counts, chosen)  # (steps, P)
        keys = tf.random.stateless_uniform([steps, p, width], seeds[1])
        keys = tf.where(tf.range(width)[None, None] < have[..., None], keys, 2.0)
        ranked = tf.argsort(keys, axis=-1, stable=True)  # the valid slots first
        picks = tf.gather(ranked, tf.range(k)[None, None] % have[..., None], batch_dims=2)
        person = tf.broadcast_to(chosen[..., None], tf.shape(picks))
        index = tf.gather_nd(table, tf.stack([person, picks], axis=-1))
        return tf.reshape(index, [-1])

    return order


def global_batch(labels, embeddings):
    """(labels, embeddings) of the whole global batch, in a replica's step.

    With one replica they are the arguments; with several, every replica's
    rows stacked in replica order (`_gather`), so the triplets are mined over
    all P people, not over the few in a replica's slice.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return labels, embeddings
    gathered = _gather(context, tf.cast(labels, tf.float32))
    return tf.cast(gathered, labels.dtype), _gather(context, embeddings)


def _gather(context, x):
    """All replicas' `x` stacked along axis 0 in replica order (an all-gather).

    Written as an all-reduce of each replica's rows placed in a zero tensor:
    MultiWorkerMirroredStrategy's all_gather fails inside the trainer's
    multi-step loop ("destinations can not be empty"), and all_reduce's
    gradient (an all-reduce of the upstream gradient) hands each replica the
    gradient of its own rows, as all_gather's would. Labels go through it as
    float32, exact for ids below 2**24.
    """
    n = context.num_replicas_in_sync
    slot = tf.one_hot(context.replica_id_in_sync_group, n, dtype=x.dtype)
    placed = tf.reshape(slot, [n] + [1] * x.shape.rank) * x[None]
    stacked = context.all_reduce(tf.distribute.ReduceOp.SUM, placed)
    return tf.reshape(stacked, tf.concat([[-1], tf.shape(x)[1:]], 0))
