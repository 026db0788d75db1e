"""AdaGrad with a sparse update for embedding tables.

The gradient of an embedding lookup is a tf.IndexedSlices: the rows of the
words in the batch. `optimizers.AdaGrad` densifies it and updates the whole
(V, D) table and accumulator every step; a row whose gradient is zero does
not move under the dense formula (a += 0, w -= lr * 0 / sqrt(a + epsilon)),
so updating only the rows in the batch gives exactly the same result at a
cost that does not grow with the vocabulary:

    g_r = the sum of the slices of row r (duplicate rows summed first)
    a_r = a_r + g_r^2
    w_r = w_r - learning_rate * g_r / sqrt(a_r + epsilon)

word2vec's gradients (apps.embeddings.fused) already hold each row once,
summed; then the summing is skipped (tf.unique finds no duplicate). Outside
tf.distribute the row update runs as one XLA computation on the table and
its accumulator (`_update_rows`), the rows padded to a power of two
(`padded_size`) so that XLA compiles a handful of shapes per run; under a
strategy (whose variables XLA cannot take) it runs as TensorFlow's scatter ops.
A dense gradient (word2vec's for a small vocabulary) gets the dense formula,
as one XLA computation too (`_update_all`) outside tf.distribute.
"""

import math

import keras
import tensorflow as tf

import optimizers


def padded_size(n, limit=None):
    """The next power of two >= n (an int32 tensor), at most max(n, limit)."""
    n = tf.maximum(tf.cast(n, tf.int32), 1)
    power = tf.bitwise.left_shift(1, tf.cast(tf.math.ceil(
        tf.math.log(tf.cast(n, tf.float32)) / math.log(2.0) - 1e-4), tf.int32))
    power = tf.where(power < n, 2 * power, power)
    return power if limit is None else tf.maximum(tf.minimum(power, limit), n)


@keras.saving.register_keras_serializable(package="dlsuite_embeddings")
class SparseAdaGrad(optimizers.AdaGrad):
    """`optimizers.AdaGrad` (same arguments and state) with the sparse path above."""

    def update_step(self, gradient, variable, learning_rate):
        a = self._accumulators[self._get_variable_index(variable)]
        table, accumulator = (v.value if isinstance(v, keras.Variable) else v
                              for v in (variable, a))
        xla = not tf.distribute.has_strategy() and not any(
            isinstance(v, tf.distribute.DistributedValues) for v in (table, accumulator))
        if not isinstance(gradient, tf.IndexedSlices):
            if not xla:
                return super().update_step(gradient, variable, learning_rate)
            _update_all(table, accumulator, tf.cast(gradient, variable.dtype),
                        tf.cast(learning_rate, variable.dtype), self.epsilon)
            return None
        values = tf.cast(gradient.values, variable.dtype)
        rows, position = tf.unique(gradient.indices)
        size = tf.size(rows)
        g = tf.cond(size < tf.size(position),
                    lambda: tf.math.unsorted_segment_sum(values, position, size),
                    lambda: values)  # distinct rows: position is 0, 1, 2, ...
        lr = tf.cast(learning_rate, variable.dtype)
        if xla:
            padding = padded_size(size) - size
            # Row V (out of range) pads: XLA's scatter drops it.
            rows = tf.pad(rows, [[0, padding]], constant_values=table.shape[0])
            g = tf.pad(g, [[0, padding]] + [[0, 0]] * (values.shape.rank - 1))
            _update_rows(table, accumulator, rows, g, lr, self.epsilon)
            return None
        self.assign_add(a, tf.IndexedSlices(g * g, rows))
        # divide_no_nan: 0 for a row whose gradient and accumulator are both 0
        # (initial_accumulator_value = epsilon = 0), which the dense formula leaves
        # as 0 / 0; any other row gets exactly lr g / sqrt(a + epsilon).
        step = tf.math.divide_no_nan(lr * g, tf.sqrt(tf.gather(a, rows) + self.epsilon))
        self.assign_sub(variable, tf.IndexedSlices(step, rows))
        return None


@tf.function(jit_compile=True, autograph=False)
def _update_rows(table, accumulator, rows, g, learning_rate, epsilon):
    """The formula above on `rows` (distinct; out-of-range ones are skipped)."""
    a = tf.gather(accumulator, rows) + g * g
    accumulator.scatter_update(tf.IndexedSlices(a, rows))
    step = tf.math.divide_no_nan(learning_rate * g, tf.sqrt(a + epsilon))
    table.scatter_sub(tf.IndexedSlices(step, rows))


@tf.function(jit_compile=True, autograph=False)
def _update_all(table, accumulator, g, learning_rate, epsilon):
    """The formula above on every row (a dense gradient)."""
    a = accumulator + g * g
    accumulator.assign(a)
    table.assign_sub(learning_rate * g / tf.sqrt(a + epsilon))
