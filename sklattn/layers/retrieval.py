"""Sampled softmax for retrieval: candidate sampling, log-Q correction, accidental hits."""

from __future__ import annotations

import numpy as np

from .._backend import keras
from .auxiliary import sampling_distribution

ops = keras.ops

#: Seed of the (stateless) draws at inference, so a validation loss is repeatable.
_INFERENCE_SEED = 19040803
#: Logit of an accidental hit: far below any real logit, yet finite.
_REMOVED = -1e9


@keras.saving.register_keras_serializable(package="sklattn")
class CandidateSampler(keras.layers.Layer):
    """Draws the negatives of a sampled softmax, shared by every row of a batch.

    ``n_negatives`` item ids are drawn with replacement from a fixed distribution
    ``q`` over the vocabulary (set with :meth:`set_distribution`; ids 0 = padding
    and 1 = unseen are never drawn), by an inverse-CDF lookup. Along with the
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
        """Draw item ``i`` with probability proportional to ``weights[i]`` (ids >= 2).

        All-zero weights fall back to uniform.
        """
        p, cdf = sampling_distribution(weights)
        self.probabilities.assign(p)
        self.cdf.assign(cdf)

    def call(self, targets, training=None):
        targets = ops.cast(targets, "int32")
        seed = self.seed_generator if training else _INFERENCE_SEED
        u = keras.random.uniform((self.n_negatives,), seed=seed)
        drawn = ops.searchsorted(self.cdf, u, side="right")
        negatives = ops.clip(ops.cast(drawn, "int32"), 2, max(self.vocabulary_size - 1, 2))
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


@keras.saving.register_keras_serializable(package="sklattn")
class SampledSoftmaxLoss(keras.layers.Layer):
    """Per-row sampled softmax cross-entropy of a user vector against its true item.

    The logits are ``u . e_target`` and ``u . e_neg`` for the shared negatives; with
    ``correct_sampling=True`` each logit has its candidate's log expected count
    subtracted (logQ correction), which makes the sampled loss an estimate of the
    full softmax over the catalogue rather than of one biased towards unpopular
    items. With ``remove_accidental_hits=True`` a negative equal to the row's true
    item gets a logit of -1e9, so the row is never pushed away from its own target.

    ``call(user, target, negatives, target_ids, negative_ids, target_log_q,
    negative_log_q)``: ``(batch, dim)``, ``(batch, dim)``, ``(n, dim)``,
    ``(batch,)``, ``(n,)``, ``(batch,)``, ``(n,)``. Returns the loss ``(batch,)``.

    Parameters
    ----------
    correct_sampling : bool, default=True
        Subtract the log expected counts.
    remove_accidental_hits : bool, default=True
        Mask negatives that are the row's true item.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import SampledSoftmaxLoss
    >>> u = np.ones((1, 2), "float32"); t = np.ones((1, 2), "float32")
    >>> loss = SampledSoftmaxLoss()(u, t, t, np.array([5]), np.array([5]),
    ...                             np.zeros(1, "float32"), np.zeros(1, "float32"))
    >>> round(float(loss[0]), 6)  # the only negative is the target itself: removed
    0.0
    """

    def __init__(
        self, correct_sampling: bool = True, remove_accidental_hits: bool = True, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.correct_sampling = bool(correct_sampling)
        self.remove_accidental_hits = bool(remove_accidental_hits)

    def call(self, user, target, negatives, target_ids, negative_ids, target_log_q,
             negative_log_q):
        positive = ops.sum(user * target, axis=-1, keepdims=True)  # (batch, 1)
        negative = ops.matmul(user, ops.transpose(negatives))  # (batch, n)
        if self.correct_sampling:
            positive = positive - ops.expand_dims(target_log_q, -1)
            negative = negative - ops.expand_dims(negative_log_q, 0)
        if self.remove_accidental_hits:
            hit = ops.equal(
                ops.expand_dims(ops.cast(target_ids, "int32"), -1),
                ops.expand_dims(ops.cast(negative_ids, "int32"), 0),
            )
            negative = ops.where(hit, ops.full_like(negative, _REMOVED), negative)
        logits = ops.concatenate([positive, negative], axis=-1)
        return ops.logsumexp(logits, axis=-1) - logits[:, 0]

    def compute_output_shape(self, user_shape, *shapes):
        return (user_shape[0],)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "correct_sampling": self.correct_sampling,
            "remove_accidental_hits": self.remove_accidental_hits,
        }
