"""The fast stylizer's parts: the transformation network, its data and its loss."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import layers
from apps.core.errors import UserError
from apps.style_transfer import data as data_lib
from apps.style_transfer import model as model_lib
from apps.style_transfer.task import StyleTransferTask
from configs.style_transfer import get_config


def test_the_network_keeps_the_size_and_uses_residual_blocks():
    model = model_lib.build(width=0.125, residual_blocks=2)
    x = np.random.default_rng(0).uniform(0, 1, (2, 36, 20, 3)).astype(np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    blocks = [layer for layer in model.layers if isinstance(layer, layers.ResidualBlock)]
    assert len(blocks) == 2 and blocks[0].filters == 16 and blocks[0].momentum == 0.9
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"
    # Untrained, the network is the identity (on [1/255, 254/255]).
    np.testing.assert_allclose(y, np.clip(x, 1 / 255, 254 / 255), atol=1e-5)


def test_the_output_adds_the_residual_in_logit_space():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (2, 4, 4, 3)).astype(np.float32)
    x[0, 0, 0] = (0.0, 1.0, 0.5)
    r = rng.normal(0, 2, x.shape).astype(np.float32)
    c = np.clip(x.astype(np.float64), 1 / 255, 254 / 255)
    want = 1 / (1 + np.exp(-(np.log(c / (1 - c)) + r)))
    got = model_lib.ResidualInLogits()(x, r).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_embedded_crops_leave_out_the_style_and_split_by_photograph():
    config = get_config("tiny")
    data = data_lib.load(config)
    # 10 photographs but the style (flower): chelsea tests, coffee validates, 7 train
    assert len(data.train) == 7 * config.data.crops_per_image
    assert len(data.val) == len(data.test) == config.data.eval_crops_per_image
    assert data.train.inputs.shape[1:] == (32, 32, 3) and data.train.inputs.dtype == np.uint8
    again = data_lib.load(config)
    np.testing.assert_array_equal(again.train.inputs, data.train.inputs)  # from the seed
    config.seed = 1
    assert not np.array_equal(data_lib.load(config).train.inputs, data.train.inputs)
    # Cut as batches need them, or all at the start: the same crops.
    config.seed, config.data.cache = 0, "memory"
    cached = data_lib.load(config).train.inputs
    assert isinstance(cached, np.ndarray) and not isinstance(data.train.inputs, np.ndarray)
    np.testing.assert_array_equal(cached, data.train.inputs)


def test_a_content_folder_is_split_by_file(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
            tmp_path / f"p{i}.png")
    (tmp_path / "notes.txt").write_text("skipped: not an image file")
    config = get_config("tiny")
    config.data.content_dir = str(tmp_path)
    data = data_lib.load(config)
    assert (len(data.train), len(data.val), len(data.test)) == (8 * 2, 1, 1)
    config.data.max_images = 3
    assert len(data_lib.load(config).train) == 1 * 2
    config.data.content_dir = str(tmp_path / "none")
    with pytest.raises(UserError, match="config.data.content_dir = .*no such folder"):
        data_lib.load(config)


def test_the_per_example_loss_shares_the_batch_cost():
    config = get_config("tiny")
    task = StyleTransferTask(config)
    task.build_model()
    rng = np.random.default_rng(0)
    content = tf.constant(rng.uniform(0, 1, (3, 32, 32, 3)), tf.float32)
    stylized = tf.constant(rng.uniform(0, 1, (3, 32, 32, 3)), tf.float32)
    per_example = task.per_example_loss(content, stylized).numpy()
    total = task.costs(stylized, task.costs.content_features(content), task.style_target)
    assert per_example.shape == (3,)
    assert per_example.sum() == pytest.approx(float(total["total"]), rel=1e-5)
    # A stylized image equal to the content has no content cost.
    same = task.costs(content, task.costs.content_features(content), task.style_target)
    assert float(same["content"]) == 0.0 and float(same["style"]) > 0
