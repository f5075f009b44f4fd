"""MIND's multi-interest extractor: behaviour-to-interest capsule routing and
label-aware attention (Li et al., CIKM 2019, arXiv:1904.08030)."""

from __future__ import annotations

from .._backend import keras
from .core import MASKED_LOGIT, masked_softmax

ops = keras.ops

#: Largest power ``|s|^p`` label-aware attention computes (see LabelAwareAttention).
_POWER_CAP = 1e30


def squash(z, axis: int = -1, epsilon: float = 1e-9):
    """Capsule non-linearity ``||z||^2 / (1 + ||z||^2) * z / ||z||``.

    Keeps the direction of ``z`` and maps its length into ``[0, 1)``; the zero
    vector stays zero.
    """
    sq = ops.sum(ops.square(z), axis=axis, keepdims=True)
    return z * (sq / (1.0 + sq)) / ops.sqrt(sq + epsilon)


def interest_counts(lengths, n_interests: int):
    """MIND's dynamic interest number ``max(1, min(K, floor(log2(1 + length))))``."""
    lengths = ops.cast(lengths, "float32")
    k = ops.floor(ops.log2(1.0 + lengths) + 1e-6)
    return ops.cast(ops.clip(k, 1.0, float(n_interests)), "int32")


@keras.saving.register_keras_serializable(package="sklattn")
class CapsuleRouting(keras.layers.Layer):
    """Behaviour-to-interest (B2I) dynamic routing (MIND, Algorithm 1).

    Every behaviour embedding ``e_i`` is mapped by one shared bilinear matrix
    ``S`` to ``S e_i``; ``K`` interest capsules are then found by
    ``routing_iterations`` rounds of::

        w_ij = softmax over the user's valid interests j (b_ij)
        u_j  = squash(sum_i w_ij S e_i)      (sum over valid behaviours i)
        b_ij = b_ij + u_j . S e_i            (not after the last round)

    As in capsule networks, each behaviour divides its vote among the interests,
    so the interests compete for behaviours and spread over distinct groups of
    them. The logit updates do not propagate gradients (the routing is a fixed-point
    procedure); the last round's weighted sum does, to ``S`` and the embeddings.

    **Routing logits live only inside one forward pass.** They start from a fixed
    draw ``b0 ~ N(0, init_stddev^2)`` of shape ``(steps, K)``, made once when the
    layer is built (seeded by ``seed``, stored as a non-trainable weight so that
    pickling keeps it, and never written to again), and each row's rounds update a
    copy that is discarded afterwards. A user's interests therefore depend only on
    that user's behaviours: not on the batch, on earlier batches or on training, and
    predicting twice gives the same interests. The random start breaks the symmetry
    between capsules: with a shared ``S`` and ``b0 = 0`` all capsules would be
    identical.

    Padded behaviours (``valid`` False) get routing weight exactly 0, so padding
    never changes the interests. With ``dynamic=True`` a user with ``n`` valid
    behaviours has ``max(1, min(K, floor(log2(1 + n))))`` interests; the others take
    no part in the routing softmax and are returned as zeros (mask False).

    ``call(behaviours, valid)``: ``(batch, steps, dim)`` floats and
    ``(batch, steps)`` booleans. Returns ``(interests, mask)``:
    ``(batch, K, output_dim)`` and ``(batch, K)`` booleans.

    Parameters
    ----------
    n_interests : int, default=4
        Maximum number of interests ``K``.
    output_dim : int, default=None
        Size of an interest capsule; defaults to the behaviour size.
    routing_iterations : int, default=3
        Rounds of routing.
    dynamic : bool, default=True
        Use the dynamic interest number; False gives every user ``K`` interests.
    init_stddev : float, default=1.0
        Standard deviation of the initial routing logits.
    seed : int, default=None
        Seed of the initial routing logits and of ``S``'s initialiser.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import CapsuleRouting
    >>> e = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    >>> valid = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    >>> interests, mask = CapsuleRouting(n_interests=3, seed=0)(e, valid)
    >>> tuple(interests.shape), np.asarray(mask).sum(axis=1).tolist()
    ((2, 3, 4), [2, 2])
    """

    def __init__(
        self,
        n_interests: int = 4,
        output_dim: int | None = None,
        routing_iterations: int = 3,
        dynamic: bool = True,
        init_stddev: float = 1.0,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.n_interests = int(n_interests)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.routing_iterations = int(routing_iterations)
        self.dynamic = bool(dynamic)
        self.init_stddev = float(init_stddev)
        self.seed = seed

    def build(self, behaviours_shape, valid_shape=None) -> None:
        steps, dim = int(behaviours_shape[-2]), int(behaviours_shape[-1])
        out = self.output_dim or dim
        self.bilinear = self.add_weight(
            shape=(dim, out),
            initializer=keras.initializers.GlorotNormal(seed=self.seed),
            name="bilinear",
        )
        self.initial_logits = self.add_weight(
            shape=(steps, self.n_interests),
            initializer=keras.initializers.RandomNormal(stddev=self.init_stddev, seed=self.seed),
            trainable=False,
            name="initial_logits",
        )

    def call(self, behaviours, valid):
        valid = ops.cast(valid, "bool")
        low = ops.matmul(behaviours, self.bilinear)  # (batch, steps, out): S e_i
        fixed = ops.stop_gradient(low)
        lengths = ops.sum(ops.cast(valid, "int32"), axis=-1)
        if self.dynamic:
            counts = interest_counts(lengths, self.n_interests)
        else:
            counts = ops.full_like(lengths, self.n_interests)
        mask = ops.expand_dims(ops.arange(self.n_interests, dtype="int32"), 0) < (
            ops.expand_dims(counts, -1)
        )  # (batch, K)
        interest_mask = ops.expand_dims(mask, 1)  # (batch, 1, K)
        behaviour_mask = ops.expand_dims(ops.cast(valid, low.dtype), -1)  # (batch, steps, 1)
        # A fresh copy of the fixed start for every row of this pass: (batch, steps, K).
        logits = ops.zeros_like(low[:, :1, :1]) + ops.expand_dims(self.initial_logits, 0)
        interests = None
        for round_ in range(self.routing_iterations):
            last = round_ == self.routing_iterations - 1
            if self.n_interests == 1:  # one capsule takes every behaviour's whole vote
                weights = ops.ones_like(logits) * behaviour_mask
            else:
                masked = ops.where(interest_mask, logits, ops.full_like(logits, MASKED_LOGIT))
                weights = ops.softmax(masked, axis=-1) * behaviour_mask
            interests = squash(ops.einsum("btk,btd->bkd", weights, low if last else fixed))
            if not last:
                logits = logits + ops.einsum("bkd,btd->btk", interests, fixed)
        interests = interests * ops.cast(ops.expand_dims(mask, -1), interests.dtype)
        return interests, mask

    def compute_output_shape(self, behaviours_shape, valid_shape=None):
        out = self.output_dim or behaviours_shape[-1]
        batch = behaviours_shape[0]
        return (batch, self.n_interests, out), (batch, self.n_interests)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "n_interests": self.n_interests,
            "output_dim": self.output_dim,
            "routing_iterations": self.routing_iterations,
            "dynamic": self.dynamic,
            "init_stddev": self.init_stddev,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="sklattn")
