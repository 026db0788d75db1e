"""BatchNorm against keras.layers.BatchNormalization, NumPy, gradients, XLA, Mirrored."""

import keras
import numpy as np
import pytest
from keras import ops

from layers import BatchNorm
from tests import keras_testing as kt

ATOL = 1e-5


def _random_bn_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=w.shape).astype(w.dtype) for w in layer.get_weights()]
    weights[-1] = np.abs(weights[-1]) + 0.5  # a positive moving variance
    return weights


@pytest.mark.parametrize("axis,shape", [(-1, (8, 5)), (-1, (4, 3, 3, 5)), (1, (4, 5, 3, 2))],
                         ids=["dense", "conv_channels_last", "conv_channels_first"])
@kt.jax_subset
def test_matches_keras_in_both_modes(axis, shape):
    x = kt.random_inputs(shape, low=-3.0, high=5.0)
    ours = BatchNorm(axis=axis, momentum=0.9, epsilon=1e-2)
    theirs = keras.layers.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-2)
    ours.build(shape)
    theirs.build(shape)
    assert [w.path.split("/")[-1] for w in ours.weights] == [
        "gamma", "beta", "moving_mean", "moving_variance"]
    theirs.set_weights(_random_bn_weights(theirs))
    kt.copy_weights(theirs, ours)
    for step in range(2):  # two training steps: outputs and moving statistics
        x_step = x * (step + 1)
        np.testing.assert_allclose(ours(x_step, training=True), theirs(x_step, training=True),
                                   atol=ATOL)
        for a, b in zip(ours.weights, theirs.weights, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=ATOL, err_msg=a.path)
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=ATOL)
    # Inference really uses the moving statistics and training the batch's.
    assert not np.allclose(ours(x, training=False), ours(x, training=True), atol=1e-3)


@kt.jax_subset
def test_formula_in_numpy():
    x = kt.random_inputs((6, 2, 3), low=0.0, high=4.0).astype("float64")
    layer = BatchNorm(momentum=0.8, epsilon=1e-3, dtype="float64")
    layer.build(x.shape)
    gamma, beta = np.array([0.5, 2.0, -1.0]), np.array([0.1, 0.2, 0.3])
    layer.set_weights([gamma, beta, np.zeros(3), np.ones(3)])
    mu, var = x.mean((0, 1)), x.var((0, 1))
    expected = gamma * (x - mu) / np.sqrt(var + 1e-3) + beta
    np.testing.assert_allclose(layer(x, training=True), expected, atol=kt.float64_atol(1e-10))
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.2 * mu, atol=kt.float64_atol(1e-12))
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.8 + 0.2 * var, atol=kt.float64_atol(1e-12))
    moving = gamma * (x - 0.2 * mu) / np.sqrt(0.8 + 0.2 * var + 1e-3) + beta
    np.testing.assert_allclose(layer(x, training=False), moving, atol=kt.float64_atol(1e-10))


def test_mask_and_frozen_layer_match_keras():
    x = kt.random_inputs((3, 4, 2), low=-2.0, high=3.0)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], bool)
    ours, theirs = BatchNorm(), keras.layers.BatchNormalization()
    ours.build(x.shape)
    theirs.build(x.shape)
    np.testing.assert_allclose(ours(x, training=True, mask=mask),
                               theirs(x, training=True, mask=mask), atol=ATOL)
    np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(),
                               atol=ATOL)
    # trainable=False: inference mode even with training=True, no updates.
    ours.trainable = False
    before = ours.moving_mean.numpy()
    np.testing.assert_allclose(ours(x, training=True), ours(x, training=False), atol=0)
    np.testing.assert_array_equal(ours.moving_mean.numpy(), before)


def test_mixed_precision_matches_keras():
    x = kt.random_inputs((16, 4), low=100.0, high=300.0)  # float16 stats would lose this
    ours = BatchNorm(dtype="mixed_float16")
    theirs = keras.layers.BatchNormalization(dtype="mixed_float16")
    y_ours, y_theirs = ours(x, training=True), theirs(x, training=True)
    assert y_ours.dtype == "float16" and ours.moving_mean.dtype == "float32"
    np.testing.assert_allclose(np.asarray(y_ours, np.float32), np.asarray(y_theirs, np.float32),
                               atol=2e-3)
    np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(),
                               rtol=1e-5)


@pytest.mark.parametrize("training", [
    pytest.param(True, marks=kt.exact_float64("the gradient check through the batch "
                                              "statistics (ops.mean)")), False])
