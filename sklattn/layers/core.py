"""Multi-layer perceptrons, masked pooling and the masked softmax."""

from __future__ import annotations

from collections.abc import Sequence

from .._backend import keras
from .activations import Dice, get_activation

ops = keras.ops

#: The one logit sklattn gives a masked entry before a softmax: its weight underflows
#: to exactly 0 next to any real logit (scores are shifted so that the best valid one
#: is 0), yet it stays finite, so no ``inf - inf`` reaches a gradient.
MASKED_LOGIT = -1e9


def masked_softmax(scores, mask, axis: int = -1):
    """Softmax over ``axis`` that gives masked positions exactly zero.

    The valid scores are shifted so that the largest is 0 before masked entries get
    :data:`MASKED_LOGIT`, so the result is exact for valid scores of any finite
    magnitude (label-aware attention feeds it powers up to 1e30). A row without any
    valid position gets all-zero weights (never NaN).
    """
    mask = ops.cast(mask, "bool")
    # Masked entries never enter the arithmetic (they may hold anything, NaN included).
    floor = ops.min(ops.where(mask, scores, ops.zeros_like(scores)), axis=axis, keepdims=True)
    top = ops.max(ops.where(mask, scores, floor), axis=axis, keepdims=True)
    shifted = ops.where(mask, scores - top, ops.full_like(scores, MASKED_LOGIT))
    weights = ops.softmax(shifted, axis=axis) * ops.cast(mask, scores.dtype)
    return weights / ops.maximum(ops.sum(weights, axis=axis, keepdims=True), 1e-12)


@keras.saving.register_keras_serializable(package="sklattn")
class MLP(keras.layers.Layer):
    """Stack of Dense -> activation (-> dropout) blocks.

    Parameters
    ----------
    hidden_units : sequence of int
        Width of each block.
    activation : str, default="relu"
        ``"dice"``, ``"prelu"`` or a Keras activation name.
    dropout : float, default=0.0
        Dropout rate after each block.
    l2 : float, default=0.0
        L2 penalty on the kernels.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import MLP
    >>> tuple(MLP([8, 4])(np.ones((2, 3), "float32")).shape)
    (2, 4)
    """

    def __init__(
        self,
        hidden_units: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        l2: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        self.dropout = float(dropout)
        self.l2 = float(l2)
        reg = keras.regularizers.L2(self.l2) if self.l2 else None
        self.dense_layers = [
            keras.layers.Dense(u, kernel_regularizer=reg) for u in self.hidden_units
        ]
        self.activation_layers = [get_activation(activation) for _ in self.hidden_units]
        self.dropout_layers = [keras.layers.Dropout(self.dropout) for _ in self.hidden_units]

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        for dense, act in zip(self.dense_layers, self.activation_layers, strict=True):
            dense.build(shape)
            shape = shape[:-1] + (dense.units,)
            act.build(shape)

    def call(self, inputs, training=None, valid=None):
        x = inputs
        for dense, act, drop in zip(
            self.dense_layers, self.activation_layers, self.dropout_layers, strict=True
        ):
            x = dense(x)
            x = act(x, training=training, valid=valid) if isinstance(act, Dice) else act(x)
            if self.dropout:
                x = drop(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        if not self.hidden_units:
            return input_shape
        return tuple(input_shape[:-1]) + (self.hidden_units[-1],)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
        }


@keras.saving.register_keras_serializable(package="sklattn")
class MaskedPooling(keras.layers.Layer):
    """Sum or mean of a sequence over its valid (non-padding) positions.

    ``call(values, valid)`` with values ``(batch, steps, dim)`` and a boolean
    mask ``valid`` ``(batch, steps)``; returns ``(batch, dim)``. A row with no valid
    position pools to zeros.

    Parameters
    ----------
    mode : {"sum", "mean"}, default="sum"

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import MaskedPooling
    >>> v = np.ones((1, 3, 2), "float32"); m = np.array([[False, True, True]])
    >>> np.asarray(MaskedPooling("sum")(v, m)).tolist()
    [[2.0, 2.0]]
    """

    def __init__(self, mode: str = "sum", **kwargs) -> None:
        super().__init__(**kwargs)
        if mode not in ("sum", "mean"):
            raise ValueError(f"mode must be 'sum' or 'mean', got {mode!r}")
        self.mode = mode

    def call(self, values, valid):
        weight = ops.expand_dims(ops.cast(valid, values.dtype), -1)
        pooled = ops.sum(values * weight, axis=1)
        if self.mode == "mean":
            pooled = pooled / ops.maximum(ops.sum(weight, axis=1), 1.0)
        return pooled

    def compute_output_shape(self, values_shape, valid_shape=None):
        return (values_shape[0], values_shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}
