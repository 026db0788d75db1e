"""Batch normalization (Ioffe and Szegedy, 2015) and batch renormalization
(Ioffe, 2017), written from the formulas."""

import operator

import keras
from keras import constraints, initializers, ops, regularizers

from layers._backend import at_least_float32, is_tensorflow

if is_tensorflow():
    # Only the cross-replica statistics (`synchronized=True`) need it.
    import tensorflow as tf

__all__ = ["BatchNorm"]


def _replica_context():
    """The current tf.distribute replica context when it has several replicas, else None.

    Always None on the backends other than TensorFlow (no tf.distribute there).
    """
    if not is_tensorflow():
        return None
    ctx = tf.distribute.get_replica_context()
    return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None


_CLIPPING_KEYS = ("rmax", "rmin", "dmax")


def _checked_clipping(renorm_clipping):
    """`renorm_clipping` as a new dict of floats (None values dropped), validated."""
    if renorm_clipping is None:
        return None
    if not isinstance(renorm_clipping, dict):
        raise ValueError("BatchNorm: `renorm_clipping` must be a dict with keys among "
                         f"{list(_CLIPPING_KEYS)}; got renorm_clipping={renorm_clipping!r}.")
    unknown = sorted(set(renorm_clipping) - set(_CLIPPING_KEYS), key=str)
    if unknown:
        raise ValueError(f"BatchNorm: Received invalid keys {unknown} in `renorm_clipping`="
                         f"{renorm_clipping!r}; the keys may only be {list(_CLIPPING_KEYS)}.")
    clipping = {k: float(v) for k, v in renorm_clipping.items() if v is not None}
    rmin, rmax, dmax = (clipping.get(k) for k in ("rmin", "rmax", "dmax"))
    if rmin is not None and rmax is not None and rmax < rmin:
        raise ValueError(f"BatchNorm: in `renorm_clipping`, rmax should be >= rmin; got "
                         f"rmax={rmax}, rmin={rmin}.")
    if dmax is not None and dmax < 0.0:
        raise ValueError(f"BatchNorm: in `renorm_clipping`, dmax should be non-negative; "
                         f"got dmax={dmax}.")
    return clipping


def _fresh(initializer):
    """A new instance of a Keras initializer (so a seeded one is not reused), else itself."""
    if isinstance(initializer, initializers.Initializer):
        return type(initializer).from_config(initializer.get_config())
    return initializer


