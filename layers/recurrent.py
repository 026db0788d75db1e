"""Recurrent layers written from the notes' equations: SimpleRNN, GRU and LSTM.

Each comes as a cell (one time step: `SimpleRNNCell`, `GRUCell`, `LSTMCell`,
usable on its own or inside `keras.layers.RNN`) and as a layer that runs the
cell over a sequence (`SimpleRNN`, `GRU`, `LSTM`). The weights have the names,
shapes and gate order of the Keras twins (`kernel` (d, g*n), `recurrent_kernel`
(n, g*n), `bias`), so `ours.set_weights(keras_twin.get_weights())` copies
across exactly, both ways.

How the time loop is written, and why
-------------------------------------
Every gate pre-activation is a sum of an input term and a recurrent term,
W x<t> + U a<t-1> + b. The input term does not depend on the previous step,
so the layer computes it for all time steps at once, before the loop, as one
(T*B, d) x (d, g*n) matmul (the input bias added once); its backward pass is
one matmul for the input gradient, one for the kernel's and one sum for the
bias's. Inside the loop only the recurrent matmul a<t-1> U, (B, n) x (n, g*n),
the elementwise gates and the masking remain, on the critical path that no
parallelism can shorten. Keras's generic loop instead calls the whole cell,
input matmul included, at every step (and accumulates the kernel and bias
gradients step by step in the backward pass).

On TensorFlow the loop is a `tf.while_loop` (`_run_over_time`). The
projected inputs go in as a TensorList that each iteration pops from the
back, and the outputs come out through one it pushes onto: pop and push are
each other's gradient, O(1) per step (TensorFlow's own while-loop
accumulators work this way), whereas reading a `tf.TensorArray` by index
costs the backward pass a zero-filled copy of all the inputs and a
list-sized accumulation per step; the pops measured 5 to 10% faster on CPU
for forward + backward. The recurrent weights are read and sliced once,
outside the loop. The loop compiles under XLA, also when the batch and time
sizes are unknown when traced (the output list is sized by the run-time
length, a constant to XLA, which compiles per shape). It is the
one TensorFlow-specific piece (`keras.ops.scan` on TensorFlow passes its
carry through a size-1 TensorArray at every step and needs per-step outputs
shaped like the carry, which does not fit the LSTM: carry (a, c), output a);
on the other Keras backends (JAX) the same step runs in `keras.ops.scan`
(`jax.lax.scan`, whose carry and per-step outputs are separate). The gates
are in `keras.ops`. With `unroll=True` the loop is a Python loop over a
static number of steps on every backend.

Sequences, masks, dropout (as in Keras):
  * `go_backwards=True` runs over the reversed sequence and returns the
    outputs in that (reversed) order, so `keras.layers.Bidirectional` can
    wrap these layers.
  * A mask (B, T) (from `keras.layers.Masking`, `Embedding(mask_zero=True)`,
    or `mask=`): at a masked step the states keep their previous values and
    the output repeats the previous step's output (zeros before the first
    unmasked step); with `zero_output_for_mask=True` (which Bidirectional
    sets when it returns sequences) a masked step outputs zeros.
  * `dropout` / `recurrent_dropout` (training only): one mask per sequence
    on the inputs x<t> / on the recurrent input a<t-1>, fixed over time.
    With `recurrent_dropout > 0`, GRU and LSTM draw a separate pair of masks
    for every gate (Keras's implementation 1); otherwise one input mask is
    shared by all gates.
  * `stateful=True` is not supported (it raises); pass the last states back
    in with `initial_state` instead.
"""

import inspect

import keras
from keras import activations, constraints, initializers, ops, regularizers

from layers._backend import is_tensorflow

if is_tensorflow():
    import tensorflow as tf

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "SimpleRNN", "SimpleRNNCell"]


def _pop(handle, like):
    """Pops the last element (shaped like like[0]) of the TensorList `handle`."""
    handle, item = tf.raw_ops.TensorListPopBack(
        input_handle=handle, element_shape=tf.shape(like)[1:], element_dtype=like.dtype)
    item.set_shape(like.shape[1:])
    return handle, item


