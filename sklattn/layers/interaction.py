"""Pairwise feature interactions: AFM's attentional pooling and NFM's bi-interaction."""

from __future__ import annotations

import numpy as np

from .._backend import keras

ops = keras.ops


def pair_indices(n_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """``(i, j)`` of every pair ``i < j`` of ``n_fields`` fields, in row-major order.

    Pair ``p`` of :class:`PairwiseProducts`'s output is ``(i[p], j[p])``.
    """
    rows, cols = np.triu_indices(int(n_fields), k=1)
    return rows.astype("int32"), cols.astype("int32")


@keras.saving.register_keras_serializable(package="sklattn")
class PairwiseProducts(keras.layers.Layer):
    """Element-wise products ``v_i * v_j`` of every pair of fields ``i < j``.

    Input ``(batch, fields, dim)``; output ``(batch, fields * (fields - 1) / 2, dim)``
    in the order of :func:`pair_indices`. Two gathers and one multiply: no loop over
    pairs, at build time or at run time.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import PairwiseProducts
    >>> v = np.arange(6, dtype="float32").reshape(1, 3, 2)
    >>> np.asarray(PairwiseProducts()(v)).tolist()
    [[[0.0, 3.0], [0.0, 5.0], [8.0, 15.0]]]
    """

    def build(self, input_shape) -> None:
        n_fields = input_shape[1]
        if n_fields is None or n_fields < 2:
            raise ValueError(f"PairwiseProducts needs at least 2 fields, got {n_fields}.")
        self._rows, self._cols = pair_indices(n_fields)

    def call(self, fields):
        return ops.take(fields, self._rows, axis=1) * ops.take(fields, self._cols, axis=1)

    def compute_output_shape(self, input_shape):
        f = input_shape[1]
        return (input_shape[0], f * (f - 1) // 2, input_shape[2])


@keras.saving.register_keras_serializable(package="sklattn")
class AttentionalPooling(keras.layers.Layer):
    """AFM's attention-based pooling of pairwise interactions (Xiao et al., 2017, eq. 4-5).

    For each pair product ``e_ij = v_i * v_j``:
    ``a'_ij = h^T ReLU(W e_ij + b)``, ``a_ij = softmax over pairs of a'_ij``, and the
    output is ``sum_ij a_ij e_ij``. ``call`` returns ``(pooled, weights)`` with shapes
    ``(batch, dim)`` and ``(batch, pairs)``; the weights of a row sum to 1.

    Parameters
    ----------
    attention_factor : int, default=8
        Hidden size ``t`` of the attention net.
    l2 : float, default=0.0
        L2 penalty on ``W`` (the paper regularises the attention net's weight matrix).

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import AttentionalPooling
    >>> pooled, w = AttentionalPooling(4)(np.ones((2, 3, 5), "float32"))
    >>> tuple(pooled.shape), tuple(w.shape)
    ((2, 5), (2, 3))
    """

    def __init__(self, attention_factor: int = 8, l2: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.attention_factor = int(attention_factor)
        self.l2 = float(l2)

    def build(self, input_shape) -> None:
        dim = input_shape[-1]
        self.W = self.add_weight(
            shape=(dim, self.attention_factor),
            initializer="glorot_uniform",
            regularizer=keras.regularizers.L2(self.l2) if self.l2 else None,
            name="W",
        )
        self.b = self.add_weight(shape=(self.attention_factor,), initializer="zeros", name="b")
        self.h = self.add_weight(
            shape=(self.attention_factor,), initializer="glorot_uniform", name="h"
        )

    def call(self, products):
        hidden = ops.relu(ops.matmul(products, self.W) + self.b)
        scores = ops.matmul(hidden, self.h)  # (batch, pairs)
        # Softmax over pairs, written out: with 2 fields there is one pair (weight 1).
        scores = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
        weights = scores / ops.sum(scores, axis=-1, keepdims=True)
        pooled = ops.sum(products * ops.expand_dims(weights, -1), axis=1)
        return pooled, weights

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2]), (input_shape[0], input_shape[1])

    def get_config(self) -> dict:
        return {**super().get_config(), "attention_factor": self.attention_factor, "l2": self.l2}


@keras.saving.register_keras_serializable(package="sklattn")
class BiInteractionPooling(keras.layers.Layer):
    """NFM's bi-interaction pooling: ``sum_{i<j} v_i * v_j`` in ``O(fields * dim)``.

    Computed as ``0.5 * ((sum_i v_i)^2 - sum_i v_i^2)`` (He & Chua, 2017, eq. 4).
    Input ``(batch, fields, dim)``, output ``(batch, dim)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import BiInteractionPooling
    >>> v = np.arange(6, dtype="float32").reshape(1, 3, 2)
    >>> np.asarray(BiInteractionPooling()(v)).tolist()
    [[8.0, 23.0]]
    """

    def call(self, fields):
        total = ops.sum(fields, axis=1)
        return 0.5 * (ops.square(total) - ops.sum(ops.square(fields), axis=1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])
