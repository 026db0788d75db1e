"""word2vec's negative-sampling loss and its gradient, fused (XLA) on a chunk's banded layout.

`loss(e, theta, method, tokens, mask, negatives, negative_weight)` is the
per-example sum over every pair of a batch of chunks (`data.Word2VecExamples`):

    skip-gram, h = e_c:           w+ (-log sigma(theta_t . h)) for each target t
                                  in c's window, + sum_n w_n (-log sigma(-theta_n . h))
    CBOW, h = mean of e over      -log sigma(theta_c . h)
    the window of centre c:       + sum_n w_n (-log sigma(-theta_n . h))

with w_n = `negative_weight` (how many pairs negative n stands for, 0 where it
equals the target). Its gradient is the textbook one; what is fused is how
it is computed, so that the 2-core CPU spends its time on arithmetic rather
than on copies and on TensorFlow's per-op overhead:

* The windows are bands. A chunk's kept words lie in a row (`tokens`, C + 2W
  of them, the C centre slots in the middle); the window of slot i is
  tokens[i .. i + 2W]. Skip-gram: cut into blocks of G consecutive slots,
  the logits of a block's pairs are the band of one small matrix product,
  the block's centre vectors (G, D) by the vectors of the G + 2W words
  around them (D, G + 2W); the band is taken out (and put back, for the
  gradient) with a pad and a reshape (`Layout.band`). Every row is read
  once per block instead of once per pair, and the products run as matrix
  products (XLA's dot on CPU), not as row-by-row reductions, which XLA's
  CPU code is slow at. CBOW: the window's mean is 2W shifted slices of the
  row's vectors, weighted and added in one pass (`Layout.window_sum`), and
  so is its gradient.
* The negatives: drawn per block (`per_block`, the default config: the G
  centre slots of a block share its N draws, each weighted k / N by the
  data pipeline), their logits are one more small matrix product per block,
  (G, D) by (D, N); drawn per centre slot (k each, or 2W k for skip-gram
  with a draw per pair), one batched matrix-vector product per slot.
* The batch is cut into `SHARDS` parts, each its own forward and backward
  computation, which TensorFlow runs side by side (on a CPU's cores); their
  gradients add up.
* The forward pass (logits, loss, dloss/dlogits) and the backward pass
  (the products above transposed, then a scatter-add of every row's
  gradient) each run as one XLA computation, `_FORWARD` and `_BACKWARD`.
* The tables' gradients are tf.IndexedSlices over the distinct words of the
  batch (tf.unique of its ids), already summed per word, so the optimizer
  (`sparse.SparseAdaGrad`) updates each touched row once. The scatter-add
  goes into a buffer of the next power of two at or above the number of
  distinct words (at most the vocabulary), so XLA compiles a handful of
  shapes per run, not one per batch. A vocabulary small enough that a batch
  touches most of it (the Lee corpus's 2,859 words) gets dense (V, D)
  gradients instead: no tf.unique, and the optimizer's update is one pass
  over the table (a row whose gradient is zero does not move).

Every slot (occupied or not, and every pair slot of the window) is computed,
with weight 0 where there is no pair, so the shapes are fixed; the result is
the same sum as over the pairs alone, added in another order.
"""

import tensorflow as tf

from apps.embeddings.sparse import padded_size

#: centre slots per block of the banded product (G)
BLOCK = 32
#: parts of the batch computed side by side (`loss`)
SHARDS = 2
#: dense gradients for a vocabulary of at most (ids in the batch) / this many words
#: (measured on CBOW on Lee at 2 chunks a step, about 9,000 ids: dense 10-15%
#: faster a step than tf.unique and IndexedSlices at 2,859 words and at 4,145;
#: a dense step's cost does not grow with the ids, a sparse one's does, so the
#: shipped configs' larger steps are further on the dense side)
DENSE_IDS_PER_WORD = 2