@keras.saving.register_keras_serializable(package="dlsuite")
class BatchNorm(keras.layers.Layer):
    """Batch normalization: normalizes each feature over the batch.

    For every feature (channel) c along `axis`, with the other axes of the
    input (batch, and height/width for images) reduced over:

        mu_c      = mean(x[..., c])
        sigma2_c  = mean((x[..., c] - mu_c) ** 2)          (biased variance)
        y[..., c] = gamma_c * (x[..., c] - mu_c) / sqrt(sigma2_c + epsilon) + beta_c

    **Training and inference differ.** With `training=True` (in `fit`, or
    when called with `training=True`) mu and sigma2 are the statistics *of
    the current batch*, gradients flow through them, and the moving averages
    are updated:

        moving_mean     <- momentum * moving_mean     + (1 - momentum) * mu
        moving_variance <- momentum * moving_variance + (1 - momentum) * sigma2

    With `training=False` (the default; `evaluate`, `predict`, serving) the
    layer uses `moving_mean` and `moving_variance` in place of mu and sigma2,
    so each example is normalized independently of the rest of its batch and
    the output is a fixed affine function of the input. A layer set to
    `trainable = False` always runs in inference mode (as Keras does), so a
    frozen backbone keeps its statistics.

    **Batch renormalization** (`renorm=True`; Ioffe, 2017,
    https://arxiv.org/abs/1702.03275) makes training-mode outputs agree with
    what inference will compute, which helps with small or non-i.i.d.
    batches. Two more moving averages, `renorm_mean` (mu_R) and
    `renorm_stddev` (sigma_R), follow the batch statistics with
    `renorm_momentum`; in training each batch is normalized with its own
    statistics and then corrected towards them:

        sigma_B = sqrt(sigma2 + epsilon)
        s_R     = max(sigma_R, sqrt(epsilon))               (no division by ~0)
        r       = clip(sigma_B / s_R, rmin, rmax)
        d       = clip((mu - mu_R) / s_R, -dmax, dmax)
        y       = gamma * ((x - mu) / sigma_B * r + d) + beta

    r and d are treated as constants by backpropagation (stop-gradient), as
    in the paper. Without clipping, r = sigma_B / s_R and d make
    `(x - mu) / sigma_B * r + d = (x - mu_R) / s_R`: the moving statistics'
    normalization, with the gradient of the batch's. `renorm_clipping` is a
    dict with optional keys "rmax", "rmin", "dmax" (missing: no bound, i.e.
    inf, 0 and inf); r is clipped to [rmin, rmax] and d to [-dmax, dmax];
    the paper starts from rmax = 1, rmin = 1, dmax = 0 (plain batch norm)
    and relaxes them during training. After the correction (which uses the
    averages from *before* this batch) the moving statistics are updated:

        mu_R            <- renorm_momentum * mu_R    + (1 - renorm_momentum) * mu
        sigma_R         <- renorm_momentum * sigma_R + (1 - renorm_momentum) * sigma_B
        moving_mean     <- momentum * moving_mean    + (1 - momentum) * mu
        moving_stddev   <- momentum * moving_stddev  + (1 - momentum) * sigma_B
        moving_variance <- max(moving_stddev ** 2 - epsilon, 0)

    that is, with renorm the inference variance is averaged as a standard
    deviation (`moving_stddev`) and `moving_variance` derived from it, while
    inference itself is unchanged (it reads `moving_mean` and
    `moving_variance`, whatever `renorm` is). `moving_stddev` and
    `renorm_stddev` start at the square root of
    `moving_variance_initializer`'s values, `renorm_mean` at
    `moving_mean_initializer`'s.

    The arguments, weight names, weight order (gamma, beta, moving_mean,
    moving_variance, then with renorm moving_stddev, renorm_mean,
    renorm_stddev) and numerics follow `keras.layers.BatchNormalization`, so
    weights copy between the two and the training and inference outputs agree.
    Float16/bfloat16 inputs (mixed precision) are normalized in float32 and
    the result cast back to the layer's compute dtype; the weights stay in
    the variable dtype (float32). Under `tf.distribute`, the moving
    statistics are updated with `Variable.assign` in replica context, exactly
    as Keras does; each replica uses its own batch statistics unless
    `synchronized=True`, which all-reduces the sums over the replicas so that
    mu and sigma2 are those of the global batch.

    Args:
      axis: the feature axis (an int, negative counts from the end); -1 for
        dense `(batch, features)` and channels-last images, 1 for
        channels-first.
      momentum: momentum of the moving averages used by inference, in [0, 1].
      epsilon: small positive float added to the variance.
      center: if True, add the learned offset `beta`.
      scale: if True, multiply by the learned scale `gamma`.
      beta_initializer, gamma_initializer: initializers of beta and gamma.
      moving_mean_initializer, moving_variance_initializer: initializers of
        the moving statistics.
      beta_regularizer, gamma_regularizer: optional regularizers.
      beta_constraint, gamma_constraint: optional constraints.
      renorm: if True, use batch renormalization in training (three more
        non-trainable weights; inference is unchanged).
      renorm_clipping: with `renorm`, an optional dict with keys among
        "rmax", "rmin", "dmax" (floats) bounding r and d; other keys, rmax <
        rmin or dmax < 0 are rejected.
      renorm_momentum: momentum of `renorm_mean` and `renorm_stddev`, in
        [0, 1]. Unlike `momentum` it affects training: small values make r
        and d noisy, large ones stale.
      synchronized: if True, batch statistics are computed over all replicas
        of the current `tf.distribute` strategy (TensorFlow backend; on the
        other backends, as in Keras, it has no effect).
      **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
      inputs: a tensor of any rank >= 2.
      training: True for batch statistics (and moving-average updates),
        False/None for the moving statistics.
      mask: optional boolean tensor of shape `inputs.shape[:-1]`; masked
        positions are left out of the batch statistics (as in Keras).
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, bool):
            raise ValueError(f"BatchNorm: `axis` must be an int; got axis={axis!r}.")
        try:
            axis = operator.index(axis)
        except TypeError:
            raise ValueError(f"BatchNorm: `axis` must be an int; got axis={axis!r}.") from None
        for name, value in (("momentum", momentum), ("renorm_momentum", renorm_momentum)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"BatchNorm: `{name}` must be in [0, 1]; got {name}={value}.")
        if not float(epsilon) > 0.0:
            raise ValueError(f"BatchNorm: `epsilon` must be positive; got epsilon={epsilon}.")
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.renorm = bool(renorm)
        self.renorm_clipping = _checked_clipping(renorm_clipping)
        self.renorm_momentum = float(renorm_momentum)
        self.synchronized = bool(synchronized)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.gamma = None
        self.beta = None

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"BatchNorm: `axis`={self.axis} is out of range for inputs of "
                             f"shape {tuple(input_shape)}.")
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(f"BatchNorm: the feature axis {self.axis} of the input shape "
                             f"{tuple(input_shape)} must be known.")
        self._axis = self.axis % rank
        self._reduction_axes = [i for i in range(rank) if i != self._axis]
        # Shape to which per-channel vectors are reshaped to broadcast against x.
        self._broadcast_shape = [1] * rank
        self._broadcast_shape[self._axis] = channels
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape, name="gamma", initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
                trainable=True, autocast=False)
        if self.center:
            self.beta = self.add_weight(
                shape=shape, name="beta", initializer=self.beta_initializer,
                regularizer=self.beta_regularizer, constraint=self.beta_constraint,
                trainable=True, autocast=False)
        self.moving_mean = self.add_weight(
            shape=shape, name="moving_mean", initializer=self.moving_mean_initializer,
            trainable=False, autocast=False)
        self.moving_variance = self.add_weight(
            shape=shape, name="moving_variance", initializer=self.moving_variance_initializer,
            trainable=False, autocast=False)
        if self.renorm:
            def stddev_initializer(shape, dtype=None):
                # sqrt of what moving_variance_initializer gives (a fresh copy of it).
                return ops.sqrt(_fresh(self.moving_variance_initializer)(shape, dtype=dtype))

            # Same names and order as Keras: the inference stddev, then the
            # training-time (renorm) mean and stddev.
            self.moving_stddev = self.add_weight(
                shape=shape, name="moving_stddev", initializer=stddev_initializer,
                trainable=False, autocast=False)
            self.renorm_mean = self.add_weight(
                shape=shape, name="renorm_mean",
                initializer=_fresh(self.moving_mean_initializer),
                trainable=False, autocast=False)
            self.renorm_stddev = self.add_weight(
                shape=shape, name="renorm_stddev", initializer=stddev_initializer,
                trainable=False, autocast=False)
        self.input_spec = keras.InputSpec(ndim=rank, axes={self._axis: channels})

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _moments(self, x, mask):
        """Per-channel batch mean and (biased) variance, shaped (C,)."""
        axes = self._reduction_axes
        if mask is not None:
            if len(mask.shape) != len(x.shape) - 1:
                raise ValueError("BatchNorm: `mask` must have one dimension less than the "
                                 f"inputs; got mask.shape={mask.shape}, "
                                 f"inputs.shape={x.shape}.")
            weights = ops.cast(ops.expand_dims(mask, -1), x.dtype)
            weights = ops.broadcast_to(weights, ops.shape(x))
            count = ops.sum(weights, axes, keepdims=True) + keras.config.epsilon()
            mean = ops.sum(x * weights, axes, keepdims=True) / count
            variance = ops.sum(ops.square(x - mean) * weights, axes, keepdims=True) / count
        elif self.synchronized and (ctx := _replica_context()) is not None:
            # Global-batch statistics: all-reduce sum(x), sum(x^2) and the count,
            # then sigma2 = E[x^2] - mu^2.
            channels = self._broadcast_shape[self._axis]
            local = ops.stack([ops.sum(x, axes), ops.sum(ops.square(x), axes),
                               ops.ones((channels,), x.dtype) * ops.cast(
                                   ops.size(x) // channels, x.dtype)])
            total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local)
            mean = total[0] / total[2]
            variance = ops.maximum(total[1] / total[2] - ops.square(mean), 0.0)
            return mean, variance
        else:
            mean = ops.mean(x, axes, keepdims=True)
            # d(variance)/d(mean) is exactly zero, so the mean can be held
            # constant here; this saves work in the backward pass.
            variance = ops.mean(ops.square(x - ops.stop_gradient(mean)), axes, keepdims=True)
        channels = (self._broadcast_shape[self._axis],)
        return ops.reshape(mean, channels), ops.reshape(variance, channels)

    def _renorm_correction(self, mean, variance):
        """r and d of batch renormalization (constants for backprop), shaped (C,)."""
        dtype = mean.dtype
        sigma_b = ops.sqrt(variance + self.epsilon)
        sigma_r = ops.maximum(ops.cast(self.renorm_stddev, dtype), self.epsilon ** 0.5)
        r = sigma_b / sigma_r
        d = (mean - ops.cast(self.renorm_mean, dtype)) / sigma_r
        clipping = self.renorm_clipping or {}
        if "rmin" in clipping:
            r = ops.maximum(r, clipping["rmin"])
        if "rmax" in clipping:
            r = ops.minimum(r, clipping["rmax"])
        if "dmax" in clipping:
            d = ops.clip(d, -clipping["dmax"], clipping["dmax"])
        return ops.stop_gradient(r), ops.stop_gradient(d)

    def _update_moving_statistics(self, mean, variance):
        """Moves the averages towards this batch's mu and sigma2 (see the class docstring)."""
        dtype = mean.dtype

        def toward(variable, value, momentum):
            new = ops.cast(variable, dtype) * momentum + value * (1.0 - momentum)
            variable.assign(new)
            return new

        toward(self.moving_mean, mean, self.momentum)
        if not self.renorm:
            toward(self.moving_variance, variance, self.momentum)
            return
        sigma_b = ops.sqrt(variance + self.epsilon)
        toward(self.renorm_mean, mean, self.renorm_momentum)
        toward(self.renorm_stddev, sigma_b, self.renorm_momentum)
        stddev = toward(self.moving_stddev, sigma_b, self.momentum)
        # Rounding could make stddev^2 - epsilon slightly negative.
        self.moving_variance.assign(ops.relu(ops.square(stddev) - self.epsilon))

    def call(self, inputs, training=None, mask=None):
        # Statistics overflow in float16; compute in float32 (or float64).
        dtype = at_least_float32(inputs.dtype)
        x = ops.cast(inputs, dtype)
        r = d = None
        if training and self.trainable:
            mean, variance = self._moments(x, mask)
            if self.renorm:
                # The correction uses the renorm averages from before this batch.
                r, d = self._renorm_correction(mean, variance)
            self._update_moving_statistics(mean, variance)
        else:
            mean = ops.cast(self.moving_mean, dtype)
            variance = ops.cast(self.moving_variance, dtype)

        # y = x * inv + (beta - mean * inv) with inv = gamma / sqrt(var + eps):
        # only two elementwise passes over x. With renorm, gamma * (z * r + d)
        # + beta = z * (gamma * r) + (gamma * d + beta) for z = (x - mu) / sigma_B.
        gamma = ops.cast(self.gamma, dtype) if self.scale else None
        inv = ops.rsqrt(variance + self.epsilon)
        if r is not None:
            inv = inv * r
        if gamma is not None:
            inv = inv * gamma
        offset = -mean * inv
        if d is not None:
            offset = offset + (d if gamma is None else d * gamma)
        if self.center:
            offset = offset + ops.cast(self.beta, dtype)
        if self._axis != len(x.shape) - 1:
            inv = ops.reshape(inv, self._broadcast_shape)
            offset = ops.reshape(offset, self._broadcast_shape)
        outputs = x * inv + offset
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "renorm": self.renorm,
            "renorm_clipping": (None if self.renorm_clipping is None
                                else dict(self.renorm_clipping)),
            "renorm_momentum": self.renorm_momentum,
            "synchronized": self.synchronized,
        })
        return config
