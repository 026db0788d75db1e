"""The two models: padding and causal masks, stepping = teacher forcing, the loss."""

import numpy as np
import pytest
import tensorflow as tf

from apps.translation import model as model_lib
from configs.translation import get_config


@pytest.fixture(scope="module", params=["attention", "transformer"])
def model(request):
    config = get_config("tiny")
    config.model.name = request.param
    config.model.dropout = 0.0
    tf.keras.utils.set_random_seed(0)
    return model_lib.build(config, source_vocab=20, target_vocab=12)


SOURCE = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]], np.int32)
DECODER = np.array([[2, 5, 6, 7, 0], [2, 8, 9, 10, 11]], np.int32)


def test_source_padding_is_masked(model):
    """More padding after a source changes no output."""
    logits = model((SOURCE, DECODER)).numpy()
    padded = np.pad(SOURCE, [(0, 0), (0, 3)])
    np.testing.assert_allclose(model((padded, DECODER)).numpy(), logits, atol=1e-5)
    # ... while a real token there does change it.
    changed = padded.copy()
    changed[0, 4] = 15
    assert not np.allclose(model((changed, DECODER)).numpy()[0], logits[0], atol=1e-4)
    _, attention = model.decode(model.encode(tf.constant(padded)), tf.constant(DECODER),
                                return_attention=True)
    attention = attention.numpy()
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    assert np.abs(attention[0, :, 4:]).max() < 1e-6  # no weight on padding


def test_decoder_is_causal(model):
    """The logits at position t do not depend on decoder inputs after t."""
    logits = model((SOURCE, DECODER)).numpy()
    future = DECODER.copy()
    future[:, 3:] = [[4, 4], [3, 3]]
    other = model((SOURCE, future)).numpy()
    np.testing.assert_allclose(other[:, :3], logits[:, :3], atol=1e-5)
    assert not np.allclose(other[:, 3:], logits[:, 3:], atol=1e-4)


def test_one_step_at_a_time_equals_teacher_forcing(model):
    """What the decoders use (step) is what training used (whole sequences)."""
    memory = model.encode(tf.constant(SOURCE))
    logits = model.decode(memory, tf.constant(DECODER)).numpy()
    state = model.initial_state(memory)
    for t in range(DECODER.shape[1]):
        step_logits, state = model.step(memory, state, tf.constant(DECODER), t)
        np.testing.assert_allclose(step_logits.numpy(), logits[:, t], atol=1e-5)


def test_training_step_compiles_with_xla_for_any_batch_size(model):
    """Traced with the batch size unknown (as each of two workers traces it), the
    gradient compiles with XLA and equals the one without XLA."""
    spec = (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32))

    def gradients(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(inputs, training=True) ** 2)
        return tape.gradient(loss, model.trainable_variables)

    inputs = (tf.constant(SOURCE), tf.constant(DECODER))
    compiled = tf.function(gradients, jit_compile=True, input_signature=[spec])(inputs)
    plain = tf.function(gradients, input_signature=[spec])(inputs)
    for a, b in zip(compiled, plain, strict=True):
        np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(),
                                   tf.convert_to_tensor(b).numpy(), rtol=1e-4, atol=1e-5)


def test_sequence_loss_masks_padding_numpy_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 6)).astype(np.float32)
    targets = np.array([[4, 5, 3, 0], [3, 0, 0, 0], [1, 2, 4, 3]], np.int32)
    for eps in (0.0, 0.1):
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        q = np.eye(6)[targets] * (1 - eps) + eps / 6
        ce = -(q * log_p).sum(-1)
        real = targets != 0
        expected = (ce * real).sum(-1) / real.sum(-1)
        got = model_lib.sequence_loss(tf.constant(targets), tf.constant(logits), eps).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Padding logits are ignored entirely.
    other = logits.copy()
    other[1, 1:] = 100.0
    np.testing.assert_allclose(model_lib.sequence_loss(targets, other).numpy()[1],
                               model_lib.sequence_loss(targets, logits).numpy()[1], rtol=1e-6)