def test_gradient_check(training):
    x = kt.random_inputs((4, 2, 3), low=-2.0, high=2.0, dtype="float64")
    layer = BatchNorm(dtype="float64", gamma_initializer="random_normal",
                      beta_initializer="random_normal", moving_variance_initializer="ones")
    assert kt.check_gradients(layer, x, training=training) < 1e-7


def test_keras_helper_checks(tmp_path):
    x = kt.random_inputs((8, 3, 3, 4))
    kt.run_layer_checks(lambda: BatchNorm(momentum=0.9), x, tmp_path,
                        expected_output_shape=(8, 3, 3, 4), trainable=2, non_trainable=2,
                        expect_non_trainable_change=True)
    # Without center/scale only the moving statistics remain.
    layer = BatchNorm(center=False, scale=False)
    layer.build((None, 4))
    kt.check_weight_counts(layer, trainable=0, non_trainable=2)


@kt.jax_subset
def test_xla_matches_plain():
    layer = BatchNorm(axis=1, momentum=0.5)
    kt.check_xla(layer, kt.random_inputs((4, 3, 2, 2)), training=True)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        BatchNorm(epsilon=0.0)
    with pytest.raises(ValueError, match="axis"):
        BatchNorm(axis=3).build((2, 4))


def _fit_model(bn, strategy=None, steps=2):
    """A small Dense-BN-Dense model with fixed weights, fit for `steps` batches of 8."""
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=(8 * steps, 3)).astype("float32")
    y = rng.normal(size=(8 * steps, 1)).astype("float32")
    scope = strategy.scope() if strategy else keras.name_scope("single")
    with scope:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), bn(),
                                  keras.layers.Dense(1)])
        model.set_weights([np.linspace(-1, 1, w.size).reshape(w.shape).astype("float32")
                           + (i == 5) * 1.5 for i, w in enumerate(model.get_weights())])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def test_mirrored_strategy_matches_keras_and_synchronized_matches_one_device(two_cpu_strategy):
    # Per-replica statistics: ours and Keras's behave alike under the same strategy.
    ours = _fit_model(lambda: BatchNorm(momentum=0.5), two_cpu_strategy)
    theirs = _fit_model(lambda: keras.layers.BatchNormalization(momentum=0.5), two_cpu_strategy)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    # Synchronized statistics over two replicas equal one device's full-batch result.
    synced = _fit_model(lambda: BatchNorm(momentum=0.5, synchronized=True), two_cpu_strategy)
    single = _fit_model(lambda: BatchNorm(momentum=0.5))
    for a, b in zip(synced, single, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    # ...and differ from per-replica statistics (so the check above means something).
    assert not np.allclose(synced[5], ours[5], atol=1e-4)


# --- batch renormalization (renorm=True) -----------------------------------------------------

RENORM_WEIGHTS = ["gamma", "beta", "moving_mean", "moving_variance", "moving_stddev",
                  "renorm_mean", "renorm_stddev"]
CLIPPING = {"rmax": 1.5, "rmin": 0.8, "dmax": 0.4}


def _random_renorm_weights(layer, seed=0):
    """Random gamma/beta/means and positive variances/stddevs for a renorm layer."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in layer.weights:
        name = w.path.split("/")[-1]
        if name in ("moving_variance", "moving_stddev", "renorm_stddev"):
            weights.append(rng.uniform(0.3, 1.5, size=w.shape).astype(w.dtype))
        else:
            weights.append(rng.normal(size=w.shape).astype(w.dtype))
    return weights


def _renorm_batches(shape, steps=4):
    """Batches whose scale and shift change from step to step, so r and d move (and clip)."""
    base = kt.random_inputs(shape, low=-2.0, high=2.0)
    return [base[::-1] * (0.4 + 0.8 * k) + (k - 1.5) for k in range(steps)]


@pytest.mark.parametrize("clipping", [None, CLIPPING], ids=["unclipped", "clipped"])
@pytest.mark.parametrize("axis,shape", [(-1, (8, 5)), (1, (4, 5, 3, 2))],
                         ids=["dense", "conv_channels_first"])
@kt.jax_subset
def test_renorm_matches_keras_over_steps(axis, shape, clipping):
    kwargs = dict(axis=axis, momentum=0.8, epsilon=1e-2, renorm=True,
                  renorm_clipping=clipping, renorm_momentum=0.6)
    ours, theirs = BatchNorm(**kwargs), keras.layers.BatchNormalization(**kwargs)
    ours.build(shape)
    theirs.build(shape)
    assert [w.path.split("/")[-1] for w in ours.weights] == RENORM_WEIGHTS
    assert [w.path.split("/")[-1] for w in theirs.weights] == RENORM_WEIGHTS
    theirs.set_weights(_random_renorm_weights(theirs))
    kt.copy_weights(theirs, ours)
    batches = _renorm_batches(shape)
    for x in batches:  # training: outputs and all seven weights, step after step
        np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True),
                                   atol=ATOL, rtol=1e-5)
        for a, b in zip(ours.weights, theirs.weights, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=ATOL, rtol=1e-5,
                                       err_msg=a.path)
    for x in batches:
        np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False),
                                   atol=ATOL, rtol=1e-5)


def test_renorm_differs_from_batch_norm_and_clipping_bites():
    """The twin test above would pass for a renorm that did nothing; this one would not."""
    shape = (8, 5)
    make = {name: BatchNorm(momentum=0.8, renorm_momentum=0.6, **kwargs) for name, kwargs in {
        "plain": {}, "renorm": {"renorm": True},
        "clipped": {"renorm": True, "renorm_clipping": CLIPPING}}.items()}
    for layer in make.values():
        layer.build(shape)
    for x in _renorm_batches(shape):
        y = {name: np.asarray(layer(x, training=True)) for name, layer in make.items()}
        assert not np.allclose(y["renorm"], y["plain"], atol=1e-3)
        assert not np.allclose(y["clipped"], y["renorm"], atol=1e-3)
    # The renorm moving statistics moved, and moving_variance follows moving_stddev.
    layer = make["renorm"]
    assert not np.allclose(layer.renorm_mean.numpy(), 0.0)
    assert not np.allclose(layer.renorm_stddev.numpy(), 1.0)
    np.testing.assert_allclose(layer.moving_variance.numpy(),
                               layer.moving_stddev.numpy() ** 2 - layer.epsilon, rtol=1e-5)


def _renorm_numpy(x, state, momentum, renorm_momentum, epsilon, clipping):
    """One training step of batch renormalization over axis -1, transcribed from the paper.

    `state` holds gamma, beta and the five moving statistics; it is updated in place.
    """
    reduce = tuple(range(x.ndim - 1))
    mu, sigma_b = x.mean(reduce), np.sqrt(x.var(reduce) + epsilon)
    sigma_r = np.maximum(state["renorm_stddev"], np.sqrt(epsilon))
    r = np.clip(sigma_b / sigma_r, clipping.get("rmin", 0.0), clipping.get("rmax", np.inf))
    d = np.clip((mu - state["renorm_mean"]) / sigma_r, -clipping.get("dmax", np.inf),
                clipping.get("dmax", np.inf))
    y = state["gamma"] * ((x - mu) / sigma_b * r + d) + state["beta"]

    def ema(old, new, m):
        return m * old + (1.0 - m) * new

    state["renorm_mean"] = ema(state["renorm_mean"], mu, renorm_momentum)
    state["renorm_stddev"] = ema(state["renorm_stddev"], sigma_b, renorm_momentum)
    state["moving_mean"] = ema(state["moving_mean"], mu, momentum)
    state["moving_stddev"] = ema(state["moving_stddev"], sigma_b, momentum)
    state["moving_variance"] = np.maximum(state["moving_stddev"] ** 2 - epsilon, 0.0)
    return y


@pytest.mark.parametrize("clipping", [{}, CLIPPING], ids=["unclipped", "clipped"])
def test_renorm_formula_in_numpy(clipping):
    momentum, renorm_momentum, epsilon = 0.7, 0.5, 1e-3
    layer = BatchNorm(momentum=momentum, epsilon=epsilon, renorm=True,
                      renorm_clipping=clipping, renorm_momentum=renorm_momentum,
                      dtype="float64")
    layer.build((None, 2, 3))
    weights = _random_renorm_weights(layer, seed=3)
    weights[-1][0] = 0.0  # renorm_stddev 0: s_R falls back to sqrt(epsilon)
    layer.set_weights(weights)
    state = {w.path.split("/")[-1]: w.numpy().copy() for w in layer.weights}
    for x in _renorm_batches((6, 2, 3)):
        x = x.astype("float64")
        expected = _renorm_numpy(x, state, momentum, renorm_momentum, epsilon, clipping)
        np.testing.assert_allclose(layer(x, training=True), expected, atol=kt.float64_atol(1e-10))
        for w in layer.weights:
            name = w.path.split("/")[-1]
            np.testing.assert_allclose(w.numpy(), state[name], atol=kt.float64_atol(1e-12), err_msg=name)
    # Inference is plain batch norm with moving_mean and moving_variance.
    moving = state["gamma"] * (x - state["moving_mean"]) / np.sqrt(
        state["moving_variance"] + epsilon) + state["beta"]
    np.testing.assert_allclose(layer(x, training=False), moving, atol=kt.float64_atol(1e-10))


def test_renorm_stddev_weights_start_at_sqrt_of_the_variance_initializer():
    layer = BatchNorm(renorm=True, moving_mean_initializer=keras.initializers.Constant(0.5),
                      moving_variance_initializer=keras.initializers.Constant(9.0))
    layer.build((None, 3))
    np.testing.assert_allclose(layer.moving_stddev.numpy(), 3.0)
    np.testing.assert_allclose(layer.renorm_stddev.numpy(), 3.0)
    np.testing.assert_allclose(layer.renorm_mean.numpy(), 0.5)


@kt.exact_float64("the gradient check through the batch statistics (ops.mean)")
def test_renorm_gradient_check():
    x = kt.random_inputs((4, 2, 3), low=-2.0, high=2.0, dtype="float64")
    # r and d depend on x only, so the weight gradients are exact however r and d come out.
    layer = BatchNorm(dtype="float64", renorm=True, gamma_initializer="random_normal",
                      beta_initializer="random_normal",
                      moving_mean_initializer=keras.initializers.Constant(0.3),
                      moving_variance_initializer=keras.initializers.Constant(2.0))
    assert kt.check_gradients(layer, x, check_inputs=False, training=True) < 1e-7
    # With r and d held at their clipping bounds they are locally constant, so the
    # stop-gradient agrees with finite differences for the inputs too (r = rmax, d = -dmax).
    clipped = BatchNorm(dtype="float64", renorm=True,
                        renorm_clipping={"rmax": 1.5, "rmin": 1.2, "dmax": 0.25},
                        gamma_initializer="random_normal", beta_initializer="random_normal",
                        moving_mean_initializer=keras.initializers.Constant(3.0),
                        moving_variance_initializer=keras.initializers.Constant(0.01))
    assert kt.check_gradients(clipped, x, training=True) < 1e-7
    assert kt.check_gradients(clipped, x, training=False) < 1e-7


@kt.jax_subset
def test_renorm_corrections_are_constants_for_backprop():
    """Gradients equal plain batch norm's with gamma' = gamma * r and beta' = gamma * d + beta."""
    x = kt.random_inputs((6, 3), low=-2.0, high=3.0, dtype="float64")
    renorm = BatchNorm(dtype="float64", renorm=True, epsilon=1e-3)
    renorm.build(x.shape)
    renorm.set_weights(_random_renorm_weights(renorm, seed=5))
    w = {v.path.split("/")[-1]: v.numpy() for v in renorm.weights}
    mu, sigma_b = x.mean(0), np.sqrt(x.var(0) + 1e-3)
    r, d = sigma_b / w["renorm_stddev"], (mu - w["renorm_mean"]) / w["renorm_stddev"]
    plain = BatchNorm(dtype="float64", epsilon=1e-3)
    plain.build(x.shape)
    plain.set_weights([w["gamma"] * r, w["gamma"] * d + w["beta"], w["moving_mean"],
                       w["moving_variance"]])
    c = np.random.default_rng(1).normal(size=(6, 3))  # loss = sum(c * y^2)
    (y_renorm, g_renorm), (y_plain, g_plain) = [
        _output_and_input_grad(layer, x, c) for layer in (renorm, plain)]
    np.testing.assert_allclose(y_renorm, y_plain, atol=kt.float64_atol(1e-10))
    np.testing.assert_allclose(g_renorm, g_plain, atol=kt.float64_atol(1e-10))
    assert np.abs(g_renorm).max() > 1e-3  # a real gradient, not zeros


def _output_and_input_grad(layer, x, c):
    weights = [v.value for v in layer.trainable_variables]
    state = [v.value for v in layer.non_trainable_variables]

    def output(t):
        return layer.stateless_call(weights, state, t, training=True)[0]

    _, (grad,) = kt.value_and_gradients(lambda t: ops.sum(c * ops.square(output(t))), x)
    return np.asarray(output(ops.convert_to_tensor(x))), grad


def test_renorm_mask_and_mixed_precision_match_keras():
    x = kt.random_inputs((3, 4, 2), low=-2.0, high=3.0)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], bool)
    kwargs = dict(renorm=True, renorm_clipping={"rmax": 2.0, "dmax": 1.0}, momentum=0.5,
                  renorm_momentum=0.5)
    ours, theirs = BatchNorm(**kwargs), keras.layers.BatchNormalization(**kwargs)
    for _ in range(2):
        np.testing.assert_allclose(ours(x, training=True, mask=mask),
                                   theirs(x, training=True, mask=mask), atol=ATOL)
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=ATOL, err_msg=a.path)
    x = kt.random_inputs((16, 4), low=100.0, high=300.0)
    ours = BatchNorm(dtype="mixed_float16", **kwargs)
    theirs = keras.layers.BatchNormalization(dtype="mixed_float16", **kwargs)
    y_ours, y_theirs = ours(x, training=True), theirs(x, training=True)
    assert y_ours.dtype == "float16" and ours.renorm_stddev.dtype == "float32"
    np.testing.assert_allclose(np.asarray(y_ours, np.float32), np.asarray(y_theirs, np.float32),
                               atol=2e-3)
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, err_msg=a.path)