class LabelAwareAttention(keras.layers.Layer):
    """MIND's label-aware attention: the target item picks among the interests.

    ``v_u = sum_k softmax_k(pow(v_k . e, p)) v_k`` over the user's valid interests
    (MIND, eq. 7). ``p = 0`` weighs the valid interests equally; a large ``p``
    approaches hard attention on the interest with the largest score. For ``p > 0``
    the power is taken sign-preserving, ``sign(s) |s|^p``, so that it is defined (and keeps the
    order of the scores) for negative dot products and any real ``p``; for the
    positive scores of the paper's analysis it is ``s^p``. Where a power would exceed
    ``1e30`` the softmax is one-hot on the largest score to within float precision,
    and the row gets exactly that one-hot weight: a huge ``p`` is hard attention,
    never an overflow or a NaN.

    ``call(interests, target, mask)``: ``(batch, K, dim)``, ``(batch, dim)`` and
    ``(batch, K)`` booleans. Returns ``(user, weights)``: ``(batch, dim)`` and
    ``(batch, K)`` (zero on masked interests).

    Parameters
    ----------
    pow_p : float, default=1.0
        The exponent ``p``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import LabelAwareAttention
    >>> interests = np.array([[[1.0, 0.0], [0.0, 2.0]]], "float32")
    >>> user, w = LabelAwareAttention(pow_p=50.0)(
    ...     interests, np.array([[0.0, 3.0]], "float32"), np.ones((1, 2), bool))
    >>> np.round(np.asarray(w), 3).tolist()
    [[0.0, 1.0]]
    """

    def __init__(self, pow_p: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pow_p = float(pow_p)

    def call(self, interests, target, mask):
        mask = ops.cast(mask, "bool")
        scores = ops.einsum("bkd,bd->bk", interests, target)
        n_interests = interests.shape[1]
        if n_interests == 1 or self.pow_p == 0:
            # p = 0: every valid interest weighs the same (s^0 = 1 in the paper).
            weights = ops.cast(mask, scores.dtype)
            weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1.0)
        else:
            # |s|^p is computed on |s| capped where it would pass _POWER_CAP, so neither
            # the value nor its gradient overflows. A row whose cap is reached is in
            # the hard-attention regime: there the softmax is one-hot on the largest
            # score (short of an exact tie), and that is what the row gets.
            cap = _POWER_CAP ** (1.0 / self.pow_p)
            magnitude = ops.abs(scores)
            powered = ops.sign(scores) * ops.power(ops.minimum(magnitude, cap), self.pow_p)
            soft = masked_softmax(powered, mask)
            # Order-preserving: masked entries sit strictly below every valid score.
            valid_scores = ops.where(mask, scores, ops.zeros_like(scores))
            low = ops.min(valid_scores, axis=-1, keepdims=True)
            best = ops.argmax(ops.where(mask, scores, low - ops.abs(low) - 1.0), axis=-1)
            hard = ops.one_hot(best, n_interests, dtype=scores.dtype)
            saturated = ops.any(ops.logical_and(mask, magnitude >= cap), axis=-1, keepdims=True)
            weights = ops.where(saturated, hard, soft)
        user = ops.einsum("bk,bkd->bd", weights, interests)
        return user, weights

    def compute_output_shape(self, interests_shape, target_shape=None, mask_shape=None):
        return (interests_shape[0], interests_shape[-1]), tuple(interests_shape[:2])

    def get_config(self) -> dict:
        return {**super().get_config(), "pow_p": self.pow_p}
