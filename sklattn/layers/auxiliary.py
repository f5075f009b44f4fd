"""DIEN's auxiliary next-behaviour loss (its negatives come from :mod:`.sampling`)."""

from __future__ import annotations

from collections.abc import Sequence

from .._backend import keras
from .core import MLP

ops = keras.ops


@keras.saving.register_keras_serializable(package="sklattn")
class AuxiliaryLoss(keras.layers.Layer):
    """DIEN's auxiliary loss (Zhou et al., 2019, eq. 6) on the interest states.

    The state ``h_t`` after behaviour ``t`` must tell the real next behaviour
    ``e_{t+1}`` from a sampled negative ``e'_{t+1}``: an MLP on
    ``[h_t, e]`` gives a logit ``s``, and the loss is
    ``-log sigmoid(s(h_t, e_{t+1})) - log(1 - sigmoid(s(h_t, e'_{t+1})))``,
    averaged over the steps where both ``t`` and ``t + 1`` are real behaviours.

    ``call(states, positives, negatives, valid)`` returns ``states`` unchanged;
    in training it adds ``weight * loss`` to the model's losses (and does no work
    at inference). With ``return_loss=True`` it instead returns, per row,
    ``[sum of the step losses, number of valid steps]`` (shape ``(batch, 2)``)
    at inference too, for monitoring.

    Parameters
    ----------
    hidden_units : sequence of int, default=(100, 50)
        Hidden layers of the auxiliary net.
    activation : str, default="sigmoid"
        Their activation (the paper's choice).
    weight : float, default=1.0
        Weight of the loss in the total (the paper's alpha).

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import AuxiliaryLoss
    >>> h = np.ones((2, 4, 3), "float32"); e = np.ones((2, 4, 5), "float32")
    >>> tuple(AuxiliaryLoss((8,))(h, e, -e, np.ones((2, 4), bool), return_loss=True).shape)
    (2, 2)
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (100, 50),
        activation: str = "sigmoid",
        weight: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        self.weight = float(weight)
        if not self.hidden_units:
            raise ValueError("hidden_units needs at least one layer.")
        self.state_norm = keras.layers.BatchNormalization(center=False, scale=False)
        self.item_norm = keras.layers.BatchNormalization(center=False, scale=False)
        self.first = keras.layers.Dense(self.hidden_units[0])
        self.first_activation = keras.layers.Activation(activation)
        self.mlp = MLP(self.hidden_units[1:], activation=activation)
        self.score = keras.layers.Dense(1)

    def build(self, states_shape, positives_shape=None, negatives_shape=None, valid_shape=None):
        self.state_norm.build((None, None, states_shape[-1]))
        self.item_norm.build((None, None, None, positives_shape[-1]))
        self.first.build((None, states_shape[-1] + positives_shape[-1]))
        self.mlp.build((None, self.hidden_units[0]))
        self.score.build((None, self.hidden_units[-1]))

    def step_losses(self, states, positives, negatives, pair, training=None):
        """Per-step loss of ``h_t`` against ``e_{t+1}`` and ``e'_{t+1}``: (batch, steps-1)."""
        h = self.state_norm(states[:, :-1], training=training, mask=pair)
        dim = ops.shape(h)[-1]
        kernel = self.first.kernel
        # Dense([h, e]) = h @ W_h + e @ W_e + b: the state's part is shared by both items.
        h_part = ops.matmul(h, kernel[:dim]) + self.first.bias
        items = ops.stack([positives[:, 1:], negatives[:, 1:]], axis=0)
        items = self.item_norm(items, training=training, mask=ops.stack([pair, pair], axis=0))
        hidden = self.first_activation(ops.expand_dims(h_part, 0) + ops.matmul(items, kernel[dim:]))
        logits = ops.squeeze(self.score(self.mlp(hidden)), -1)  # (2, batch, steps-1)
        # -log sigmoid(s_pos) - log(1 - sigmoid(s_neg)) = softplus(-s_pos) + softplus(s_neg)
        return ops.softplus(-logits[0]) + ops.softplus(logits[1])

    def call(self, states, positives, negatives, valid, training=None, return_loss=False):
        if not (training or return_loss):
            return states
        pair = ops.logical_and(valid[:, :-1], valid[:, 1:])
        losses = self.step_losses(states, positives, negatives, pair, training=training)
        pair = ops.cast(pair, states.dtype)
        losses = losses * pair
        if return_loss:
            return ops.stack([ops.sum(losses, axis=1), ops.sum(pair, axis=1)], axis=-1)
        self.add_loss(self.weight * ops.sum(losses) / ops.maximum(ops.sum(pair), 1.0))
        return states

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "activation": self.activation,
            "weight": self.weight,
        }
