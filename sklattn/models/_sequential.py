"""What the next-item retrievers SASRec and BERT4Rec share.

Both read one behaviour sequence (``hist_item_1..N``, oldest first, left-padded) and
optionally its target column (``item``), encode it with a stack of transformer blocks
over item embeddings plus learned positions, and score items by the inner product of
a position's output with the item table itself (tied input and output embeddings).
Here: the training sequence of a row (:func:`training_sequence`), the transformer stack
a model's training and serving graphs share (:class:`TransformerStack`), the three
per-position losses (:func:`next_item_loss`), and the estimator base
(:class:`SequentialRetriever`) with everything but the graph function and the
parameter list. See ``docs/sasrec.md`` and ``docs/bert4rec.md``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._backend import keras
from .._schema import FIRST_ID, PAD_ID, Schema
from ..base import BaseKerasEstimator
from ..layers import (
    BinaryNextItemLoss,
    CandidateSampler,
    CatalogueSoftmaxLoss,
    NegativeSampler,
    PositionEmbedding,
    SampledSoftmaxLoss,
    TransformerBlock,
)
from ._retrieval import BaseRetriever, behaviour_sequences, per_row_loss, retrieval_roles

ops = keras.ops

__all__ = [
    "LOSSES",
    "SequentialRetriever",
    "TransformerStack",
    "next_item_loss",
    "offset_seed",
    "training_sequence",
]

#: The training losses of the next-item models.
LOSSES = ("softmax", "sampled", "bce")


def offset_seed(seed: int | None, offset: int) -> int | None:
    """A distinct seed for each random layer of one graph (None stays None)."""
    return None if seed is None else (seed + offset) % (2**31 - 1)


def training_sequence(ids, schema: Schema):
    """Each row's training sequence ``(batch, N + 1)``: the history, then the target as
    the newest item, left-padded.

    A row whose target is padding (X without the target column, or a schema without
    one) is the history shifted right by one padding position instead, so that the
    newest item always sits at the last position.
    """
    name, _, target = retrieval_roles(schema)
    history = ops.take(ids, schema.sequence_positions(name), axis=1)
    shifted = ops.concatenate([ops.zeros_like(history[:, :1]), history], axis=1)
    if target is None:
        return shifted
    (position,) = schema.positions([target])
    newest = ids[:, position : position + 1]
    return ops.where(
        ops.not_equal(newest, PAD_ID), ops.concatenate([history, newest], axis=1), shifted
    )


class TransformerStack:
    """The layers a model's training and serving graphs share: learned positions, the
    transformer blocks and the output head, applied to item vectors.

    ``stack(vectors, valid, last_only=False)``: ``(batch, steps, dim)`` and ``(batch,
    steps)`` bool. Returns the per-position outputs ``(batch, steps, dim)``, or with
    ``last_only`` the newest position's ``(batch, 1, dim)`` (the last block computes
    only that query, the same values as the full call's last position); with ``select``
    ``(batch, q, steps)`` (one-hot rows) the selected positions' ``(batch, q, dim)``,
    ``select @`` the full output, the last block computing only those. The item vectors are
    multiplied by ``scale``, the position vectors added, then optionally layer
    normalised (BERT's embedding norm), dropped out and passed through the blocks and
    the head layers.
    """

    def __init__(
        self,
        steps: int,
        dim: int,
        *,
        n_blocks: int,
        n_heads: int,
        dropout: float,
        causal: bool,
        norm_first: bool,
        activation: str,
        ff_units: int,
        scale: float,
        input_norm: bool,
        head: list,
    ) -> None:
        self.scale = float(scale)
        self.positions = PositionEmbedding(steps, dim, name="positions")
        self.input_norm = (
            keras.layers.LayerNormalization(epsilon=1e-6, name="input_norm")
            if input_norm else None
        )
        self.dropout = keras.layers.Dropout(dropout, name="input_dropout")
        self.blocks = [
            TransformerBlock(
                n_heads=n_heads, ff_units=ff_units, activation=activation, dropout=dropout,
                causal=causal, norm_first=norm_first, name=f"transformer_{i}",
            )
            for i in range(n_blocks)
        ]
        self.head = list(head)

    def __call__(self, vectors, valid, last_only: bool = False, select=None):
        x = vectors * self.scale if self.scale != 1.0 else vectors
        x = x + self.positions(vectors)
        if self.input_norm is not None:
            x = self.input_norm(x)
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x = block(x, valid, last_only=last_only and last, select=select if last else None)
        for layer in self.head:
            x = layer(x)
        return x


def next_item_loss(outputs, labels, table, *, loss: str, n_negatives: int,
                   seed: int | None) -> tuple:
    """Each row's loss of the per-position ``outputs`` against their ``labels``.

    ``labels`` are item ids ``(batch, steps)``; a position whose label is padding or
    the unseen id pays nothing. Every loss scores items with the rows of ``table``
    (tied output embeddings):

    * ``"softmax"``: full cross-entropy over the catalogue
      (:class:`~sklattn.layers.CatalogueSoftmaxLoss`);
    * ``"sampled"``: sampled softmax against ``n_negatives`` items drawn per batch
      (shared by every position), logQ-corrected, accidental hits removed
      (:class:`~sklattn.layers.CandidateSampler`,
      :class:`~sklattn.layers.SampledSoftmaxLoss`);
    * ``"bce"``: binary cross-entropy against one negative per position, drawn
      uniformly and never equal to the label (:class:`~sklattn.layers.NegativeSampler`,
      :class:`~sklattn.layers.BinaryNextItemLoss`).

    Returns ``(loss (batch,), samplers)``, the samplers by name for
    ``Graph.layers``.
    """
    size = table.input_dim
    if loss == "softmax":
        return CatalogueSoftmaxLoss(name="softmax_loss")(outputs, labels, table.embeddings), {}
    if loss == "bce":
        sampler = NegativeSampler(size, seed=seed, name="negative_sampler")
        negatives, _ = sampler(labels)
        out = BinaryNextItemLoss(name="bce_loss")(
            outputs, table(labels), table(negatives), labels
        )
        return out, {"negative_sampler": sampler}
    steps, dim = outputs.shape[1], outputs.shape[2]
    flat_labels = ops.reshape(labels, (-1,))
    sampler = CandidateSampler(size, n_negatives, seed=seed, name="candidate_sampler")
    negatives, negative_log_q, target_log_q = sampler(flat_labels)
    losses = SampledSoftmaxLoss(name="sampled_softmax")(
        ops.reshape(outputs, (-1, dim)), table(flat_labels), table(negatives), flat_labels,
        negatives, target_log_q, negative_log_q,
    )
    labelled = ops.cast(ops.greater_equal(labels, FIRST_ID), losses.dtype)
    out = ops.sum(ops.reshape(losses, (-1, steps)) * labelled, axis=1) / float(steps)
    return out, {"candidate_sampler": sampler}


class SequentialRetriever(BaseRetriever):
    """Base of the next-item retrievers: roles, sampling tables, user vectors.

    A subclass lists its parameters in ``__init__`` and implements ``_build_graph``
    with a graph whose ``extras`` hold ``"user_vector"`` (inputs -> ``(batch, dim)``)
    and ``"positions"`` (inputs -> the per-position outputs at serving).
    """

    _parameter_constraints: dict = {
        **BaseKerasEstimator._parameter_constraints,
        "n_blocks": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "loss": [StrOptions(set(LOSSES))],
        "n_negatives": [Interval(Integral, 1, None, closed="left")],
        "negative_sampling": [StrOptions({"frequency", "uniform"})],
        "top_n": [Interval(Integral, 1, None, closed="left")],
        "exclude_seen": ["boolean"],
        "index": [StrOptions({"brute", "faiss"})],
        "index_options": [dict, None],
    }

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.embedding_dim % self.n_heads:
            raise ValueError(
                f"embedding_dim={self.embedding_dim} must be a multiple of n_heads="
                f"{self.n_heads} (each attention head has embedding_dim / n_heads "
                "dimensions)."
            )

    def _graph_seed(self) -> int | None:
        seed = self._seed()
        return None if seed is None else seed % (2**31 - 1)

    def _loss(self):
        return per_row_loss

    def _serving_model(self) -> keras.Model:
        return self._extra_models["user_vector"]

    def _check_roles(self, schema: Schema, absent, *, training: bool) -> None:
        name = type(self).__name__
        sequences = behaviour_sequences(schema)
        if not sequences:
            raise ValueError(
                f"{name} reads one behaviour sequence, but X has none. Encode X with "
                "SequenceEncoder(sequences={'hist_item': 'item'}), or name the encoded "
                f"columns: {name}(sequences={{'hist_item': 'item'}})."
            )
        if len(sequences) != 1:
            raise ValueError(
                f"{name} reads one behaviour sequence, but X has {len(sequences)} "
                f"sequences {sequences}."
            )
        if training:
            sequence, _, target = retrieval_roles(schema)
            steps = len(schema.sequences[sequence][0])
            if target is not None and target not in absent:
                steps += 1
            if steps < 2:
                raise ValueError(
                    f"{name} learns which item follows which, but the rows hold one item "
                    f"each (sequence {sequence!r} has {steps} column and no target "
                    "column): give it at least two events per row."
                )

    def _set_data_statistics(self, ids, targets, weights) -> None:
        super()._set_data_statistics(ids, targets, weights)
        _, vocab, _ = retrieval_roles(self.schema_)
        size = self.schema_.vocabulary_sizes[vocab]
        if "negative_sampler" in self._layers:  # "bce": uniform negatives
            self._layers["negative_sampler"].set_distribution(np.ones(size))
        if "candidate_sampler" in self._layers:
            sampler = self._layers["candidate_sampler"]
            if self.negative_sampling == "uniform":
                sampler.set_distribution(np.ones(size))
            else:
                columns = self.schema_.vocabulary_positions(vocab)
                sampler.set_distribution(np.bincount(ids[:, columns].ravel(), minlength=size))

    # -------------------------------------------------------------- serving
    def _user_vectors(self, ids, floats) -> tuple[np.ndarray, np.ndarray]:
        out = np.asarray(self._predict_fn(*[a for a in (ids, floats) if a is not None]))
        return out[:, None, :], np.ones((len(out), 1), dtype=bool)

    def transform(self, X) -> np.ndarray:
        """The user vector of each row: the output at the position that predicts the
        next item.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows; the target column may be absent (it is never read).

        Returns
        -------
        ndarray of shape (n_samples, embedding_dim), float32
            An item's score for the row is its inner product with this vector.
        """
        vectors, _ = self._encode(X)
        return vectors[:, 0, :]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``{class name in lower case}{j}`` for dimension ``j`` of the user vector."""
        check_is_fitted(self, "model_")
        prefix = type(self).__name__.lower()
        return np.array([f"{prefix}{j}" for j in range(self.embedding_dim)], dtype=object)

    def _position_outputs(self, X) -> np.ndarray:
        """The output at every position of the serving sequence, ``(n_samples, steps,
        embedding_dim)``; the user vector is ``[:, -1, :]``."""
        return self._extra_outputs(X, "positions")
