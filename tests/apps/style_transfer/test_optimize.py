"""The optimisation method in process: one step lowers J, resuming reaches the
same image; images are read and sized. (Bad images, configs and workdirs: test_bad_input.py.)"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from apps.core.errors import UserError
from apps.core.main import execute
from apps.core.task import Run
from apps.style_transfer import images as images_lib
from apps.style_transfer.optimize import Optimization, workdir_kind
from apps.style_transfer.task import StyleTransferTask
from configs.style_transfer import get_config


def _config(**optimize):
    config = get_config("tiny")
    for key, value in optimize.items():
        config.optimize[key] = value
    return config


def _tags(folder):
    import tensorflow as tf

    tags = set()
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def _image(workdir):
    return np.asarray(Image.open(os.path.join(workdir, "generated.png")))


def test_one_optimisation_step_lowers_the_cost(tmp_path):
    run = Optimization(_config(), str(tmp_path))
    run._setup()
    before = run.cost_terms()
    start = run.generated.numpy().copy()
    terms = run.step_function()()
    after = run.cost_terms()
    assert float(terms["total"]) == pytest.approx(before["total"], rel=1e-5)
    assert after["total"] < before["total"]
    assert after["style"] < before["style"]
    moved = run.generated.numpy()
    assert not np.array_equal(moved, start) and moved.min() >= 0 and moved.max() <= 1


def test_a_resumed_run_reaches_the_uninterrupted_result(tmp_path):
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    full = execute(StyleTransferTask, _config(steps=4), whole)
    assert full["steps"] == 4 and full["style_cost_final"] < full["style_cost_initial"]
    half = execute(StyleTransferTask, _config(steps=2), split)
    assert half["steps"] == 2
    resumed = execute(StyleTransferTask, _config(steps=4), split)  # trains on from step 2
    for key in ("content_cost_initial", "style_cost_initial", "content_cost_final",
                "style_cost_final", "total_cost_final", "steps"):
        assert resumed[key] == full[key], key
    np.testing.assert_array_equal(_image(split), _image(whole))
    stamp = os.path.getmtime(os.path.join(split, "metrics.json"))
    assert execute(StyleTransferTask, _config(steps=4), split) == resumed  # not redone
    assert os.path.getmtime(os.path.join(split, "metrics.json")) == stamp

    assert workdir_kind(split) == "optimize"
    assert {"config.json", "metrics.json", "ckpt", "tb", "images", "generated.png",
            "side_by_side.png"} <= set(os.listdir(split))
    assert sorted(os.listdir(os.path.join(split, "images"))) == [
        "step_000000.png", "step_000002.png", "step_000003.png", "step_000004.png"]
    assert {"generated", "content_cost", "style_cost", "total_cost",
            "steps_per_sec"} <= _tags(os.path.join(split, "tb", "train"))
    assert {"content_style_result", "style_cost_final"} <= _tags(os.path.join(split, "tb",
                                                                                "eval"))
    side = np.asarray(Image.open(os.path.join(split, "side_by_side.png")))
    assert side.shape[1] == 3 * _image(split).shape[1] + 2 * 4  # content | style | result

    evaluated = execute(StyleTransferTask, _config(steps=4), split, mode="eval")
    assert evaluated["test_style_cost"] == pytest.approx(full["style_cost_final"], rel=1e-5)
    for mode in ("train_fast", "export", "predict"):
        with pytest.raises(UserError, match="holds an optimisation run"):
            execute(StyleTransferTask, _config(steps=4), split, mode=mode)
    other = _config(steps=4)
    other.data.style = "china"
    with pytest.raises(UserError, match=r"config.data.style = 'flower', not 'china'"):
        execute(StyleTransferTask, other, split)


def test_images_read_grey_and_resize(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(grey)
    assert images_lib.read_image(str(grey)).shape == (20, 30, 3)

    content = images_lib.read_image("chelsea")  # 300x451 (embedded)
    style = images_lib.read_image("flower")  # 427x640
    assert content.shape == (300, 451, 3) and style.shape == (427, 640, 3)
    c, s = images_lib.content_and_style(content, style, 256)
    assert c.shape == s.shape == (176, 256, 3)  # the aspect kept, multiples of 16
    c, s = images_lib.content_and_style(content, style, 64, keep_aspect=False)
    assert c.shape == s.shape == (64, 64, 3)


def test_the_run_records_the_images_it_used(tmp_path):
    content = tmp_path / "photo.png"
    Image.fromarray(images_lib.embedded("astronaut")[::8, ::8]).save(content)
    config = _config(steps=1)
    config.data.content = str(content)
    execute(StyleTransferTask, config, str(tmp_path / "run"))
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["data"]["content"] == str(content)
    assert _image(str(tmp_path / "run")).shape == (48, 48, 3)  # square astronaut


def test_the_flags_set_the_images_of_training_and_later_modes_read_the_runs(tmp_path):
    config = get_config("tiny")
    train = StyleTransferTask.apply_options(
        config, Run(str(tmp_path), "train", options={"content": "coffee", "style": "china"}))
    assert (train.data.content, train.data.style) == ("coffee", "china")
    assert (config.data.content, config.data.style) == ("chelsea", "flower")  # a copy
    fast = StyleTransferTask.apply_options(
        config, Run(str(tmp_path), "train_fast", options={"content": str(tmp_path)}))
    assert (fast.data.content_dir, fast.data.content) == (str(tmp_path), "chelsea")

    recorded = get_config("tiny")
    recorded.data.update({"content": "coffee", "style": "china", "content_dir": "/photos"})
    recorded.data.image_size = 64
    with open(tmp_path / "config.json", "w") as f:
        json.dump(recorded.to_dict(), f)
    for mode in ("eval", "export", "predict"):
        later = StyleTransferTask.apply_options(config, Run(str(tmp_path), mode))
        assert (later.data.content, later.data.style, later.data.content_dir) == (
            "coffee", "china", "/photos"), mode
        assert later.data.image_size == config.data.image_size  # the config's own field
