"""AdaGrad with a sparse update for embedding tables.

The gradient of an embedding lookup (tf.gather) is a tf.IndexedSlices: the
rows of the words in the batch. `optimizers.AdaGrad` densifies it and updates
the whole (V, D) table and accumulator every step; a row whose gradient is
zero does not move under the dense formula (a += 0, w -= lr * 0 / sqrt(a)),
so updating only the rows in the batch gives exactly the same result at a
cost that does not grow with the vocabulary:

    g_r = the sum of the slices of row r (duplicate rows summed first)
    a_r = a_r + g_r^2
    w_r = w_r - learning_rate * g_r / sqrt(a_r + epsilon)
"""

import keras
import tensorflow as tf

import optimizers


@keras.saving.register_keras_serializable(package="dlsuite_embeddings")
class SparseAdaGrad(optimizers.AdaGrad):
    """`optimizers.AdaGrad` (same arguments and state) with the sparse path above."""

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        rows, position = tf.unique(gradient.indices)
        g = tf.math.unsorted_segment_sum(tf.cast(gradient.values, variable.dtype), position,
                                         tf.size(rows))
        lr = tf.cast(learning_rate, variable.dtype)
        a = self._accumulators[self._get_variable_index(variable)]
        self.assign_add(a, tf.IndexedSlices(g * g, rows))
        step = lr * g / tf.sqrt(tf.gather(a, rows) + self.epsilon)
        self.assign_sub(variable, tf.IndexedSlices(step, rows))
        return None
