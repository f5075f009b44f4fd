"""Negative sampling and DIEN's auxiliary next-behaviour loss."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._backend import keras
from .core import MLP

ops = keras.ops

#: Seed of the (stateless) draws at inference, so evaluation is repeatable.
_INFERENCE_SEED = 20190000


def sampling_distribution(weights) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities proportional to ``weights`` over ids >= 2 (0 = padding and 1 = unseen
    are never drawn; all-zero weights fall back to uniform) and their CDF, whose last
    drawable item closes the interval at exactly 1. Both float32."""
    p = np.asarray(weights, dtype=np.float64).copy()
    p[:2] = 0.0
    if p.sum() <= 0:
        p[2:] = 1.0
    total = p.sum()
    p = p / total if total > 0 else p
    cdf = np.cumsum(p)
    if cdf[-1] > 0:
        cdf[np.flatnonzero(p)[-1]:] = 1.0
    return p.astype(np.float32), cdf.astype(np.float32)


@keras.saving.register_keras_serializable(package="sklattn")
class NegativeSampler(keras.layers.Layer):
    """Draws one negative item per position, never equal to the position's item.

    Items are drawn from a fixed distribution over the vocabulary (set with
    :meth:`set_distribution`; ids 0 = padding and 1 = unseen are never drawn),
    conditioned on differing from the positive: with ``u ~ U(0, 1 - p(pos))``
    shifted past the positive's interval of the cumulative distribution, an
    inverse-CDF lookup draws exactly from ``p(. | . != pos)`` with one
    ``searchsorted``. Each negative also gets its side features (e.g. its
    category) from a lookup table, so a negative behaviour is as complete as a
    real one.

    In training the draws advance a seeded :class:`keras.random.SeedGenerator`
    (reproducible under ``keras.utils.set_random_seed``); at inference they are
    stateless with a fixed seed, so evaluating a loss twice gives the same value.

    ``call(positives)``: int ids ``(batch, steps)``. Returns ``(negatives,
    side)``: ``(batch, steps)`` and ``(batch, steps, n_side)`` int32.

    Parameters
    ----------
    vocabulary_size : int
        Number of item ids (including 0 and 1).
    n_side : int, default=0
        Number of side features per item.
    seed : int, default=None
        Seed of the training draws.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import NegativeSampler
    >>> sampler = NegativeSampler(6)
    >>> sampler.build((None, 3))
    >>> sampler.set_distribution(np.array([0, 0, 1, 1, 1, 1]))
    >>> negatives, _ = sampler(np.array([[2, 3, 4]]))
    >>> bool((np.asarray(negatives) != [[2, 3, 4]]).all())
    True
    """

    def __init__(
        self, vocabulary_size: int, n_side: int = 0, seed: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.n_side = int(n_side)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, positives_shape=None) -> None:
        v = self.vocabulary_size
        uniform, uniform_cdf = sampling_distribution(np.ones(v))
        self.probabilities = self.add_weight(
            shape=(v,), initializer=keras.initializers.Constant(uniform), trainable=False,
            name="probabilities",
        )
        self.cdf = self.add_weight(
            shape=(v,), initializer=keras.initializers.Constant(uniform_cdf),
            trainable=False, name="cdf",
        )
        self.side_ids = None
        if self.n_side:
            self.side_ids = self.add_weight(
                shape=(v, self.n_side), initializer=keras.initializers.Constant(1),
                dtype="int32", trainable=False, name="side_ids",
            )

    def set_distribution(self, weights, side_ids=None) -> None:
        """Draw item ``i`` with probability proportional to ``weights[i]`` (ids >= 2).

        ``side_ids`` is ``(vocabulary_size, n_side)``: the side feature ids of
        each item. All-zero weights fall back to uniform.
        """
        p, cdf = sampling_distribution(weights)
        self.probabilities.assign(p)
        self.cdf.assign(cdf)
        if self.n_side:
            side = np.asarray(side_ids, dtype=np.int32).reshape(self.vocabulary_size, self.n_side)
            self.side_ids.assign(side)

    def call(self, positives, training=None):
        positives = ops.cast(positives, "int32")
        shape = ops.shape(positives)
        seed = self.seed_generator if training else _INFERENCE_SEED
        u = keras.random.uniform(shape, seed=seed)
        p_pos = ops.take(self.probabilities, positives)
        start = ops.take(self.cdf, positives) - p_pos  # where the positive's interval begins
        u = u * (1.0 - p_pos)
        u = u + ops.where(u >= start, p_pos, ops.zeros_like(p_pos))
        flat = ops.searchsorted(self.cdf, ops.reshape(u, (-1,)), side="right")
        negatives = ops.reshape(
            ops.clip(ops.cast(flat, "int32"), 2, self.vocabulary_size - 1), shape
        )
        if self.vocabulary_size <= 2:  # no real item to draw
            negatives = ops.ones_like(positives)
        if self.n_side:
            side = ops.take(self.side_ids, negatives, axis=0)
        else:
            side = ops.expand_dims(negatives, -1)[..., :0]
        return negatives, side

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "n_side": self.n_side,
            "seed": self.seed,
        }


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
