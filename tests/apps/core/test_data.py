"""The deterministic, resumable training stream and the split."""

import numpy as np
import pytest
import tensorflow as tf

from apps.core import data as data_lib
from apps.core.errors import UserError


def _split(n=23):
    return data_lib.Split(np.arange(n, dtype=np.float32)[:, None], np.arange(n, dtype=np.int64))


def _batches(ds, count):
    return [tuple(t.numpy() for t in b) for b in ds.take(count)]


def test_stratified_split_is_disjoint_complete_and_proportional():
    labels = np.repeat(np.arange(4), [50, 30, 20, 3])
    parts = data_lib.stratified_split(labels, (0.6, 0.2, 0.2), seed=1)
    joined = np.concatenate(parts)
    assert len(joined) == len(labels) and len(np.unique(joined)) == len(labels)
    for part in parts[1:]:
        assert set(labels[part]) == {0, 1, 2, 3}  # every class in every split
    assert np.sum(labels[parts[0]] == 0) == 30 and np.sum(labels[parts[2]] == 0) == 10
    again = data_lib.stratified_split(labels, (0.6, 0.2, 0.2), seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_stream_visits_every_example_once_per_epoch():
    split = _split(20)
    batches = _batches(data_lib.train_stream(split, 5, seed=0), 8)
    first = np.concatenate([b[1] for b in batches[:4]])
    second = np.concatenate([b[1] for b in batches[4:]])
    assert sorted(first) == list(range(20)) and sorted(second) == list(range(20))
    assert not np.array_equal(first, second)  # a new order each epoch


def test_stream_resumed_at_a_step_equals_the_uninterrupted_stream():
    def augment(x, y, seed):
        return x + tf.random.stateless_uniform([1], seed), y

    split = _split()
    full = _batches(data_lib.train_stream(split, 4, seed=3, augment=augment), 12)
    for start in (1, 5, 7):  # 23 examples, batch 4: steps cross epoch ends
        resumed = _batches(data_lib.train_stream(split, 4, seed=3, start_step=start,
                                                 augment=augment), 12 - start)
        for a, b in zip(full[start:], resumed, strict=True):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    other_seed = _batches(data_lib.train_stream(split, 4, seed=4), 1)
    assert not np.array_equal(full[0][1], other_seed[0][1])


def test_example_hooks_are_traced_without_autograph():
    """A hook that branches on a tensor with Python's `if` fails when traced:
    autograph, which would turn it into a tf.cond, costs seconds a run and is
    off for the apps' traced code (apps.core.data.graph_code)."""
    def augment(x, y, seed):
        if tf.reduce_sum(x) > 0:
            x = -x
        return x, y

    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError):
        data_lib.train_stream(_split(), 4, seed=0, augment=augment)
    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError):
        data_lib.eval_batches(_split(), 4, lambda x, y: augment(x, y, None))


def test_input_pipelines_split_each_global_batch_in_order():
    split = _split()
    whole = _batches(data_lib.train_stream(split, 8, seed=0), 3)
    shares = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=pipeline,
                                             num_replicas_in_sync=4)
        shares.append(_batches(data_lib.train_stream(split, 8, seed=0, input_context=context), 6))
    for step in range(3):
        # Each pipeline yields 2 per-replica batches of 2 per global step.
        parts = [shares[p][2 * step + r][1] for p in range(2) for r in range(2)]
        np.testing.assert_array_equal(np.concatenate(parts), whole[step][1])


def test_too_few_examples_for_a_batch_is_a_user_error():
    with pytest.raises(UserError, match="fewer than config.train.batch_size = 64"):
        data_lib.steps_per_epoch(10, 64)
    assert data_lib.steps_per_epoch(130, 64) == 2


def test_custom_epoch_order_of_any_length_is_followed_and_resumable():
    split = _split(10)

    def order(epoch_seed):  # each epoch: examples 0..5 twice (length 12)
        return tf.tile(tf.range(6, dtype=tf.int64), [2])

    full = _batches(data_lib.train_stream(split, 4, 0, order=order, epoch_length=12), 6)
    targets = np.concatenate([b[1] for b in full])
    np.testing.assert_array_equal(targets, np.tile(np.arange(6), 4))
    resumed = _batches(data_lib.train_stream(split, 4, 0, start_step=4, order=order,
                                             epoch_length=12), 2)
    np.testing.assert_array_equal(resumed[0][1], full[4][1])


def test_nested_targets_travel_together():
    split = data_lib.Split(np.arange(8, dtype=np.float32),
                           {"a": np.arange(8), "b": np.arange(8) * 10})
    x, y = next(iter(data_lib.train_stream(split, 4, seed=0)))
    np.testing.assert_array_equal(y["a"].numpy(), x.numpy().astype(int))
    np.testing.assert_array_equal(y["b"].numpy(), 10 * y["a"].numpy())
    assert len(split.take(slice(0, 3))) == 3
