"""Sampled softmax for retrieval: log-Q correction and accidental hits removed (the
candidates come from :mod:`.sampling`)."""

from __future__ import annotations

from .._backend import keras
from .core import MASKED_LOGIT

ops = keras.ops


@keras.saving.register_keras_serializable(package="sklattn")
class SampledSoftmaxLoss(keras.layers.Layer):
    """Per-row sampled softmax cross-entropy of a user vector against its true item.

    The logits are ``u . e_target`` and ``u . e_neg`` for the shared negatives; with
    ``correct_sampling=True`` each logit has its candidate's log expected count
    subtracted (logQ correction), which makes the sampled loss an estimate of the
    full softmax over the catalogue rather than of one biased towards unpopular
    items. With ``remove_accidental_hits=True`` a negative equal to the row's true
    item gets the masked logit (:data:`~sklattn.layers.MASKED_LOGIT`), so the row is
    never pushed away from its own target.

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
            negative = ops.where(hit, ops.full_like(negative, MASKED_LOGIT), negative)
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