def _run_over_time(step, inputs, states, mask=None, return_sequences=False, unroll=False):
    """Runs `states = step(x_t, states)` over the time steps of `inputs`.

    Args:
      step: (x_t (B, g*n), states tuple) -> new states tuple; states[0] is a<t>.
      inputs: time-major projected inputs (T, B, g*n) in REVERSED processing
        order: inputs[-1] is the first step's (the loop pops them from the back).
      states: tuple of initial states, each (B, n).
      mask: optional bool (T, B, 1) in the order of `inputs`; where False the
        states keep their previous values.
      return_sequences: also return a<t> of every step.
      unroll: a Python loop over the (static) time steps instead of a while loop.

    Returns:
      (a<t> of every step (T, B, n) in processing order, or None; the final states).

    The per-step inputs travel in a TensorList that each iteration pops from
    the back, and the outputs in one it pushes onto: the gradients of pop and
    push are push and pop, O(1) per step, the same mechanism TensorFlow uses
    for its own while-loop accumulators. Reading a `tf.TensorArray` by index
    instead costs, in the backward pass, a zero-filled list the size of all
    the inputs and a list-sized accumulation at every step.
    """
    states = tuple(states)

    def masked_step(x_t, m_t, states):
        new = step(x_t, states)
        if m_t is not None:
            new = tuple(ops.where(m_t, a, b) for a, b in zip(new, states, strict=True))
        return new

    if unroll:
        if inputs.shape[0] is None:
            raise ValueError("recurrent layer: `unroll=True` needs a static number of time "
                             "steps (give keras.Input a `shape` with the time dimension).")
        hs = []
        for t in reversed(range(inputs.shape[0])):
            states = masked_step(inputs[t], None if mask is None else mask[t], states)
            hs.append(states[0])
        return (ops.stack(hs) if return_sequences else None), states

    if not is_tensorflow():
        return _scan_over_time(masked_step, inputs, states, mask, return_sequences)

    steps = inputs.shape[0] if inputs.shape[0] is not None else tf.shape(inputs)[0]
    static = isinstance(steps, int)
    xs = tf.raw_ops.TensorListFromTensor(tensor=inputs, element_shape=tf.shape(inputs)[1:])
    ms = () if mask is None else tf.raw_ops.TensorListFromTensor(
        tensor=mask, element_shape=tf.shape(mask)[1:])
    hs = ()
    if return_sequences:
        hs = tf.raw_ops.EmptyTensorList(element_shape=tf.shape(states[0]),
                                        max_num_elements=steps,
                                        element_dtype=states[0].dtype)

    def body(t, xs, ms, hs, states):
        xs, x_t = _pop(xs, inputs)
        m_t = None
        if mask is not None:
            ms, m_t = _pop(ms, mask)
        states = masked_step(x_t, m_t, states)
        if return_sequences:
            hs = tf.raw_ops.TensorListPushBack(input_handle=hs, tensor=states[0])
        return t + 1, xs, ms, hs, states

    _, _, _, hs, states = tf.while_loop(lambda t, *_: t < steps, body,
                                        (tf.constant(0), xs, ms, hs, states),
                                        maximum_iterations=steps)
    if not return_sequences:
        return None, tuple(states)
    hs = tf.raw_ops.TensorListStack(input_handle=hs, element_shape=tf.shape(states[0]),
                                    element_dtype=states[0].dtype,
                                    num_elements=steps if static else -1)
    hs.set_shape([inputs.shape[0]] + list(states[0].shape))
    return hs, tuple(states)


def _scan_over_time(masked_step, inputs, states, mask, return_sequences):
    """`_run_over_time`'s loop with `keras.ops.scan` (the backends other than TensorFlow).

    `reverse=True` processes inputs[-1] first, as the TensorFlow loop's pops do;
    the per-step outputs come back indexed like `inputs`, hence the flip into
    processing order. The new states are cast to the carry's dtypes, which scan
    requires (Keras's JAX `ops.tanh` returns float32 for float64 input).
    """
    def body(carry, xm):
        x_t, m_t = xm
        carry = tuple(ops.cast(new, old.dtype)
                      for new, old in zip(masked_step(x_t, m_t, carry), carry, strict=True))
        return carry, (carry[0] if return_sequences else None)

    states, hs = ops.scan(body, states, (inputs, mask), reverse=True)
    if not return_sequences:
        return None, tuple(states)
    return ops.flip(hs, axis=0), tuple(states)


def _check_rate(owner, name, value):
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{owner}: `{name}` must be in [0, 1); got {name}={value}.")
    return float(value)


