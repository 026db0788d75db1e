"""--mode=tune (apps.core.tune): the search space, the sampling scales, the
coarse-to-fine box, and a whole study of the classification app in process.
The SIGKILL and two-process tests run the command line (tests/suite/test_tune.py).
"""

import json
import math
import os
import re

import numpy as np
import optuna
import pytest

from apps.classification.task import ClassificationTask
from apps.core import faults, main, tune
from apps.core.errors import UserError
from configs import classification

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _config(**tune_fields):
    config = classification.get_config("tiny")
    for name, value in tune_fields.items():
        setattr(config.tune, name, value)
    return config


def test_space_is_parsed_into_dimensions():
    dims = tune.parse_space(
        "optimizer.learning_rate = log_uniform(1e-4, 1); optimizer.momentum = "
        "one_minus_log(0.8, 0.999);\ntrain.batch_size = choice(16, 32); "
        "train.epochs = int(1, 3); model.dropout = uniform(0, 0.5)", _config())
    assert [(d.field, d.kind, d.args) for d in dims] == [
        ("optimizer.learning_rate", "log_uniform", (1e-4, 1)),
        ("optimizer.momentum", "one_minus_log", (0.8, 0.999)),
        ("train.batch_size", "choice", (16, 32)),
        ("train.epochs", "int", (1, 3)),
        ("model.dropout", "uniform", (0, 0.5)),
    ]
    assert dims[1].param == "1-optimizer.momentum"
    assert dims[1].bounds == pytest.approx((0.001, 0.2))


@pytest.mark.parametrize("space, message", [
    ("", "config.tune.space is empty"),
    ("optimizer.learning_rate", "expected 'field = kind"),
    ("optimizer.learning_rate = gaussian(0, 1)", "unknown distribution 'gaussian'"),
    ("optimizer.lr = log_uniform(1e-4, 1)", "config.optimizer.lr is not a field"),
    ("optimizer = log_uniform(1e-4, 1)", "is a section"),
    ("optimizer.learning_rate = log_uniform(0, 1)", "0 < low"),
    ("optimizer.learning_rate = log_uniform(1, 1e-4)", "low must be below high"),
    ("optimizer.learning_rate = uniform(1e-4)", "two numbers"),
    ("optimizer.momentum = one_minus_log(0.9, 1.0)", "0 <= low < high < 1"),
    ("train.batch_size = uniform(16, 64)", "holds an integer"),
    ("train.epochs = int(1.5, 3)", "two integers"),
    ("train.batch_size = choice()", "choice needs one or more"),
    ("model.dropout = uniform(0, x)", "not Python literals"),
    ("model.dropout = uniform(0, 0.5); model.dropout = uniform(0, 0.2)", "twice"),
])
def test_a_bad_space_is_one_clear_error(space, message):
    with pytest.raises(UserError, match=message) as error:
        tune.parse_space(space, _config())
    assert "\n" not in str(error.value)


