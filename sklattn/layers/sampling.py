"""Samplers of negative items: one distribution builder and one inference seed.

DIEN's auxiliary loss draws one negative per behaviour (:class:`NegativeSampler`);
MIND's sampled softmax draws negatives shared by a batch (:class:`CandidateSampler`).
Both draw from a fixed distribution over the vocabulary built by
:func:`sampling_distribution` (padding and the unseen id are never drawn), advance a
seeded generator in training and use :data:`INFERENCE_SEED` at inference, so a
validation or auxiliary loss is the same every time it is evaluated.
"""

from __future__ import annotations

import numpy as np

from .._backend import keras
from .._schema import FIRST_ID, OOV_ID

ops = keras.ops

#: Seed of the (stateless) draws at inference, so evaluation is repeatable.
INFERENCE_SEED = 20190000


def sampling_distribution(weights) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities proportional to ``weights`` over real ids (padding and
    the unseen id are never drawn; all-zero weights fall back to uniform) and their CDF, whose last
    drawable item closes the interval at exactly 1. Both float32."""
    p = np.asarray(weights, dtype=np.float64).copy()
    p[:FIRST_ID] = 0.0
    if p.sum() <= 0:
        p[FIRST_ID:] = 1.0
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
    :meth:`set_distribution`; padding and the unseen id are never drawn),
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
                shape=(v, self.n_side), initializer=keras.initializers.Constant(OOV_ID),
                dtype="int32", trainable=False, name="side_ids",
            )

    def set_distribution(self, weights, side_ids=None) -> None:
        """Draw item ``i`` with probability proportional to ``weights[i]`` (real ids only).

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
        seed = self.seed_generator if training else INFERENCE_SEED
        u = keras.random.uniform(shape, seed=seed)
        p_pos = ops.take(self.probabilities, positives)
        start = ops.take(self.cdf, positives) - p_pos  # where the positive's interval begins
        u = u * (1.0 - p_pos)
        u = u + ops.where(u >= start, p_pos, ops.zeros_like(p_pos))
        flat = ops.searchsorted(self.cdf, ops.reshape(u, (-1,)), side="right")
        negatives = ops.reshape(
            ops.clip(ops.cast(flat, "int32"), FIRST_ID, self.vocabulary_size - 1), shape
        )
        if self.vocabulary_size <= FIRST_ID:  # no real item to draw
            negatives = ops.full_like(positives, OOV_ID)
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
class CandidateSampler(keras.layers.Layer):
    """Draws the negatives of a sampled softmax, shared by every row of a batch.

    ``n_negatives`` item ids are drawn with replacement from a fixed distribution
    ``q`` over the vocabulary (set with :meth:`set_distribution`; padding and the
    unseen id are never drawn), by an inverse-CDF lookup. Along with the
    draws it returns the log of each candidate's expected count in the sample,
    ``log(n_negatives * q(i))`` (the logQ correction of Bengio & Senecal, 2008;
    Yi et al., 2019), for the negatives and for the rows' true items.

    In training the draws advance a seeded :class:`keras.random.SeedGenerator`;
    at inference they are stateless with a fixed seed, so a validation loss is
    the same every time it is evaluated.

    ``call(targets)``: int ids ``(batch,)``. Returns ``(negatives,
    negative_log_q, target_log_q)``: ``(n_negatives,)`` int32, ``(n_negatives,)``
    and ``(batch,)`` floats.

    Parameters
    ----------
    vocabulary_size : int
        Number of item ids (including 0 and 1).
    n_negatives : int
        Candidates drawn per batch.
    seed : int, default=None
        Seed of the training draws.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import CandidateSampler
    >>> sampler = CandidateSampler(6, n_negatives=4, seed=0)
    >>> sampler.build((None,))
    >>> sampler.set_distribution(np.array([0, 0, 1, 1, 1, 5]))
    >>> negatives, log_q, _ = sampler(np.array([2, 3]))
    >>> bool((np.asarray(negatives) >= 2).all()), tuple(log_q.shape)
    (True, (4,))
    """

    def __init__(
        self, vocabulary_size: int, n_negatives: int, seed: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.n_negatives = int(n_negatives)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, targets_shape=None) -> None:
        p, cdf = sampling_distribution(np.ones(self.vocabulary_size))
        self.probabilities = self.add_weight(
            shape=(self.vocabulary_size,), initializer=keras.initializers.Constant(p),
            trainable=False, name="probabilities",
        )
        self.cdf = self.add_weight(
            shape=(self.vocabulary_size,), initializer=keras.initializers.Constant(cdf),
            trainable=False, name="cdf",
        )

    def set_distribution(self, weights) -> None:
        """Draw item ``i`` with probability proportional to ``weights[i]`` (real ids only).

        All-zero weights fall back to uniform.
        """
        p, cdf = sampling_distribution(weights)
        self.probabilities.assign(p)
        self.cdf.assign(cdf)

    def call(self, targets, training=None):
        targets = ops.cast(targets, "int32")
        seed = self.seed_generator if training else INFERENCE_SEED
        u = keras.random.uniform((self.n_negatives,), seed=seed)
        drawn = ops.searchsorted(self.cdf, u, side="right")
        negatives = ops.clip(
            ops.cast(drawn, "int32"), FIRST_ID, max(self.vocabulary_size - 1, FIRST_ID)
        )
        n = float(self.n_negatives)
        negative_log_q = ops.log(n * ops.maximum(ops.take(self.probabilities, negatives), 1e-12))
        target_log_q = ops.log(n * ops.maximum(ops.take(self.probabilities, targets), 1e-12))
        return negatives, negative_log_q, target_log_q

    def compute_output_shape(self, targets_shape):
        return (self.n_negatives,), (self.n_negatives,), (targets_shape[0],)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "n_negatives": self.n_negatives,
            "seed": self.seed,
        }