class _Cell(keras.layers.Layer):
    """What the three cells share: arguments, weights, dropout masks, the input term.

    A subclass sets `gates` (g, the number of n-wide blocks of the kernels)
    and implements `make_step`.
    """

    gates = 1
    state_count = 1

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        name = type(self).__name__
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{name}: `units` must be a positive int; got units={units!r}.")
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = _check_rate(name, "dropout", dropout)
        self.recurrent_dropout = _check_rate(name, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        if self.dropout > 0.0 or self.recurrent_dropout > 0.0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = units if self.state_count == 1 else [units] * self.state_count
        self.output_size = units
        self.kernel = self.recurrent_kernel = self.bias = None

    # -- weights ------------------------------------------------------------------------------

    def _bias_shape(self):
        return (self.gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape):
        n, width = self.units, self.gates * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], width), name="kernel", initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(
            shape=(n, width), name="recurrent_kernel", initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer, constraint=self.recurrent_constraint)
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self._bias_shape(), name="bias", initializer=self._bias_initializer(),
                regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def _input_bias(self):
        return ops.convert_to_tensor(self.bias) if self.use_bias else None

    def _gate_blocks(self, weight):
        """The g column blocks (each n wide) of a kernel, as tensors."""
        weight = ops.convert_to_tensor(weight)
        return [weight[:, k * self.units:(k + 1) * self.units] for k in range(self.gates)]

    # -- dropout -------------------------------------------------------------------------------

    def _mask_count(self):
        """How many input (and recurrent) dropout masks: one per gate with recurrent dropout."""
        return self.gates if self.recurrent_dropout > 0.0 else 1

    def _dropout_masks(self, inputs, state, training):
        """(input masks, recurrent masks), each None or a list of masks scaled by 1/(1-rate).

        inputs (B, d) and state (B, n) give the shapes; the masks are drawn once
        per call of the layer (so they are fixed over time).
        """
        def draw(like, rate):
            if not training or rate == 0.0:
                return None
            ones = ops.ones_like(like)
            return [keras.random.dropout(ones, rate, seed=self.seed_generator)
                    for _ in range(self._mask_count())]
        return draw(inputs, self.dropout), draw(state, self.recurrent_dropout)

    # -- the computation -----------------------------------------------------------------------

    def project_inputs(self, inputs, masks=None):
        """The input term of every gate, W x + b, for inputs (..., d) -> (..., g*n).

        One matmul over all leading axes (for a sequence: all time steps at
        once). With several dropout masks (one per gate), gate k's block is
        computed from x * masks[k].
        """
        lead, d = ops.shape(inputs)[:-1], inputs.shape[-1]

        def matmul(x, kernel):
            return ops.matmul(ops.reshape(x, (-1, d)), kernel)

        if masks is None:
            projected = matmul(inputs, self.kernel)
        elif len(masks) == 1:
            projected = matmul(inputs * masks[0], self.kernel)
        else:
            projected = ops.concatenate(
                [matmul(inputs * m, w)
                 for m, w in zip(masks, self._gate_blocks(self.kernel), strict=True)], axis=-1)
        bias = self._input_bias()
        if bias is not None:
            projected = projected + bias
        return ops.reshape(projected, tuple(lead) + (self.gates * self.units,))

    def _recurrent_term(self, h, masks, blocks, kernel):
        """h U for all gates: one matmul, or per gate (h * masks[k]) U_k with dropout."""
        if masks is None:
            return ops.matmul(h, kernel)
        return ops.concatenate([ops.matmul(h * m, u) for m, u in zip(masks, blocks, strict=True)],
                               axis=-1)

    def make_step(self, recurrent_masks=None):
        """A function (projected x<t> (B, g*n), states tuple) -> new states tuple."""
        raise NotImplementedError

    def call(self, inputs, states, training=False):
        """One time step: (x<t> (B, d), states) -> (a<t>, new states).

        Used alone (e.g. in `keras.layers.RNN`) a cell with dropout draws new
        masks at every call; the layers of this module draw them once per
        sequence.
        """
        nested = isinstance(states, (list, tuple))
        states = tuple(states) if nested else (states,)
        in_masks, rec_masks = self._dropout_masks(inputs, states[0], training)
        new = self.make_step(rec_masks)(self.project_inputs(inputs, in_masks), states)
        return new[0], (list(new) if nested else new[0])

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
                for _ in range(self.state_count)]

    def arguments(self):
        """The cell's own constructor arguments, serialized (shared with the layer's config)."""
        return {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }

    def get_config(self):
        return {**super().get_config(), **self.arguments()}


