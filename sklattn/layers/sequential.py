"""Layers of the next-item models SASRec and BERT4Rec: BERT4Rec's Cloze masking and
the per-position losses against the tied item table.

Every loss here scores only catalogue items (ids >= ``FIRST_ID``): padding and the
unseen id are never a target, a negative or a softmax class. Each returns one value
per row, the sum of its labelled positions' losses divided by the number of
positions, so that every labelled position of a batch weighs the same.
"""

from __future__ import annotations

from .._backend import keras
from .._schema import FIRST_ID
from .sampling import INFERENCE_SEED

ops = keras.ops

#: Share of BERT4Rec's training rows whose only hidden item is the last one: the
#: original data generator writes ``dupe_factor=10`` randomly masked copies of every
#: sequence and one copy with only its last item masked (``mask_last``), i.e. 1/11.
LAST_ITEM_SHARE = 1.0 / 11.0


def _labelled(labels):
    """Positions whose label is a catalogue item, as floats."""
    return ops.cast(ops.greater_equal(ops.cast(labels, "int32"), FIRST_ID), "float32")


def _per_row(losses, labels):
    """Sum of the labelled positions' losses divided by the number of positions."""
    steps = ops.cast(ops.shape(labels)[1], losses.dtype)
    return ops.sum(losses * _labelled(labels), axis=1) / steps


@keras.saving.register_keras_serializable(package="sklattn")
class ClozeMask(keras.layers.Layer):
    """Chooses the positions BERT4Rec's Cloze task hides (Sun et al., 2019).

    Only catalogue items (ids >= ``FIRST_ID``) are ever hidden: never padding, never
    the unseen id. A row is, with probability ``last_item_share``, a fine-tuning row
    whose only hidden position is its newest item (the task at serving time); any
    other row hides exactly ``max(1, round(mask_prob * n))`` of its ``n`` items,
    chosen uniformly (the original code's count). A row without items hides nothing.

    In training the draws advance a seeded :class:`keras.random.SeedGenerator`
    (reproducible with ``seed``); at inference they are stateless with a fixed seed,
    so a validation loss is the same every time it is evaluated.

    ``call(ids)``: int ids ``(batch, steps)``, oldest first. Returns the hidden
    positions ``(batch, steps)``, bool.

    Parameters
    ----------
    mask_prob : float
        Share of a row's items hidden, in (0, 1].
    last_item_share : float, default=1/11
        Share of rows that hide only their newest item.
    seed : int, default=None
        Seed of the training draws.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import ClozeMask
    >>> ids = np.array([[0, 0, 5, 6, 7, 8, 9], [0, 0, 0, 0, 0, 4, 1]])
    >>> hidden = np.asarray(ClozeMask(0.4, last_item_share=0.0, seed=0)(ids))
    >>> hidden.sum(axis=1).tolist()  # round(0.4 * 5) of 5 items, 1 of 1 (1 is unseen)
    [2, 1]
    >>> bool(hidden[ids < 2].any())  # never padding nor the unseen id
    False
    """

    def __init__(
        self,
        mask_prob: float,
        last_item_share: float = LAST_ITEM_SHARE,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.mask_prob = float(mask_prob)
        self.last_item_share = float(last_item_share)
        self.seed = seed
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1]; got {mask_prob}.")
        if not 0.0 <= self.last_item_share <= 1.0:
            raise ValueError(f"last_item_share must be in [0, 1]; got {last_item_share}.")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=None):
        ids = ops.cast(ids, "int32")
        items = ops.greater_equal(ids, FIRST_ID)
        count = ops.cast(items, "int32")
        batch, steps = ops.shape(ids)[0], ops.shape(ids)[1]
        seed = self.seed_generator if training else INFERENCE_SEED
        # One draw: a random key per position and one number per row.
        u = keras.random.uniform((batch, steps + 1), seed=seed)
        keys = ops.where(items, u[:, :steps], ops.full_like(u[:, :steps], 2.0))
        # Each position's rank among the row's keys (0 = smallest), by comparison rather
        # than sorting: a double argsort made an XLA-compiled step 16x slower on CPU.
        rank = ops.sum(
            ops.cast(ops.less(ops.expand_dims(keys, 1), ops.expand_dims(keys, 2)), "int32"),
            axis=-1,
        )
        n = ops.sum(count, axis=1, keepdims=True)
        k = ops.cast(ops.floor(ops.cast(n, "float32") * self.mask_prob + 0.5), "int32")
        k = ops.minimum(ops.maximum(k, 1), n)
        cloze = ops.logical_and(items, ops.less(rank, k))
        # The newest item: the only one with exactly one item at or after it.
        after = ops.flip(ops.cumsum(ops.flip(count, axis=1), axis=1), axis=1)
        newest = ops.logical_and(items, ops.equal(after, 1))
        last_only = ops.less(u[:, steps:], self.last_item_share)
        return ops.where(last_only, newest, cloze)

    def compute_output_shape(self, ids_shape):
        return tuple(ids_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "mask_prob": self.mask_prob,
            "last_item_share": self.last_item_share,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="sklattn")
