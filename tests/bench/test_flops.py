"""bench/flops.py: the profiler's count against the analytic formulas, layer by layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench import flops


def _forward_graph(layer, shape):
    """The graph of `layer` on a batch of `shape` (built first, as in a model)."""
    layer.build(shape)
    return tf.function(layer).get_concrete_function(tf.TensorSpec(shape, tf.float32)).graph


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "valid")])
def test_conv2d_count_matches_the_analytic_formula(strides, padding):
    conv = keras.layers.Conv2D(16, 3, strides=strides, padding=padding)
    counted = flops.graph_flops(_forward_graph(conv, (4, 12, 12, 8)))
    out = conv.compute_output_shape((4, 12, 12, 8))
    expected = 4 * flops.conv2d_flops(out[1], out[2], 3, 3, 8, 16)
    assert counted["total"] == expected
    assert counted["einsum"] == 0 and counted["uncounted"] == []


def test_dense_count_matches_the_analytic_formula_on_a_sequence():
    dense = keras.layers.Dense(24)
    counted = flops.graph_flops(_forward_graph(dense, (4, 7, 32)))
    assert counted["total"] == flops.dense_flops(4 * 7, 32, 24)


def test_einsum_formula_matches_the_profilers_matmul_count():
    @tf.function
    def both(a, b):
        return tf.raw_ops.Einsum(inputs=[a, b], equation="btd,dk->btk"), tf.matmul(
            tf.reshape(a, [-1, 8]), b)

    graph = both.get_concrete_function(tf.TensorSpec([2, 3, 8]), tf.TensorSpec([8, 5])).graph
    counted = flops.graph_flops(graph)
    assert counted["einsum"] == counted["profiler"] == 2 * 2 * 3 * 8 * 5
    assert flops.einsum_flops("bi,bi->bi", (2, 3), (2, 3)) == 6  # no contraction: products only
    assert flops.einsum_flops("...i,ij->...j", (2, 3), (3, 4)) is None


def test_training_flops_counts_a_trainers_model_and_loss(tmp_path):
    from apps.classification.task import ClassificationTask
    from apps.core.trainer import Trainer
    from configs.classification import get_config

    trainer = Trainer(ClassificationTask(get_config("tiny")), str(tmp_path))
    counted = flops.training_flops(trainer)
    # LeNet-5 is convolutions and dense layers: at least their analytic count.
    convs_and_dense = 0
    for layer in trainer.model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            kh, kw, cin, _ = layer.kernel.shape
            convs_and_dense += flops.conv2d_flops(h, w, kh, kw, cin, c, layer.use_bias)
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            convs_and_dense += flops.dense_flops(1, cin, cout, layer.use_bias)
    assert convs_and_dense > 0
    assert convs_and_dense <= counted["forward_per_example"] < 1.5 * convs_and_dense
    assert counted["training_per_example"] == 3 * counted["forward_per_example"]
    assert counted["batch"] == trainer.global_batch


def test_achieved_share_of_the_peak():
    gflops, share = flops.achieved({"training_per_example": 2e6}, 500.0, 10.0)
    np.testing.assert_allclose([gflops, share], [1.0, 0.1])


def test_matmul_formula_matches_the_profiler():
    from bench import machine

    graph = tf.function(tf.linalg.matmul).get_concrete_function(
        tf.TensorSpec([64, 64]), tf.TensorSpec([64, 64])).graph
    assert flops.graph_flops(graph)["total"] == machine.matmul_flops(64)