def _sampled(dimension, count, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    values = []
    for _ in range(count):
        trial = study.ask()
        values.append(dimension.value(dimension.suggest(trial)))
        study.tell(trial, 0.0)
    return np.array(values)


def test_one_minus_log_puts_as_many_betas_in_each_decade_of_one_minus_beta():
    beta = tune.Dimension("optimizer.momentum", "one_minus_log", (0.9, 0.999))
    values = _sampled(beta, 600)
    assert values.min() >= 0.9 and values.max() <= 0.999
    coarse = np.mean(values < 0.99)  # 1 - beta in [0.01, 0.1]
    assert 0.42 < coarse < 0.58
    # A uniform draw would put 91% of them below 0.99.
    assert np.mean(_sampled(tune.Dimension("m", "uniform", (0.9, 0.999)), 600) < 0.99) > 0.85


def test_log_uniform_puts_as_many_values_in_each_decade():
    values = _sampled(tune.Dimension("lr", "log_uniform", (1e-4, 1)), 800)
    per_decade = np.histogram(np.log10(values), bins=[-4, -3, -2, -1, 0])[0] / len(values)
    np.testing.assert_allclose(per_decade, 0.25, atol=0.06)


def test_fine_box_surrounds_the_best_quarter_on_its_own_scale():
    lr = tune.Dimension("optimizer.learning_rate", "log_uniform", (1e-4, 1.0))
    size = tune.Dimension("train.batch_size", "choice", (16, 32))
    epochs = tune.Dimension("train.epochs", "int", (1, 20))
    trials = [optuna.trial.create_trial(
        params={lr.param: rate, size.param: 16, epochs.param: e},
        distributions={lr.param: optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
                       size.param: optuna.distributions.CategoricalDistribution((16, 32)),
                       epochs.param: optuna.distributions.IntDistribution(1, 20)},
        value=value) for rate, e, value in [
            (1e-3, 5, 0.90), (2e-3, 6, 0.95), (0.5, 20, 0.10), (1e-4, 1, 0.20),
            (0.1, 15, 0.30), (3e-4, 2, 0.40), (0.3, 18, 0.35), (0.05, 12, 0.50)]]
    box = tune.fine_box([lr, size, epochs], trials, "maximize")
    assert size.param not in box  # choices are not narrowed
    # The best two (of 8) are lr 1e-3 and 2e-3: a tenth of the 4 decades (0.4
    # decade) added on each side, on the log scale.
    low, high = box[lr.param]
    assert math.log10(low) == pytest.approx(-3 - 0.4)
    assert math.log10(high) == pytest.approx(math.log10(2e-3) + 0.4)
    assert box[epochs.param] == (3, 8)  # 5..6 widened by 1.9, to whole epochs
    worst_first = tune.fine_box([lr, size, epochs], trials, "minimize")
    assert worst_first[lr.param][1] == pytest.approx(1.0)  # around 0.5 and 1e-4: clipped


def test_parameters_are_a_function_of_the_seed_and_the_trial_number():
    config = _config()
    dims = tune.parse_space(config.tune.space, config)

    def first_three(seed):
        config.seed = seed
        study = optuna.create_study()
        drawn = []
        for _ in range(3):
            trial = study.ask()
            drawn.append(tune._sample(study, trial, config, dims, n_coarse=3))
            study.tell(trial, 0.0)
        return drawn

    assert first_three(0) == first_three(0)
    assert first_three(0) != first_three(1)


def test_trial_config_sets_the_fields_and_leaves_the_base_alone():
    config = _config()
    dims = tune.parse_space("optimizer.learning_rate = log_uniform(1e-4, 1); "
                            "optimizer.momentum = one_minus_log(0.5, 0.99)", config)
    trial = tune.trial_config(config, dims, {"optimizer.learning_rate": 0.02,
                                             "1-optimizer.momentum": 0.05})
    assert trial.optimizer.learning_rate == 0.02
    assert trial.optimizer.momentum == pytest.approx(0.95)
    assert config.optimizer.learning_rate != 0.02


def test_a_study_runs_ranks_exports_and_is_not_rerun(tmp_path, capsys):
    workdir = str(tmp_path / "tune")
    config = _config(trials=3, pruner="none", coarse_share=0.5,
                     space="optimizer.learning_rate = log_uniform(1e-3, 1e-1)")
    best = main.execute(ClassificationTask, config, workdir, "tune")
    out = capsys.readouterr().out
    with open(os.path.join(workdir, "tune.json")) as f:
        summary = json.load(f)
    rows = summary["trials"]
    assert [r["trial"] for r in rows if r["state"] == "complete"]
    values = [r["val_accuracy"] for r in rows]
    assert values == sorted(values, reverse=True) and len(rows) == 3
    assert [r["round"] for r in sorted(rows, key=lambda r: r["trial"])] == [
        "coarse", "coarse", "fine"]
    fine = next(r for r in rows if r["round"] == "fine")
    coarse_rates = [r["params"]["optimizer.learning_rate"] for r in rows
                    if r["round"] == "coarse"]
    # The fine trial's box: the two coarse trials' range, widened by 0.2 decade.
    rate = fine["params"]["optimizer.learning_rate"]
    assert min(coarse_rates) / 10**0.2 <= rate <= max(coarse_rates) * 10**0.2
    top = rows[0]
    with open(os.path.join(top["workdir"], "metrics.json")) as f:
        assert json.load(f)["val_accuracy"] == top["val_accuracy"]
    assert best["val_accuracy"] == top["val_accuracy"]
    assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))
    assert re.search(r"^rank +trial +state +round +val_accuracy +optimizer.learning_rate$", out,
                     re.M)
    assert summary["best"]["trial"] == top["trial"]
    for r in rows:  # every trial is a normal run, with its own hyperparameters
        with open(os.path.join(r["workdir"], "config.json")) as f:
            assert json.load(f)["optimizer"]["learning_rate"] == pytest.approx(
                r["params"]["optimizer.learning_rate"])
    stamps = {r["trial"]: os.path.getmtime(os.path.join(r["workdir"], "metrics.json"))
              for r in rows}

    main.execute(ClassificationTask, config, workdir, "tune")  # the budget is spent
    out = capsys.readouterr().out
    assert "trial 3" not in out and "Epoch" not in out
    assert stamps == {r["trial"]: os.path.getmtime(os.path.join(r["workdir"], "metrics.json"))
                      for r in rows}


def test_a_diverging_trial_fails_and_the_study_goes_on(tmp_path, capsys, monkeypatch):
    workdir = str(tmp_path / "tune")
    # The loss of step 3 of every trial made NaN (apps.core.faults), as a far
    # too large learning rate would: each trial fails, with its reason, the
    # next one still runs, and the study ends with one line.
    monkeypatch.setenv(faults.NAN_AT_STEP, "3")
    config = _config(trials=2, pruner="none")
    with pytest.raises(UserError, match="no trial of .* finished"):
        main.execute(ClassificationTask, config, workdir, "tune")
    with open(os.path.join(workdir, "tune.json")) as f:
        rows = json.load(f)["trials"]
    assert [r["state"] for r in rows] == ["fail", "fail"]
    assert all("training loss became" in r["error"] for r in rows)
    assert "trial 1: failed" in capsys.readouterr().out


def test_the_tuned_metric_must_be_a_headline_metric(tmp_path):
    with pytest.raises(UserError, match="config.tune.metric = 'loss'"):
        main.execute(ClassificationTask, _config(metric="loss"), str(tmp_path), "tune")


def test_a_workdir_of_another_space_is_refused(tmp_path):
    workdir = str(tmp_path / "tune")
    os.makedirs(workdir)
    config = _config(space="model.dropout = uniform(0, 0.5)")
    from apps.core import config as config_lib

    config_lib.save(config, workdir)
    with pytest.raises(UserError, match="config.tune.space"):
        main.execute(ClassificationTask, _config(), workdir, "tune")


APPS = ("classification", "detection", "segmentation", "face_recognition", "style_transfer",
        "embeddings", "translation", "trigger_word")


@pytest.mark.parametrize("app", APPS)
def test_every_app_declares_a_search_space_of_its_own_fields(app):
    import importlib

    for variant in ("", "tiny"):
        config = importlib.import_module(f"configs.{app}").get_config(variant)
        dims = tune.parse_space(config.tune.space, config)
        assert "optimizer.learning_rate" in [d.field for d in dims]