def loss(e, theta, method, tokens, mask, negatives, negative_weight, block=BLOCK,
         shards=SHARDS, per_block=False, dense=None):
    """Per-example loss (B,) of skip-gram or CBOW; gradients for `e` and `theta`
    (tensors, read from the tables) as tf.IndexedSlices.

    Args:
      e, theta: the input and output embeddings (V, D).
      method: "skipgram" or "cbow".
      tokens: int (B, C + 2W), the kept words, -1 where none.
      mask: bool (B, C, 2W), the pairs (centre slot i, window offset j).
      negatives: int (B, C, K), the negatives of each centre slot, or with
        `per_block` (B, blocks, K), the negatives of each block of G slots.
      negative_weight: float (B, C, K), w_n above: slot c's weight of its
        negative (or its block's) n.
      block: G, centre slots per block.
      shards: the batch is cut into this many parts (if it divides B), each its
        own forward and backward computation, which TensorFlow runs side by side
        (the cores of a CPU); their gradients add up.
      per_block: whether `negatives` are per block (see above).
      dense: dense gradients (True) or tf.IndexedSlices (False); None: dense for
        a vocabulary of at most (ids in the batch) / DENSE_IDS_PER_WORD words.
    """
    if method not in ("skipgram", "cbow"):
        raise ValueError(f"method must be skipgram or cbow, not {method!r}")
    tokens = tf.convert_to_tensor(tokens, tf.int32)
    negatives = tf.convert_to_tensor(negatives, tf.int32)
    mask = tf.convert_to_tensor(mask, tf.bool)
    negative_weight = tf.cast(negative_weight, e.dtype)
    batch, length = tokens.shape
    w = mask.shape[-1] // 2
    layout = Layout(batch, length - 2 * w, w, negatives.shape[-1], block)
    padded = layout.pad_tokens(tokens)
    # The rows of the gradients. A small vocabulary (at most half as many
    # words as the batch has ids; most of them in every batch) gets dense (V, D)
    # gradients, scattered to by word id. A larger one gets tf.IndexedSlices
    # over the batch's distinct words (tf.unique, computed before the forward
    # pass needs it so that TensorFlow runs it beside it), scattered to by
    # their position there.
    vocab = e.shape[0]
    ids = (layout.cp + 2 * w + negatives.shape[1] * negatives.shape[2]) * (batch or 1)
    if dense is None:
        dense = vocab is not None and vocab * DENSE_IDS_PER_WORD <= ids
    if dense:
        local_tokens, local_negatives = padded, negatives
    else:
        n = tf.size(padded)
        words, position = tf.unique(tf.concat([tf.reshape(padded, [-1]),
                                               tf.reshape(negatives, [-1])], 0))
        local_tokens = tf.reshape(position[:n], tf.shape(padded))
        local_negatives = tf.reshape(position[n:], tf.shape(negatives))
    # (A replica's batch under tf.distribute may be known only when it runs.)
    shards = shards if batch is not None and batch % shards == 0 else 1
    inputs = [tf.split(x, shards) for x in (padded, mask, negatives, negative_weight,
                                             local_tokens, local_negatives)]

    @tf.custom_gradient
    def fused(e, theta):
        forward = [_FORWARD(e, theta, *(x[i] for x in inputs[:4]), method, block, per_block)
                   for i in range(shards)]

        def grad(upstream):
            if dense:
                rows = tf.shape(e)[0]
            else:
                size = tf.size(words)
                # The next power of two >= size, at most the vocabulary.
                rows = padded_size(size, tf.shape(e)[0])
            # The buffer's shape, (rows, 0), is all _BACKWARD needs (the zeros are XLA's).
            buffer = tf.zeros(tf.stack([rows, 0]), e.dtype)
            parts = [_BACKWARD(up, dlogits, saved, inputs[4][i], inputs[5][i], buffer, method,
                               block, layout.c, per_block)
                     for i, (up, (_, dlogits, saved)) in enumerate(
                         zip(tf.split(upstream, shards), forward, strict=True))]
            d_e, d_theta = (tf.add_n(list(d)) if shards > 1 else d[0]
                            for d in zip(*parts, strict=True))
            if dense:
                return d_e, d_theta
            shape = tf.shape(e, out_type=words.dtype)
            return (tf.IndexedSlices(d_e[:size], words, shape),
                    tf.IndexedSlices(d_theta[:size], words, shape))

        return tf.concat([f[0] for f in forward], 0), grad

    return fused(e, theta)