class MaskToken(keras.layers.Layer):
    """A learned ``[mask]`` vector that replaces the embeddings of hidden positions.

    The token is not a row of the item table, so it is never retrieved and never a
    softmax class.

    ``call(vectors, hidden)``: ``(batch, steps, dim)`` and ``(batch, steps)`` bool.
    Returns ``vectors`` with the hidden positions replaced.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import MaskToken
    >>> layer = MaskToken()
    >>> out = np.asarray(layer(np.ones((1, 3, 2), "float32"), np.array([[0, 0, 1]], bool)))
    >>> bool((out[0, :2] == 1).all()), bool((out[0, 2] == np.asarray(layer.token)).all())
    (True, True)
    """

    def build(self, vectors_shape, hidden_shape=None) -> None:
        self.token = self.add_weight(
            shape=(int(vectors_shape[-1]),),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
            name="token",
        )

    def call(self, vectors, hidden):
        hidden = ops.expand_dims(ops.cast(hidden, "bool"), -1)
        token = ops.cast(self.token, vectors.dtype)
        return ops.where(hidden, ops.broadcast_to(token, ops.shape(vectors)), vectors)

    def compute_output_shape(self, vectors_shape, hidden_shape=None):
        return tuple(vectors_shape)


@keras.saving.register_keras_serializable(package="sklattn")
class CatalogueSoftmaxLoss(keras.layers.Layer):
    """Full softmax cross-entropy of every labelled position over the whole catalogue.

    Position ``t`` scores every catalogue item by ``h_t . e_i`` with the item table
    itself (tied output embeddings; rows below ``FIRST_ID`` are never classes) and
    pays ``-log softmax(h_t . E)[label_t]``. Positions whose label is padding or the
    unseen id pay nothing.

    ``call(outputs, labels, items)``: ``(batch, steps, dim)``, int ids ``(batch,
    steps)`` and the item table ``(vocabulary_size, dim)``. Returns the per-row loss
    ``(batch,)`` (see the module's docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import CatalogueSoftmaxLoss
    >>> items = np.eye(4, dtype="float32")  # ids 2 and 3 are the catalogue
    >>> outputs = np.zeros((1, 2, 4), "float32")
    >>> loss = CatalogueSoftmaxLoss()(outputs, np.array([[0, 3]]), items)
    >>> round(float(loss[0]), 4)  # log(2) at one of two positions
    0.3466
    """

    def call(self, outputs, labels, items):
        catalogue = items[FIRST_ID:]
        logits = ops.matmul(outputs, ops.transpose(catalogue))  # (batch, steps, n_items)
        target = ops.clip(ops.cast(labels, "int32") - FIRST_ID, 0, ops.shape(catalogue)[0] - 1)
        picked = ops.take_along_axis(logits, ops.expand_dims(target, -1), axis=-1)[..., 0]
        return _per_row(ops.logsumexp(logits, axis=-1) - picked, labels)

    def compute_output_shape(self, outputs_shape, *shapes):
        return (outputs_shape[0],)


@keras.saving.register_keras_serializable(package="sklattn")
class BinaryNextItemLoss(keras.layers.Layer):
    """Binary cross-entropy of each labelled position against its item and one
    negative (SASRec's original loss).

    ``-log sigmoid(h_t . e_label) - log(1 - sigmoid(h_t . e_negative))`` at every
    position whose label is a catalogue item.

    ``call(outputs, positives, negatives, labels)``: ``(batch, steps, dim)`` three
    times (the label's and the negative's embeddings) and the int labels ``(batch,
    steps)``. Returns the per-row loss ``(batch,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import BinaryNextItemLoss
    >>> zeros = np.zeros((1, 1, 2), "float32")
    >>> loss = BinaryNextItemLoss()(zeros, zeros, zeros, np.array([[5]]))
    >>> round(float(loss[0]), 4)  # 2 log(2)
    1.3863
    """

    def call(self, outputs, positives, negatives, labels):
        positive = ops.sum(outputs * positives, axis=-1)
        negative = ops.sum(outputs * negatives, axis=-1)
        losses = ops.softplus(-positive) + ops.softplus(negative)
        return _per_row(losses, labels)

    def compute_output_shape(self, outputs_shape, *shapes):
        return (outputs_shape[0],)
