"""Training FLOPs per example, and the share of the machine's peak they reach.

The forward pass of a training step (the model in training mode on one real
batch of the app's input pipeline, and the task's loss) is traced to a graph
and its floating-point operations are counted by TensorFlow's profiler
(tf.compat.v1.profiler with the float_operation options: each op type's
registered FLOP formula, e.g. 2 m n k for a MatMul, 2 x outputs x kh kw c_in
for a Conv2D). TensorFlow registers no formula for Einsum, which our
attention layers use, so those are added by `einsum_flops`. Training costs
about three forward passes (the backward pass computes the gradient with
respect to both the activations and the weights, each about one forward):

    training FLOPs per example = 3 x forward FLOPs of a batch / batch size
    achieved GFLOP/s           = training FLOPs per example x examples/s / 1e9
    share of peak              = achieved GFLOP/s / peak matmul GFLOP/s (bench.machine)

`conv2d_flops` and `dense_flops` are the analytic counts of one layer,
checked against the profiler in tests/bench/test_flops.py.
"""

import math
import re

import numpy as np


def einsum_flops(equation, *shapes):
    """FLOPs of a two-operand einsum: 2 x the product of every index's size.

    Each output element sums, over the contracted indices, products of one
    element of each operand: prod(all index sizes) multiply-adds in all, so
    2 prod(sizes) FLOPs when some index is contracted and prod(sizes)
    (multiplications only) when none is. Equations with an ellipsis or
    another number of operands return None (not counted).
    """
    if "..." in equation or "->" not in equation:
        return None
    inputs, output = equation.replace(" ", "").split("->")
    operands = inputs.split(",")
    if len(operands) != 2 or len(shapes) != 2:
        return None
    sizes = {}
    for letters, shape in zip(operands, shapes, strict=True):
        if shape is None or len(letters) != len(shape) or any(d is None for d in shape):
            return None
        for letter, dim in zip(letters, shape, strict=True):
            sizes[letter] = int(dim)
    contracted = set(sizes) - set(output)
    return (2 if contracted else 1) * math.prod(sizes.values())


def conv2d_flops(output_height, output_width, kernel_height, kernel_width, in_channels,
                 out_channels, bias=True):
    """A Conv2D's FLOPs: 2 Ho Wo kh kw Cin Cout (a multiply-add per kernel tap), + Ho Wo Cout with a bias."""
    outputs = output_height * output_width * out_channels
    return 2 * outputs * kernel_height * kernel_width * in_channels + (outputs if bias else 0)


def dense_flops(positions, in_features, out_features, bias=True):
    """A Dense layer's FLOPs at `positions` positions: 2 P In Out, + P Out with a bias."""
    outputs = positions * out_features
    return 2 * outputs * in_features + (outputs if bias else 0)


def graph_flops(graph):
    """{"profiler", "einsum", "total", "uncounted"} FLOPs of a tf.Graph's ops.

    `profiler` is tf.compat.v1.profiler's float_operation count; `einsum`
    adds the Einsum ops it has no formula for; `uncounted` lists the op types
    that call other functions (their insides are not counted).
    """
    import tensorflow as tf

    options = (tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output().build())
    profiled = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
    einsum, uncounted = 0, set()
    for op in graph.get_operations():
        if op.type == "Einsum":
            shapes = [t.shape.as_list() if t.shape.rank is not None else None
                      for t in op.inputs]
            count = einsum_flops(op.get_attr("equation").decode(), *shapes)
            if count is None:
                uncounted.add(f"Einsum {op.get_attr('equation').decode()}")
            else:
                einsum += count
        elif re.search(r"PartitionedCall|^While$|^If$|^Case$", op.type):
            uncounted.add(op.type)
    return {"profiler": int(profiled), "einsum": int(einsum), "total": int(profiled + einsum),
            "uncounted": sorted(uncounted)}


def training_flops(trainer):
    """Counts `trainer`'s training FLOPs per example on one batch of its input pipeline."""
    import tensorflow as tf

    model, task = trainer.model, trainer.task
    inputs, targets = next(iter(trainer.train_dataset(0)))

    def forward(inputs, targets):
        outputs = model(inputs, training=True)
        return task.per_example_loss(targets, outputs)

    graph = tf.function(forward).get_concrete_function(inputs, targets).graph
    counted = graph_flops(graph)
    batch = int(np.shape(tf.nest.flatten(inputs)[0])[0])
    forward_per_example = counted["total"] / batch
    return {"forward_per_batch": counted, "batch": batch,
            "forward_per_example": forward_per_example,
            "training_per_example": 3 * forward_per_example,
            "parameters": int(model.count_params())}


def achieved(flops_row, examples_per_sec, peak_gflops):
    """(achieved GFLOP/s, share of the peak) from a `training_flops` row."""
    gflops = flops_row["training_per_example"] * examples_per_sec / 1e9
    return gflops, gflops / peak_gflops