class Layout:
    """B chunks of C centre slots (padded to Cp, whole blocks of G), window W, K negatives."""

    def __init__(self, batch, c, w, k, block):
        # batch: -1 where unknown (the reshapes below leave only it open).
        self.batch = -1 if batch is None else batch
        self.c, self.w, self.k = c, w, k
        self.g = max(1, min(block, c))
        self.blocks = -(-c // self.g)
        self.cp = self.blocks * self.g

    def pad_tokens(self, tokens):
        """(B, C + 2W) -> (B, Cp + 2W) ids, 0 for -1 and for the padding (weight 0 there)."""
        return tf.pad(tf.maximum(tokens, 0), [[0, 0], [0, self.cp - self.c]])

    def pad_slots(self, x):
        """(B, C, ...) -> (B, Cp, ...) with zeros."""
        return tf.pad(x, [[0, 0], [0, self.cp - self.c]] + [[0, 0]] * (x.shape.rank - 2))

    def around(self, x):
        """(B, Cp + 2W, ...) -> (B, blocks, G + 2W, ...): block j's slots and the W
        words either side (blocks overlap by 2W)."""
        index = (tf.range(self.blocks)[:, None] * self.g
                 + tf.range(self.g + 2 * self.w)[None, :])
        return tf.gather(x, index, axis=1)

    def band(self, s):
        """(B, blocks, G, G + 2W) block products -> (B, Cp, 2W): row g's entries at
        columns g + W + o, o in -W..-1, 1..W (g + W is the centre itself)."""
        g, w = self.g, self.w
        flat = tf.reshape(s, [self.batch, self.blocks, g * (g + 2 * w)])
        flat = tf.pad(flat, [[0, 0], [0, 0], [0, g]])
        rows = tf.reshape(flat, [self.batch, self.blocks, g, g + 2 * w + 1])
        out = tf.concat([rows[..., :w], rows[..., w + 1:2 * w + 1]], -1)
        return tf.reshape(out, [self.batch, self.cp, 2 * w])

    def window_sum(self, weights, rows):
        """sum_o weights[:, i, o] rows[:, i + W + o]: (B, Cp, 2W), (B, Cp + 2W, ...) ->
        (B, Cp, ...), as 2W shifted slices (XLA adds them in one pass)."""
        w, cp = self.w, self.cp
        return tf.add_n([weights[:, :, j, None] * rows[:, w + o:w + o + cp]
                         for j, o in enumerate(self.offsets)])

    def window_sum_transposed(self, weights, x):
        """The transpose of `window_sum` in `rows`: out[:, p] = sum_o weights[:, i, o] x[:, i]
        over i = p - W - o; (B, Cp, 2W), (B, Cp, ...) -> (B, Cp + 2W, ...), again as
        slices (of x and weights padded by 2W either side)."""
        w, length = self.w, self.cp + 2 * self.w
        x = tf.pad(x, [[0, 0], [2 * w, 2 * w], [0, 0]])
        weights = tf.pad(weights, [[0, 0], [2 * w, 2 * w], [0, 0]])
        return tf.add_n([weights[:, w - o:w - o + length, j, None] * x[:, w - o:w - o + length]
                         for j, o in enumerate(self.offsets)])

    @property
    def offsets(self):
        return [*range(-self.w, 0), *range(1, self.w + 1)]

    def unband(self, x):
        """The transpose of `band`: (B, Cp, 2W) -> (B, blocks, G, G + 2W), zeros off the band."""
        g, w = self.g, self.w
        x = tf.reshape(x, [self.batch, self.blocks, g, 2 * w])
        zero = tf.zeros_like(x[..., :1])
        rows = tf.pad(tf.concat([x[..., :w], zero, x[..., w:]], -1),
                      [[0, 0], [0, 0], [0, 0], [0, g]])
        flat = tf.reshape(rows, [self.batch, self.blocks, g * (g + 2 * w + 1)])
        return tf.reshape(flat[..., :g * (g + 2 * w)], [self.batch, self.blocks, g, g + 2 * w])


def _softplus_terms(x, positive, negative):
    """sum of w+ softplus(-x) + w- softplus(x) per example, and its derivative in x."""
    rows = (positive + negative) * tf.nn.softplus(x) - positive * x
    return (tf.reduce_sum(tf.reshape(rows, [tf.shape(rows)[0], -1]), -1),
            negative * tf.sigmoid(x) - positive * tf.sigmoid(-x))


def _forward(e, theta, padded, mask, negatives, negative_weight, method, block, per_block):
    _, c, two_w = mask.shape
    w = two_w // 2
    layout = Layout(mask.shape[0], c, w, negatives.shape[-1], block)
    batch, cp, d, blocks, g = layout.batch, layout.cp, e.shape[-1], layout.blocks, layout.g
    inside = tf.cast(layout.pad_slots(mask), e.dtype)  # (B, Cp, 2W)
    negative_weight = layout.pad_slots(negative_weight)  # (B, Cp, K)
    if not per_block:
        negatives = layout.pad_slots(negatives)  # (B, Cp, K)
    rows = tf.gather(theta, negatives)  # (B, Cp, K, D) or (B, blocks, K, D)

    def against_negatives(h):  # h (B, blocks, G, D) -> logits (B, Cp, K)
        if per_block:
            return tf.reshape(tf.einsum("bjgd,bjkd->bjgk", h, rows), [batch, cp, layout.k])
        return tf.einsum("bckd,bcd->bck", rows, tf.reshape(h, [batch, cp, d]))

    if method == "skipgram":
        h = tf.reshape(tf.gather(e, padded[:, w:w + cp]), [batch, blocks, g, d])
        window = tf.gather(theta, layout.around(padded))  # (B, blocks, G + 2W, D)
        in_window = layout.band(tf.einsum("bjgd,bjhd->bjgh", h, window))
        loss_w, d_window = _softplus_terms(in_window, inside, tf.zeros_like(inside))
        loss_n, d_negative = _softplus_terms(against_negatives(h),
                                             tf.zeros_like(negative_weight), negative_weight)
        return loss_w + loss_n, (d_window, d_negative), (h, window, rows)
    count = tf.add_n([inside[..., j] for j in range(two_w)])[..., None]  # (B, Cp, 1)
    weights = inside / tf.maximum(count, 1.0)  # (B, Cp, 2W)
    window = tf.gather(e, padded)  # (B, Cp + 2W, D)
    h = layout.window_sum(weights, window)  # (B, Cp, D)
    centre = tf.gather(theta, padded[:, w:w + cp])  # (B, Cp, D)
    logits = tf.reduce_sum(centre * h, -1, keepdims=True)
    has = tf.cast(count > 0, e.dtype)
    loss_c, d_centre = _softplus_terms(logits, has, tf.zeros_like(has))
    loss_n, d_negative = _softplus_terms(against_negatives(tf.reshape(h, [batch, blocks, g, d])),
                                         tf.zeros_like(negative_weight), negative_weight)
    return loss_c + loss_n, (d_centre, d_negative), (h, window, rows, weights, centre)


def _backward(upstream, dlogits, saved, local_tokens, local_negatives, buffer, method, block,
              c, per_block):
    w = (local_tokens.shape[1] - dlogits[0].shape[1]) // 2
    layout = Layout(local_tokens.shape[0], c, w, local_negatives.shape[-1], block)
    batch, cp, g, blocks = layout.batch, layout.cp, layout.g, layout.blocks
    h, window, rows = saved[:3]
    d = h.shape[-1]
    h = tf.reshape(h, [batch, blocks, g, d])
    buffer = tf.zeros(tf.stack([tf.shape(buffer)[0], d]), buffer.dtype)
    scale = upstream[:, None, None]
    d_negative = dlogits[1] * scale  # (B, Cp, K)
    if per_block:
        d_negative = tf.reshape(d_negative, [batch, blocks, g, layout.k])
        d_h = tf.einsum("bjgk,bjkd->bjgd", d_negative, rows)
        d_rows = tf.einsum("bjgk,bjgd->bjkd", d_negative, h)  # (B, blocks, K, D)
    else:
        local_negatives = layout.pad_slots(local_negatives)
        flat_h = tf.reshape(h, [batch, cp, d])
        d_h = tf.reshape(tf.einsum("bck,bckd->bcd", d_negative, rows), [batch, blocks, g, d])
        d_rows = d_negative[..., None] * flat_h[:, :, None, :]  # (B, Cp, K, D)
    d_theta = tf.tensor_scatter_nd_add(buffer, tf.reshape(local_negatives, [-1, 1]),
                                       tf.reshape(d_rows, [-1, d]))
    centres = tf.reshape(local_tokens[:, w:w + cp], [-1, 1])
    if method == "skipgram":
        around = tf.reshape(layout.around(local_tokens), [-1, 1])
        d_band = layout.unband(dlogits[0] * scale)  # (B, blocks, G, G + 2W)
        d_h += tf.einsum("bjgh,bjhd->bjgd", d_band, window)
        d_window = tf.einsum("bjgh,bjgd->bjhd", d_band, h)
        d_theta = tf.tensor_scatter_nd_add(d_theta, around, tf.reshape(d_window, [-1, d]))
        d_e = tf.tensor_scatter_nd_add(buffer, centres, tf.reshape(d_h, [-1, d]))
        return d_e, d_theta
    weights, centre = saved[3:]
    d_logits = dlogits[0] * scale  # (B, Cp, 1)
    d_h = tf.reshape(d_h, [batch, cp, d]) + d_logits * centre
    d_centre = d_logits * tf.reshape(h, [batch, cp, d])
    d_theta = tf.tensor_scatter_nd_add(d_theta, centres, tf.reshape(d_centre, [-1, d]))
    d_window = layout.window_sum_transposed(weights, d_h)  # (B, Cp + 2W, D)
    d_e = tf.tensor_scatter_nd_add(buffer, tf.reshape(local_tokens, [-1, 1]),
                                   tf.reshape(d_window, [-1, d]))
    return d_e, d_theta


_FORWARD = tf.function(_forward, jit_compile=True, autograph=False)
_BACKWARD = tf.function(_backward, jit_compile=True, autograph=False)