@keras.saving.register_keras_serializable(package="dlsuite")
class SimpleRNNCell(_Cell):
    """One step of the basic RNN:

        a<t> = g(Wax x<t> + Waa a<t-1> + ba)        g = `activation` (tanh)

    Weights as `keras.layers.SimpleRNNCell`: kernel = Wax^T (d, n),
    recurrent_kernel = Waa^T (n, n), bias = ba (n,). With dropout, x<t> is
    multiplied by a dropout mask and, with recurrent dropout, a<t-1> too
    (each mask scaled by 1 / (1 - rate)).

    Args:
      units: n, the size of the state a.
      activation: g (default tanh).
      use_bias: whether there is a bias ba.
      kernel_initializer, recurrent_initializer, bias_initializer: initializers
        (default Glorot uniform, orthogonal, zeros).
      kernel_regularizer, recurrent_regularizer, bias_regularizer: optional.
      kernel_constraint, recurrent_constraint, bias_constraint: optional.
      dropout: fraction of the inputs x<t> dropped (training only).
      recurrent_dropout: fraction of the recurrent inputs a<t-1> dropped.
      seed: optional int seed of the dropout masks.
      **kwargs: base layer arguments.

    Call arguments:
      inputs: x<t> (B, d). states: a<t-1> (B, n) or [a<t-1>].
      training: True to apply dropout.

    Returns:
      (a<t>, [a<t>]) (or (a<t>, a<t>) when `states` was a tensor).
    """

    def make_step(self, recurrent_masks=None):
        kernel = ops.convert_to_tensor(self.recurrent_kernel)

        def step(x, states):
            h = states[0]
            if recurrent_masks is not None:
                h = h * recurrent_masks[0]
            return (self.activation(x + ops.matmul(h, kernel)),)
        return step


