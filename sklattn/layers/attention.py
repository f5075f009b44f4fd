"""Attention units over behaviour sequences."""

from __future__ import annotations

from collections.abc import Sequence

from .._backend import keras
from .activations import Dice, get_activation
from .core import MLP, masked_softmax

ops = keras.ops


@keras.saving.register_keras_serializable(package="sklattn")
class ActivationUnit(keras.layers.Layer):
    """DIN's local activation unit (Zhou et al., 2018, Fig. 2).

    Each behaviour ``h_t`` is scored against the candidate ``q`` by an MLP on
    ``[h_t, q, h_t - q, h_t * q]``; the user interest is
    ``sum_t w_t h_t``. Padded positions get weight 0 and never change the
    output. By default the weights are the raw scores, not normalised, so the
    pooled vector keeps the intensity of the interest (as in the paper);
    ``normalize=True`` applies a softmax over the valid positions.

    ``call(query, keys, valid)``: query ``(batch, dim)``, keys
    ``(batch, steps, dim)``, valid ``(batch, steps)`` (True = real event).
    Returns ``(pooled, weights)`` of shapes ``(batch, dim)`` and
    ``(batch, steps)``.

    Parameters
    ----------
    attention_units : sequence of int, default=(80, 40)
        Hidden layers of the scoring MLP.
    activation : str, default="dice"
        Activation of the scoring MLP.
    normalize : bool, default=False
        Softmax-normalise the weights over valid positions.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import ActivationUnit
    >>> q = np.ones((2, 4), "float32"); k = np.ones((2, 3, 4), "float32")
    >>> pooled, w = ActivationUnit((8,))(q, k, np.ones((2, 3), bool))
    >>> tuple(pooled.shape), tuple(w.shape)
    ((2, 4), (2, 3))
    """

    def __init__(
        self,
        attention_units: Sequence[int] = (80, 40),
        activation: str = "dice",
        normalize: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.attention_units = [int(u) for u in attention_units]
        self.activation = activation
        self.normalize = bool(normalize)
        if not self.attention_units:
            raise ValueError("attention_units needs at least one layer.")
        self.first = keras.layers.Dense(self.attention_units[0])
        self.first_activation = get_activation(activation)
        self.mlp = MLP(self.attention_units[1:], activation=activation)
        self.score = keras.layers.Dense(1)

    def build(self, query_shape, keys_shape=None, valid_shape=None) -> None:
        dim = query_shape[-1]
        self.first.build((None, 4 * dim))
        self.first_activation.build((None, None, self.attention_units[0]))
        self.mlp.build((None, None, self.attention_units[0]))
        self.score.build((None, None, self.attention_units[-1]))

    def call(self, query, keys, valid, training=None):
        # The first layer is Dense([h, q, h - q, h * q]); split its kernel by input block so
        # that the query's part is computed once per row rather than once per behaviour:
        # h @ (W_h + W_d) + q @ (W_q - W_d) + (h * q) @ W_p + b. Same function, half the work.
        dim = ops.shape(query)[-1]
        kernel = self.first.kernel
        w_h, w_q = kernel[:dim], kernel[dim : 2 * dim]
        w_d, w_p = kernel[2 * dim : 3 * dim], kernel[3 * dim :]
        q = ops.expand_dims(query, 1)
        hidden = (
            ops.matmul(keys, w_h + w_d)
            + ops.matmul(keys * q, w_p)
            + ops.expand_dims(ops.matmul(query, w_q - w_d) + self.first.bias, 1)
        )
        act = self.first_activation
        hidden = act(hidden, training=training, valid=valid) if isinstance(act, Dice) else act(
            hidden
        )
        hidden = self.mlp(hidden, training=training, valid=valid)
        scores = ops.squeeze(self.score(hidden), -1)
        if self.normalize:
            weights = masked_softmax(scores, valid)
        else:
            weights = ops.where(valid, scores, ops.zeros_like(scores))
        pooled = ops.sum(ops.expand_dims(weights, -1) * keys, axis=1)
        return pooled, weights

    def compute_output_shape(self, query_shape, keys_shape=None, valid_shape=None):
        return (tuple(query_shape), tuple(keys_shape[:2]))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "attention_units": self.attention_units,
            "activation": self.activation,
            "normalize": self.normalize,
        }


@keras.saving.register_keras_serializable(package="sklattn")
class BilinearAttention(keras.layers.Layer):
    """Softmax attention of a sequence on a query: ``a_t = softmax_t(h_t W q)``.

    DIEN's attention of the interest states on the candidate (Zhou et al.,
    2019, eq. 8). The softmax runs over the valid steps only; padded steps get
    exactly 0, and a row without valid steps gets all zeros.

    ``call(query, keys, valid)``: query ``(batch, q_dim)``, keys
    ``(batch, steps, k_dim)``, valid ``(batch, steps)``. Returns the weights
    ``(batch, steps)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import BilinearAttention
    >>> w = BilinearAttention()(np.ones((2, 4), "float32"), np.ones((2, 3, 5), "float32"),
    ...                         np.array([[True, True, False]] * 2))
    >>> np.asarray(w).sum(axis=1).round(6).tolist()
    [1.0, 1.0]
    """

    def build(self, query_shape, keys_shape=None, valid_shape=None) -> None:
        self.kernel = self.add_weight(
            shape=(keys_shape[-1], query_shape[-1]), initializer="glorot_uniform", name="kernel"
        )

    def call(self, query, keys, valid):
        projected = ops.matmul(query, ops.transpose(self.kernel))  # W q: (batch, k_dim)
        scores = ops.sum(keys * ops.expand_dims(projected, 1), axis=-1)
        return masked_softmax(scores, valid)

    def compute_output_shape(self, query_shape, keys_shape=None, valid_shape=None):
        return tuple(keys_shape[:2])
