"""Clips composed on read: clip i of a split is a pure function of (seed, split, i)
and the split's word bank, its three columns agree, and no split is held in memory
unless config.data.cache = "memory" asks for it."""

import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

from apps.core.data import eval_batches
from apps.trigger_word import audio, synth
from apps.trigger_word import data as data_lib
from apps.trigger_word.data import ClipColumn
from apps.trigger_word.features import geometry
from configs.trigger_word import get_config


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    config = get_config("tiny")
    config.data.cache_dir = str(tmp_path_factory.mktemp("cache"))
    config.data.cache = "none"
    return config


def _leaves(split):
    return tf.nest.flatten((split.inputs, split.targets))


def _splits(data):
    return data.train, data.val, data.test


def test_splits_are_columns_of_clips_composed_on_read(config):
    data = data_lib.load(config)
    for split, n in zip(_splits(data), config.data.num_clips, strict=True):
        assert len(split) == n
        assert all(isinstance(a, ClipColumn) for a in _leaves(split))
    g = geometry(config)
    assert data.train.inputs.shape == (48, g.clip_samples) and data.train.inputs.dtype == np.int16
    assert data.val.targets["labels"].shape == (16, g.ty)
    assert data.test.targets["events"].shape == (16, config.data.max_triggers, 2)


def test_a_clip_is_the_same_whenever_and_in_whatever_order_it_is_read(config):
    data = data_lib.load(config)
    picked = np.array([7, 2, 31, 7, 0])
    forward = {k: np.asarray(c[picked]) for k, c in _columns(data.train).items()}
    backward = {k: np.asarray(c[picked[::-1]])[::-1] for k, c in _columns(data.train).items()}
    again = data_lib.load(config)  # new columns, as a resumed run or another worker has
    fresh = {k: np.asarray(c[picked]) for k, c in _columns(again.train).items()}
    for key in forward:
        np.testing.assert_array_equal(forward[key], backward[key])
        np.testing.assert_array_equal(forward[key], fresh[key])
        np.testing.assert_array_equal(forward[key][0], forward[key][3])  # clip 7 twice
    # tf.data's parallel readers (threads, any order) read the same clips.
    read = [(x, y) for x, y in eval_batches(data.val, batch_size=5).as_numpy_iterator()]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in read]), np.asarray(data.val.inputs))
    np.testing.assert_array_equal(np.concatenate([y["events"] for _, y in read]),
                                  np.asarray(data.val.targets["events"]))


def _columns(split):
    return {"waves": split.inputs, **split.targets}


def test_waves_labels_and_events_are_one_composition_of_the_course_s_example(config):
    """Each column's value i is the matching part of synth.create_training_example
    drawn from (seed, 1000 + split index, i): the waveform holds the trigger words
    where the events and the labels say."""
    banks = data_lib.word_banks(config)
    data = data_lib.load(config)
    g, d = geometry(config), config.data
    for index, (name, split) in enumerate(zip(synth.SPLITS, _splits(data), strict=True)):
        for i in (0, 5, len(split) - 1):
            rng = np.random.default_rng([config.seed, 1000 + index, i])
            wave, labels, events = synth.create_training_example(
                rng, banks[name], g, d.label_steps, d.max_triggers, d.max_negatives)
            np.testing.assert_array_equal(split.inputs[i], audio.to_int16(wave))
            np.testing.assert_array_equal(split.targets["labels"][i], labels)
            np.testing.assert_array_equal(split.targets["events"][i], events)
    labels, events = (np.asarray(data.train.targets[k]) for k in ("labels", "events"))
    assert 0.3 < (labels.sum(axis=1) > 0).mean() < 1.0  # some clips with, some without
    for y, clip_events in zip(labels, events, strict=True):
        expected = np.zeros(g.ty, np.uint8)
        for _, end in clip_events[clip_events[:, 0] >= 0]:
            synth.insert_ones(expected, end, d.label_steps, g.step_samples)
        np.testing.assert_array_equal(y, expected)


def test_a_million_clips_cost_no_memory_until_read(config):
    """1e6 clips of 2 s at 8 kHz would be 32 GB composed: as columns, loading them
    holds their index (8 MB) and the word banks, and reads any clip."""
    big = config.copy_and_resolve_references()
    big.data.num_clips = (1_000_000, 16, 16)
    data_lib.load(big)  # the word banks: synthesized once into the cache
    tracemalloc.start()
    data = data_lib.load(big)
    last = data.train.inputs[999_999]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(data.train) == 1_000_000 and last.shape == (16000,) and np.any(last)
    assert peak < 40e6, peak


def test_memory_cache_composes_each_split_once_into_arrays(config):
    streamed = data_lib.load(config)
    memory = config.copy_and_resolve_references()
    memory.data.cache = "memory"
    held = data_lib.load(memory)
    for a, b in zip(_leaves(streamed.train), _leaves(held.train), strict=True):
        assert isinstance(b, np.ndarray)
        np.testing.assert_array_equal(np.asarray(a), b)