@keras.saving.register_keras_serializable(package="dlsuite")
class GRUCell(_Cell):
    """One step of the notes' full GRU (Cho et al., 2014), memory cell c = a:

        Γr  = σ(Wr [c<t-1>, x<t>] + br)                       relevance (reset) gate
        c~  = tanh(Wc [Γr * c<t-1>, x<t>] + bc)                candidate
        Γu  = σ(Wu [c<t-1>, x<t>] + bu)                       update gate
        c<t> = Γu * c~ + (1 - Γu) * c<t-1>

    Weight layout and gate order are those of `keras.layers.GRUCell` (z, r, h
    blocks of n columns each): kernel (d, 3n) holds the x columns of
    [Wz | Wr | Wc]^T, recurrent_kernel (n, 3n) the c<t-1> columns, bias (3n,)
    [bz | br | bc]. Keras writes the update as

        z = σ(Wz [c<t-1>, x<t>] + bz),   c<t> = z * c<t-1> + (1 - z) * c~

    so Keras's z is the notes' 1 - Γu: Γu = 1 - z = σ(-(Wz [c, x] + bz)),
    that is, the notes' (Wu, bu) are minus Keras's z block (Wz, bz). This cell
    computes z exactly as Keras does, so weights copy across with no change.

    `reset_after=False` (the default) is the notes' GRU above, the twin of
    `keras.layers.GRU(reset_after=False)`. `reset_after=True` is the cuDNN
    variant (Keras's default): the relevance gate multiplies after the
    recurrent matmul and there are separate input and recurrent biases,
    bias (2, 3n) = [input bias; recurrent bias]:

        c~ = tanh(Wcx x<t> + bcx + Γr * (Wcc c<t-1> + bcc))

    Dropout: one mask on x<t> shared by the gates; with recurrent_dropout > 0
    a separate mask per gate on x<t> and on c<t-1> (Keras's implementation 1).

    Args:
      units: n, the size of the memory cell.
      activation: of the candidate (default tanh).
      recurrent_activation: of the gates, σ (default sigmoid).
      use_bias: whether there are biases.
      reset_after: see above (default False: the notes' GRU).
      Others as `SimpleRNNCell`.

    Call arguments / returns: as `SimpleRNNCell` (states: c<t-1>).
    """

    gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=False, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        if not isinstance(reset_after, bool):
            raise ValueError(f"GRUCell: `reset_after` must be True or False; "
                             f"got reset_after={reset_after!r}.")
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = reset_after

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        if not self.use_bias:
            return None
        bias = ops.convert_to_tensor(self.bias)
        return bias[0] if self.reset_after else bias

    def make_step(self, recurrent_masks=None):
        n = self.units
        kernel = ops.convert_to_tensor(self.recurrent_kernel)
        blocks = self._gate_blocks(kernel)
        sigma, tanh = self.recurrent_activation, self.activation
        masks = recurrent_masks or [None] * 3
        if self.reset_after:
            recurrent_bias = ops.convert_to_tensor(self.bias)[1] if self.use_bias else None

            def step(x, states):
                h = states[0]
                inner = self._recurrent_term(h, recurrent_masks, blocks, kernel)
                if recurrent_bias is not None:
                    inner = inner + recurrent_bias
                x_zr, x_c = ops.split(x, [2 * n], axis=-1)
                inner_zr, inner_c = ops.split(inner, [2 * n], axis=-1)
                z, r = ops.split(sigma(x_zr + inner_zr), 2, axis=-1)
                candidate = tanh(x_c + r * inner_c)
                return (z * h + (1 - z) * candidate,)
            return step

        gates_kernel = kernel[:, :2 * n]

        def step(x, states):
            h = states[0]
            inner = self._recurrent_term(h, recurrent_masks and recurrent_masks[:2], blocks[:2],
                                         gates_kernel)
            x_zr, x_c = ops.split(x, [2 * n], axis=-1)
            z, r = ops.split(sigma(x_zr + inner), 2, axis=-1)
            h_c = h if masks[2] is None else h * masks[2]
            candidate = tanh(x_c + ops.matmul(r * h_c, blocks[2]))
            return (z * h + (1 - z) * candidate,)
        return step

    def arguments(self):
        return {**super().arguments(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "reset_after": self.reset_after}


@keras.saving.register_keras_serializable(package="dlsuite")
class LSTMCell(_Cell):
    """One step of the notes' LSTM (Hochreiter and Schmidhuber, 1997):

        Γu  = σ(Wu [a<t-1>, x<t>] + bu)         update (input) gate
        Γf  = σ(Wf [a<t-1>, x<t>] + bf)         forget gate
        c~  = tanh(Wc [a<t-1>, x<t>] + bc)      candidate
        Γo  = σ(Wo [a<t-1>, x<t>] + bo)         output gate
        c<t> = Γu * c~ + Γf * c<t-1>
        a<t> = Γo * tanh(c<t>)

    Weight layout and gate order are those of `keras.layers.LSTMCell` (i, f,
    c, o, i.e. Γu, Γf, c~, Γo; n columns each): kernel (d, 4n) holds the x
    columns of [Wu | Wf | Wc | Wo]^T, recurrent_kernel (n, 4n) the a<t-1>
    columns, bias (4n,). With `unit_forget_bias` (default True, as Keras) bf
    starts at 1, so the cell remembers by default at the start of training.

    Dropout: one mask on x<t> shared by the gates; with recurrent_dropout > 0
    a separate mask per gate on x<t> and on a<t-1> (Keras's implementation 1).

    Args:
      units: n, the size of a and c.
      activation: the tanh of c~ and of a<t> (default tanh).
      recurrent_activation: σ of the gates (default sigmoid).
      unit_forget_bias: initialize bf to 1 (the rest by `bias_initializer`).
      Others as `SimpleRNNCell`.

    Call arguments:
      inputs: x<t> (B, d). states: [a<t-1>, c<t-1>].
      training: True to apply dropout.

    Returns:
      (a<t>, [a<t>, c<t>]).
    """

    gates = 4
    state_count = 2

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias=True, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        n, init = self.units, self.bias_initializer

        def initializer(shape, dtype=None):
            return ops.concatenate([init((n,), dtype=dtype), ops.ones((n,), dtype=dtype),
                                    init((2 * n,), dtype=dtype)])
        return initializer

    def make_step(self, recurrent_masks=None):
        kernel = ops.convert_to_tensor(self.recurrent_kernel)
        blocks = self._gate_blocks(kernel)
        sigma, tanh = self.recurrent_activation, self.activation

        def step(x, states):
            h, c = states
            z = x + self._recurrent_term(h, recurrent_masks, blocks, kernel)
            update, forget, candidate, output = ops.split(z, 4, axis=-1)
            c = sigma(forget) * c + sigma(update) * tanh(candidate)
            return sigma(output) * tanh(c), c
        return step

    def arguments(self):
        return {**super().arguments(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


class _Recurrent(keras.layers.Layer):
    """Runs a cell over a sequence; see the module docstring for the loop and masking."""

    cell_class = None
    cell_name = None

    def __init__(self, units, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        name = type(self).__name__
        if stateful:
            raise ValueError(f"{name}: `stateful=True` is not supported; pass the last states "
                             "back in with `initial_state` instead.")
        # The cell's arguments (as for the Keras twins, the layer takes them by name).
        names = {*inspect.signature(self.cell_class.__init__).parameters,
                 *inspect.signature(_Cell.__init__).parameters} - {"self", "units", "kwargs"}
        cell_args = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        super().__init__(**kwargs)
        self.cell = self.cell_class(units, dtype=kwargs.get("dtype"),
                                    trainable=kwargs.get("trainable", True),
                                    name=self.cell_name, **cell_args)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = False
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states = None
        self.supports_masking = True
        self.input_spec = keras.InputSpec(ndim=3)

    @property
    def state_size(self):
        return [self.cell.units] * self.cell.state_count

    def build(self, sequences_shape, initial_state_shape=None):
        if self.unroll and sequences_shape[1] is None:
            raise ValueError(f"{type(self).__name__}: `unroll=True` needs a static number of "
                             "time steps (give keras.Input a `shape` with the time dimension).")
        if not self.cell.built:
            self.cell.build((sequences_shape[0],) + tuple(sequences_shape[2:]))

    def get_initial_state(self, batch_size):
        return self.cell.get_initial_state(batch_size)

    def call(self, sequences, initial_state=None, mask=None, training=None):
        cell = self.cell
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        batch = ops.shape(sequences)[0]
        if initial_state is None:
            states = cell.get_initial_state(batch)
        else:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [
                initial_state]
            if len(states) != cell.state_count:
                raise ValueError(f"{type(self).__name__}: expected {cell.state_count} initial "
                                 f"state tensor(s), got {len(states)}.")
            states = [ops.cast(s, self.compute_dtype) for s in states]

        # Time-major, in the reverse of the processing order (the loop pops
        # steps from the back): flipped unless going backwards. The input
        # (B, T, d) is flipped rather than its projection (T, B, g*n).
        x = ops.transpose(sequences, (1, 0, 2))                    # (T, B, d)
        pop_mask = None
        if mask is not None:
            pop_mask = ops.expand_dims(ops.transpose(ops.cast(mask, "bool")), -1)  # (T, B, 1)
        if not self.go_backwards:
            x = ops.flip(x, axis=0)
            pop_mask = None if pop_mask is None else ops.flip(pop_mask, axis=0)

        in_masks, rec_masks = cell._dropout_masks(x[0], states[0], training)
        projected = cell.project_inputs(x, in_masks)               # (T, B, g*n), one matmul
        hs, states = _run_over_time(cell.make_step(rec_masks), projected, states, pop_mask,
                                    self.return_sequences, self.unroll)

        # Outputs at masked steps: the previous output (zeros before the first
        # unmasked step), or zeros with zero_output_for_mask.
        if pop_mask is not None:
            steps_mask = ops.flip(pop_mask, axis=0)                 # processing order
            keep = steps_mask if self.zero_output_for_mask else ops.greater(
                ops.cumsum(ops.cast(steps_mask, "int32"), axis=0), 0)
        if self.return_sequences:
            if pop_mask is not None:
                hs = ops.where(keep, hs, ops.zeros_like(hs))
            output = ops.transpose(hs, (1, 0, 2))
        else:
            output = states[0]
            if pop_mask is not None:
                output = ops.where(keep[-1], output, ops.zeros_like(output))
        if self.return_state:
            return (output, *states)
        return output

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, units = sequences_shape[0], self.cell.units
        output = ((batch, sequences_shape[1], units) if self.return_sequences
                  else (batch, units))
        if self.return_state:
            return (output,) + tuple((batch, units) for _ in range(self.cell.state_count))
        return output

    def compute_mask(self, sequences, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * self.cell.state_count
        return output_mask

    def get_config(self):
        return {**super().get_config(), **self.cell.arguments(),
                "return_sequences": self.return_sequences,
                "return_state": self.return_state,
                "go_backwards": self.go_backwards,
                "stateful": self.stateful,
                "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask}


def _from_cell(name):
    return property(lambda self: getattr(self.cell, name),
                    doc=f"The cell's `{name}`.")


_SHARED = ("units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
           "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
           "bias_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint",
           "dropout", "recurrent_dropout", "seed")

_LAYER_DOC = """
    Layer arguments (beyond the cell's, which it takes by name):
      return_sequences: return a<t> for every step (B, T, n) instead of the
        last one (B, n).
      return_state: also return the final states ({states}).
      go_backwards: process the sequence in reverse; the returned sequence is
        in that reversed order (as Keras; `keras.layers.Bidirectional` flips it).
      stateful: only False (True raises).
      unroll: a Python loop over a static number of steps instead of a
        `tf.while_loop` (`keras.ops.scan` on JAX).
      zero_output_for_mask: masked steps output zeros instead of repeating the
        previous output (Bidirectional sets it when returning sequences).
      **kwargs: base layer arguments.

    Call arguments:
      sequences: (B, T, d).
      initial_state: optional {states}, each (B, n) (default zeros).
      mask: optional bool (B, T), True where a step is real (Keras passes the
        mask of `Masking` / `Embedding(mask_zero=True)` automatically).
      training: True to apply dropout.

    Returns:
      The output (B, n) or (B, T, n), followed by the final states with
      `return_state`.
"""


@keras.saving.register_keras_serializable(package="dlsuite")
class SimpleRNN(_Recurrent):
    """The basic RNN over a sequence: a<t> = g(Wax x<t> + Waa a<t-1> + ba).

    The twin of `keras.layers.SimpleRNN` (same arguments and weights); the
    cell (`self.cell`, a `SimpleRNNCell`) documents the step and the weights.
    """

    cell_class = SimpleRNNCell
    cell_name = "simple_rnn_cell"


@keras.saving.register_keras_serializable(package="dlsuite")
class GRU(_Recurrent):
    """The notes' full GRU over a sequence (see `GRUCell` for the equations).

        Γr = σ(Wr [c<t-1>, x<t>] + br),   Γu = σ(Wu [c<t-1>, x<t>] + bu)
        c~ = tanh(Wc [Γr * c<t-1>, x<t>] + bc)
        c<t> = Γu * c~ + (1 - Γu) * c<t-1>

    The twin of `keras.layers.GRU(reset_after=False)`; with `reset_after=True`
    the twin of Keras's default `keras.layers.GRU()` (cuDNN variant). Weights
    copy across; Keras's update gate z is the notes' 1 - Γu (see `GRUCell`).
    Note the default differs from Keras's: reset_after=False, the notes' GRU.
    """

    cell_class = GRUCell
    cell_name = "gru_cell"


@keras.saving.register_keras_serializable(package="dlsuite")
class LSTM(_Recurrent):
    """The notes' LSTM over a sequence (see `LSTMCell` for the equations).

        Γu, Γf, Γo = σ(W. [a<t-1>, x<t>] + b.),   c~ = tanh(Wc [a<t-1>, x<t>] + bc)
        c<t> = Γu * c~ + Γf * c<t-1>,             a<t> = Γo * tanh(c<t>)

    The twin of `keras.layers.LSTM` (gate order i, f, c, o = Γu, Γf, c~, Γo;
    `unit_forget_bias`); weights copy across. Returns a (the states are
    [a, c]).
    """

    cell_class = LSTMCell
    cell_name = "lstm_cell"


# The layers' shared docstring part and the cell's attributes, read through the layer.
for _cls, _states, _names in (
        (SimpleRNN, "[a]", ()),
        (GRU, "[c]", ("recurrent_activation", "reset_after")),
        (LSTM, "[a, c]", ("recurrent_activation", "unit_forget_bias"))):
    _cls.__doc__ += _LAYER_DOC.format(states=_states)
    for _name in _SHARED + _names:
        setattr(_cls, _name, _from_cell(_name))
del _cls, _states, _names, _name