def test_renorm_keras_helper_checks_and_config(tmp_path):
    x = kt.random_inputs((8, 3, 3, 4))
    kt.run_layer_checks(
        lambda: BatchNorm(momentum=0.9, renorm=True, renorm_clipping=dict(CLIPPING),
                          renorm_momentum=0.7),
        x, tmp_path, expected_output_shape=(8, 3, 3, 4), trainable=2, non_trainable=5,
        expect_non_trainable_change=True)
    config = BatchNorm(renorm=True, renorm_clipping={"rmax": 3, "dmax": None},
                       renorm_momentum=0.9).get_config()
    assert (config["renorm"], config["renorm_clipping"], config["renorm_momentum"]) == (
        True, {"rmax": 3.0}, 0.9)
    assert BatchNorm.from_config(config).get_config() == config
    # A Keras config loads into ours (and ours into Keras) with the same arguments.
    theirs = keras.layers.BatchNormalization(renorm=True, renorm_clipping=dict(CLIPPING),
                                             renorm_momentum=0.9)
    ours = BatchNorm.from_config(theirs.get_config())
    assert (ours.renorm, ours.renorm_clipping, ours.renorm_momentum) == (True, CLIPPING, 0.9)
    keras.layers.BatchNormalization.from_config(ours.get_config())
    # Defaults are unchanged: no renorm, four weights.
    plain = BatchNorm()
    plain.build((None, 3))
    assert (plain.renorm, plain.renorm_clipping, plain.renorm_momentum) == (False, None, 0.99)
    assert len(plain.weights) == 4


