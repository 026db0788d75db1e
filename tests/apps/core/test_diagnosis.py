"""The notes' diagnosis (apps.core.diagnosis): the formulas, the train-dev carve,
metrics.json / console / TensorBoard, and what it must show: a small model's
avoidable bias, an over-parameterised model's variance (the classification app
on the digits, in process)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.classification.task import ClassificationTask
from apps.core import data as data_lib
from apps.core import diagnosis
from apps.core.config import common_config
from apps.core.errors import UserError
from apps.core.main import execute
from apps.core.optim import optimizer_config
from apps.core.task import Data, Task
from apps.core.trainer import Trainer
from apps.core.workdir import read_metrics
from apps.face_recognition.task import FaceRecognitionTask
from configs import classification
from configs import face_recognition as face_configs

# ------------------------------------------------------------ the formulas


@pytest.mark.parametrize("errors, largest", [
    # The notes' examples (human, train, train-dev, dev), in per cent.
    ((1, 10, 11, 12), "avoidable_bias"),
    ((1, 1.5, 10, 10), "variance"),
    ((1, 1.5, 2, 10), "data_mismatch"),
    ((7.5, 8, 10, 10.5), "variance"),
])
def test_the_gaps_and_the_largest(errors, largest):
    human, train, train_dev, dev = (e / 100 for e in errors)
    test = dev + 0.004
    figures = diagnosis.figures({"human_level": human, "train": train, "train_dev": train_dev,
                                 "dev": dev, "test": test}, "accuracy", False)
    assert figures["diagnosis_metric"] == "1 - accuracy"
    assert figures["diagnosis_avoidable_bias"] == pytest.approx(train - human)
    assert figures["diagnosis_variance"] == pytest.approx(train_dev - train)
    assert figures["diagnosis_data_mismatch"] == pytest.approx(dev - train_dev)
    assert figures["diagnosis_dev_overfitting"] == pytest.approx(test - dev)
    assert figures["diagnosis_largest_gap"] == largest
    assert figures["diagnosis_actions"] == dict(
        (name, actions) for name, _, _, actions in diagnosis.GAPS)[largest]


def test_the_actions_are_the_notes():
    actions = {name: actions for name, _, _, actions in diagnosis.GAPS}
    assert "bigger model" in actions["avoidable_bias"] and "longer" in actions["avoidable_bias"]
    assert "optimizer" in actions["avoidable_bias"]
    assert "more data" in actions["variance"] and "regularization" in actions["variance"]
    assert "augmentation" in actions["variance"]
    assert "synthesize or collect" in actions["data_mismatch"]
    assert "bigger dev set" in actions["dev_overfitting"]


def test_the_overfitting_of_dev_can_be_the_largest_and_unknowns_are_left_out():
    figures = diagnosis.figures({"human_level": None, "train": 0.05, "train_dev": 0.06,
                                 "dev": 0.06, "test": 0.2}, "map50", False)
    assert figures["diagnosis_avoidable_bias"] is None
    assert figures["diagnosis_largest_gap"] == "dev_overfitting"
    # No gap above zero: nothing to suggest.
    figures = diagnosis.figures({"human_level": 0.1, "train": 0.05, "train_dev": 0.05,
                                 "dev": 0.04, "test": 0.04}, "total_cost", True)
    assert figures["diagnosis_metric"] == "total_cost"
    assert figures["diagnosis_largest_gap"] is None and figures["diagnosis_actions"] is None


def test_a_gap_within_its_sampling_noise_is_not_the_largest():
    # The default digits run: no error on 359 training and 54 train-dev digits,
    # 4 of 359 wrong on dev. 1.1% on 54 examples is less than one of them.
    errors = {"human_level": 0.0237, "train": 0.0, "train_dev": 0.0, "dev": 4 / 359,
              "test": 0.0}
    sizes = {"train": 359, "train_dev": 54, "dev": 359, "test": 359}
    noise = diagnosis.margins(errors, sizes)
    p_dev, p_train_dev = 5 / 361, 1 / 56  # (wrong + 1) / (n + 2)
    assert noise["data_mismatch"] == pytest.approx(
        2 * np.sqrt(p_dev * (1 - p_dev) / 359 + p_train_dev * (1 - p_train_dev) / 54))
    assert noise["avoidable_bias"] == pytest.approx(2 * np.sqrt(1 / 361 * 360 / 361 / 359))
    figures = diagnosis.figures(errors, "accuracy", False, sizes)
    assert figures["diagnosis_data_mismatch"] == pytest.approx(4 / 359)
    assert figures["diagnosis_data_mismatch_noise"] > 4 / 359
    assert figures["diagnosis_largest_gap"] is None
    assert "no gap beyond its sampling noise" in diagnosis.lines(figures)[-1]
    # The same gap on 100 times the examples is real.
    figures = diagnosis.figures(errors, "accuracy", False, {k: 100 * n for k, n in sizes.items()})
    assert figures["diagnosis_largest_gap"] == "data_mismatch"
    # A loss has no such noise: the largest gap above zero.
    figures = diagnosis.figures({"train": 3.0, "train_dev": 3.1}, "loss", True, {"train": 2})
    assert figures["diagnosis_largest_gap"] == "variance"
    assert "diagnosis_variance_noise" not in figures


def test_error_is_one_minus_the_metric_or_the_metric():
    assert diagnosis.error({"accuracy": 0.9}, "accuracy", False) == pytest.approx(0.1)
    assert diagnosis.error({"cost": 2.5}, "cost", True) == 2.5
    for metrics in ({}, {"accuracy": float("nan")}, {"accuracy": True}, {"accuracy": "x"},
                    None):
        assert diagnosis.error(metrics, "accuracy", False) is None


def test_the_console_lines_are_few_and_say_what_to_do():
    figures = diagnosis.figures({"human_level": 0.01, "train": 0.015, "train_dev": 0.1,
                                 "dev": 0.1, "test": 0.11}, "accuracy", False,
                                dict.fromkeys(("train", "train_dev", "dev", "test"), 1000))
    lines = diagnosis.lines(figures)
    assert 2 <= len(lines) <= 4, lines
    assert lines[0] == ("diagnosis (error = 1 - accuracy): human 0.0100, train 0.0150, "
                        "train-dev 0.1000, dev 0.1000, test 0.1100")
    assert "variance +0.0850" in lines[1]
    assert lines[2].startswith("  largest: variance -> more data")
    assert diagnosis.lines({"test_accuracy": 0.5}) == []
    table = diagnosis.markdown(figures)
    assert "| train-dev | 0.1000 |" in table and "Largest gap: **variance**" in table


def test_an_unknown_metric_is_a_user_error_naming_the_field():
    config = common_config("x")
    config.diagnosis.metric = "acuracy"
    with pytest.raises(UserError, match=r"config.diagnosis.metric = 'acuracy': .* one of "
                                        r"accuracy, macro_f1"):
        diagnosis.check_metric(config, {"accuracy": 0.5, "macro_f1": 0.4, "name": "x"})
    config.diagnosis.metric = "loss"
    diagnosis.check_metric(config, {})


# --------------------------------------------------------------- the carve


def _data(n=200):
    ids = np.arange(n)
    return Data(data_lib.Split(ids, ids % 10), data_lib.Split(ids[:5], ids[:5]),
                data_lib.Split(ids[:5], ids[:5]))


def test_the_carve_is_a_function_of_the_seed_and_disjoint_from_the_rest():
    first, again, other = _data(), _data(), _data()
    held = diagnosis.carve(first, 0.1, seed=3)
    assert len(held) == 20 and len(first.train) == 180
    assert np.array_equal(diagnosis.carve(again, 0.1, seed=3).inputs, held.inputs)
    assert np.array_equal(again.train.inputs, first.train.inputs)
    assert not np.array_equal(diagnosis.carve(other, 0.1, seed=4).inputs, held.inputs)
    assert not set(held.inputs) & set(first.train.inputs)
    assert sorted(set(held.inputs) | set(first.train.inputs)) == list(range(200))
    assert np.array_equal(held.targets, held.inputs % 10)  # inputs and targets stay paired
    assert np.all(np.diff(first.train.inputs) > 0)  # the rest keeps its order
    # 0 turns it off and leaves the training split as it was.
    untouched = _data()
    assert diagnosis.carve(untouched, 0.0, seed=3) is None and len(untouched.train) == 200


def test_a_training_sample_is_fixed_by_the_seed():
    a = diagnosis.train_sample(100, 30, seed=1)
    assert np.array_equal(a, diagnosis.train_sample(100, 30, seed=1)) and len(set(a)) == 30
    assert np.array_equal(diagnosis.train_sample(10, 30, seed=1), np.arange(10))


class Ids(Task):
    """Inputs are example ids; a model that only has to run."""

    def load_data(self):
        return _data(96)

    def build_model(self):
        inputs = keras.Input((), dtype="int64")
        x = keras.ops.expand_dims(keras.ops.cast(inputs, "float32"), -1)
        return keras.Model(inputs, keras.layers.Dense(1)(x))

    def per_example_loss(self, targets, outputs):
        return tf.square(tf.cast(targets, tf.float32) - outputs[:, 0])


def test_the_trainer_never_feeds_train_dev(tmp_path):
    config = common_config("ids")
    config.optimizer = optimizer_config("momentum", learning_rate=0.0)
    config.diagnosis.train_dev_fraction = 0.25
    config.train.batch_size = 8
    trainer = Trainer(Ids(config), str(tmp_path))
    held = set(trainer.train_dev.inputs.tolist())
    assert len(held) == 24 and trainer.steps_per_epoch == 72 // 8
    fed = [int(i) for x, _ in trainer.train_dataset(0).take(3 * trainer.steps_per_epoch)
           for i in x.numpy()]
    assert set(fed) == set(trainer.data.train.inputs.tolist()) and not set(fed) & held


def test_face_recognition_epochs_of_p_people_x_k_images_leave_train_dev_out():
    """The P x K order is built on the carved split the task keeps."""
    config = face_configs.get_config("tiny")
    config.diagnosis.train_dev_fraction = 0.2
    task = FaceRecognitionTask(config)
    data = task.load_data()
    whole = data.train
    train_dev = diagnosis.carve(data, 0.2, config.seed)
    assert task.data.train is data.train and len(data.train) == len(whole) - len(train_dev)
    order, length = task.epoch_order()
    fed = data.train.inputs[order(tf.constant([0, 1], tf.int64)).numpy()]
    key = {image.tobytes() for image in train_dev.inputs}
    assert len(key) == len(train_dev)  # the faces differ, so a repeat would be seen
    assert not any(image.tobytes() in key for image in fed)


# ----------------------------------------------------- the runs: end to end


def _classification(**changes):
    config = classification.get_config("tiny")
    for key, value in changes.items():
        *sections, field = key.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[field] = value
    return config


def test_a_run_reports_the_diagnosis_in_metrics_json_the_console_and_tensorboard(
        tmp_path, capsys):
    workdir = str(tmp_path)
    metrics = execute(ClassificationTask, _classification(), workdir)
    saved = read_metrics(workdir)
    assert saved == metrics
    for name in ("train", "train_dev", "dev", "test", "human_level"):
        assert isinstance(saved[f"diagnosis_{name}_error"], float), name
    assert saved["diagnosis_metric"] == "1 - accuracy"
    assert saved["diagnosis_human_level_error"] == 0.0237
    # dev and test are the run's own figures, not evaluated again
    assert saved["diagnosis_dev_error"] == pytest.approx(1 - saved["val_accuracy"])
    assert saved["diagnosis_test_error"] == pytest.approx(1 - saved["test_accuracy"])
    assert saved["diagnosis_train_dev_examples"] == 54  # 5% of the 1,079 training digits
    assert saved["diagnosis_train_examples"] == 359  # as many as dev
    for gap, high, low in (("avoidable_bias", "train", "human_level"),
                           ("variance", "train_dev", "train"),
                           ("data_mismatch", "dev", "train_dev"),
                           ("dev_overfitting", "test", "dev")):
        assert saved[f"diagnosis_{gap}"] == pytest.approx(
            saved[f"diagnosis_{high}_error"] - saved[f"diagnosis_{low}_error"])
    assert saved["diagnosis_largest_gap"] in {name for name, *_ in diagnosis.GAPS}

    out = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("diagnosis (error = 1 - "))
    assert out[at - 1].startswith("test: accuracy ")
    assert out[at + 2].startswith("  largest: ")

    tags, texts = set(), []
    folder = os.path.join(workdir, "tb", "eval")
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for value in event.summary.value:
                tags.add(value.tag)
                if value.tag == "diagnosis":
                    texts.append(tf.make_ndarray(value.tensor).item().decode())
    assert {"diagnosis/train_error", "diagnosis/train_dev_error", "diagnosis/dev_error",
            "diagnosis/test_error", "diagnosis/variance", "diagnosis/avoidable_bias"} <= tags
    assert texts and "| train-dev |" in texts[0]


def test_a_small_model_shows_avoidable_bias_as_the_largest_gap(tmp_path):
    # LeNet-5 at its narrowest: 4 filters and 4 units a layer (a 4-unit bottleneck
    # for 10 classes), 4 epochs.
    metrics = execute(ClassificationTask, _classification(**{
        "model.width": 0.02, "train.epochs": 4}), str(tmp_path))
    assert metrics["diagnosis_largest_gap"] == "avoidable_bias", metrics
    assert metrics["diagnosis_avoidable_bias"] > 0.3
    assert metrics["diagnosis_actions"].startswith("a bigger model")


def test_an_over_parameterised_model_on_a_tiny_split_shows_variance(tmp_path):
    # LeNet-5 twice as wide (about 100,000 weights) on 197 digits, without
    # augmentation, until it knows them: 162 other training digits are train-dev.
    metrics = execute(ClassificationTask, _classification(**{
        "model.width": 2.0, "data.split": (0.2, 0.4, 0.4), "diagnosis.train_dev_fraction": 0.45,
        "train.batch_size": 16, "train.epochs": 15, "optimizer.schedule": "constant",
        "data.augment.shift": 0.0, "data.augment.rotation": 0.0}),
        str(tmp_path))
    assert metrics["diagnosis_train_dev_examples"] == 162
    assert metrics["diagnosis_train_error"] < 0.05, metrics
    assert metrics["diagnosis_largest_gap"] == "variance", metrics
    assert metrics["diagnosis_variance"] > 0.06
    assert metrics["diagnosis_actions"].startswith("more data")