def test_renorm_xla_matches_plain():
    layer = BatchNorm(axis=1, momentum=0.5, renorm=True, renorm_clipping=dict(CLIPPING))
    kt.check_xla(layer, kt.random_inputs((4, 3, 2, 2), low=-1.0, high=3.0), training=True)


def test_renorm_invalid_arguments():
    with pytest.raises(ValueError, match="Received invalid keys"):
        BatchNorm(renorm=True, renorm_clipping={"rmax": 2.0, "r_max": 1.0})
    with pytest.raises(ValueError, match="rmax should be"):
        BatchNorm(renorm=True, renorm_clipping={"rmax": 0.5, "rmin": 1.0})
    with pytest.raises(ValueError, match="dmax should be non-negative"):
        BatchNorm(renorm=True, renorm_clipping={"dmax": -1.0})
    with pytest.raises(ValueError, match="renorm_clipping"):
        BatchNorm(renorm=True, renorm_clipping=[1.0, 2.0])
    with pytest.raises(ValueError, match="renorm_momentum"):
        BatchNorm(renorm=True, renorm_momentum=-0.1)


def test_renorm_synchronized_mirrored_matches_one_device(two_cpu_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=(24, 3)).astype("float32")
    y = rng.normal(size=(24, 1)).astype("float32")

    def make(synchronized):
        def model():
            init = keras.initializers.GlorotUniform(2)
            return keras.Sequential([
                keras.Input((3,)), keras.layers.Dense(4, kernel_initializer=init),
                BatchNorm(momentum=0.5, renorm=True, renorm_momentum=0.5,
                          renorm_clipping={"rmax": 1.5, "dmax": 0.5}, synchronized=synchronized),
                keras.layers.Dense(1, kernel_initializer=init)])
        return model

    synced = kt.fit_steps(make(True), x, y, two_cpu_strategy, steps=3).get_weights()
    single = kt.fit_steps(make(False), x, y, steps=3).get_weights()
    assert len(synced) == 2 + 7 + 2
    for a, b in zip(synced, single, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    assert not np.allclose(single[7], 0.0)  # renorm_mean moved
