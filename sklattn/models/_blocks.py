"""Graph blocks that several models share.

A model module builds its graph from these blocks and :mod:`sklattn.layers`; it never
imports another model's module. Here: the Keras inputs of a schema and the shared
embedding tables (:func:`model_inputs`, :func:`embed_inputs`), the fields of the
factorisation machines (:func:`field_names`, :func:`embed_fields`), the candidate-
attended sequence groups (:func:`attended_groups`, :func:`group_inputs`,
:func:`check_candidates_present`), the ranking head (:func:`output_logit`), the
hyper-parameters of that head (:data:`HEAD_PARAMETERS`) and the tidy frame of
per-position weights (:func:`position_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._backend import keras
from .._data import as_frame
from .._schema import PAD_ID, Schema
from ..layers import MLP, Embedding, MaskedPooling, NumericEmbedding

ops = keras.ops

class _LayerWidths(Options):
    """A sequence of positive integers: the widths of an MLP's layers (may be empty).

    (An ``Options`` subclass because scikit-learn's validator accepts only its own
    constraint classes.)"""

    def __init__(self) -> None:
        super().__init__(object, set())

    def is_satisfied_by(self, val) -> bool:
        if isinstance(val, (str, bytes)) or not hasattr(val, "__iter__"):
            return False
        return all(
            isinstance(u, Integral) and not isinstance(u, bool) and u >= 1 for u in val
        )

    def __str__(self) -> str:
        return "a sequence of positive integers (layer widths)"


#: Constraint of an MLP's layer widths (``hidden_units``, ``attention_units``, ...).
LAYER_WIDTHS = _LayerWidths()

#: Constraints of the MLP head's hyper-parameters (``output_logit``).
HEAD_PARAMETERS: dict = {
    "hidden_units": [LAYER_WIDTHS],
    "activation": [StrOptions({"dice", "prelu", "relu", "sigmoid", "tanh", "gelu"})],
    "dropout": [Interval(Real, 0, 1, closed="left")],
}


def model_inputs(schema: Schema) -> list:
    """Keras inputs for a schema: integer ids first (if any), then floats (if any)."""
    inputs = []
    if schema.int_columns:
        inputs.append(keras.Input((len(schema.int_columns),), dtype="int32", name="ids"))
    if schema.numeric:
        inputs.append(keras.Input((len(schema.numeric),), dtype="float32", name="numeric"))
    return inputs


@dataclass
class EmbeddedInputs:
    """Embedded view of the model inputs.

    ``sequences[name]`` is ``(batch, steps, dim)`` with boolean mask
    ``masks[name]`` (True = real event); ``categorical[col]`` is
    ``(batch, dim)``; ``numeric`` is ``(batch, n_numeric)`` or None;
    ``ids[name]`` holds a sequence's int ids ``(batch, steps)``; ``tables[vocab]``
    is the embedding layer of a vocabulary.
    """

    sequences: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    categorical: dict = field(default_factory=dict)
    numeric: object = None
    tables: dict = field(default_factory=dict)


def embed_inputs(
    inputs: list, schema: Schema, embedding_dim: int, l2: float = 0.0, initializer=None
) -> EmbeddedInputs:
    """Look up every id column in its vocabulary's table.

    All columns that share a vocabulary (a sequence and its candidate) are
    looked up in one call of one table, so the mini-batch aware penalty sees
    each id of the batch once. ``initializer`` initialises every table (None: the
    :class:`~sklattn.layers.Embedding` default).
    """
    out = EmbeddedInputs()
    position = {c: i for i, c in enumerate(schema.int_columns)}
    ids = inputs[0] if schema.int_columns else None
    if schema.numeric:
        out.numeric = inputs[-1]

    members: dict[str, list[tuple[str, str, list[str]]]] = {}
    for name, (cols, vocab) in schema.sequences.items():
        members.setdefault(vocab, []).append(("sequence", name, cols))
    for col, vocab in schema.categorical.items():
        members.setdefault(vocab, []).append(("categorical", col, [col]))

    for vocab, parts in members.items():
        table = Embedding(
            schema.vocabulary_sizes[vocab], embedding_dim, l2=l2,
            embeddings_initializer=initializer, name=f"emb_{vocab}",
        )
        # The estimator reads the tables through these references (id frequencies of
        # the mini-batch aware penalty, MIND's item vectors), never by layer name.
        out.tables[vocab] = table
        index = [position[c] for _, _, cols in parts for c in cols]
        vocab_ids = ops.take(ids, index, axis=1)
        vectors = table(vocab_ids)
        start = 0
        for kind, name, cols in parts:
            stop = start + len(cols)
            if kind == "sequence":
                out.sequences[name] = vectors[:, start:stop, :]
                out.ids[name] = vocab_ids[:, start:stop]
                out.masks[name] = ops.not_equal(out.ids[name], PAD_ID)
            else:
                out.categorical[name] = vectors[:, start, :]
            start = stop
    return out


def field_names(schema: Schema) -> list[str]:
    """The fields of a factorisation-machine model, in the order of :func:`embed_fields`:
    categorical columns (candidates included), then sequences, then numeric columns."""
    return [*schema.categorical, *schema.sequences, *schema.numeric]


def embed_fields(inputs: list, schema: Schema, embedding_dim: int, *, l2: float = 0.0):
    """One vector per field, stacked: ``(batch, len(field_names(schema)), embedding_dim)``,
    and the :class:`EmbeddedInputs` they come from (its ``tables``).

    A categorical column is its embedding; a behaviour sequence is the mean of its
    valid behaviours' embeddings (the multi-hot field of a factorisation machine with
    weights ``1 / length``; an empty history is the zero vector); a numeric column
    ``x_k`` is ``x_k * v_k`` with a learned ``v_k``. Asked for ``embedding_dim + 1``
    columns, the last one serves as the field's linear term ``w_i x_i`` (one lookup
    gives both).
    """
    emb = embed_inputs(inputs, schema, embedding_dim, l2=l2)
    fields = [ops.expand_dims(emb.categorical[c], 1) for c in schema.categorical]
    for name in schema.sequences:
        pooled = MaskedPooling("mean", name=f"mean_pooling_{name}")(
            emb.sequences[name], emb.masks[name]
        )
        fields.append(ops.expand_dims(pooled, 1))
    if schema.numeric:
        numeric = NumericEmbedding(len(schema.numeric), embedding_dim, name="numeric_embedding")
        fields.append(numeric(emb.numeric))
    stacked = fields[0] if len(fields) == 1 else ops.concatenate(fields, axis=1)
    return stacked, emb


def attended_groups(schema: Schema) -> list[tuple[list[str], list[str]]]:
    """Sequences that have their candidate column, grouped by length.

    Sequences of equal length are aligned position by position (the encoder
    pads them together), so ``{"hist_item": "item", "hist_cat": "cat"}`` forms
    one group whose behaviour ``t`` is ``[item_t, cat_t]`` and whose query is
    ``[item, cat]``. Returns ``[(sequence names, candidate columns), ...]``.
    """
    groups: dict[int, tuple[list[str], list[str]]] = {}
    for name, (cols, vocab) in schema.sequences.items():
        if vocab in schema.categorical:
            names, cands = groups.setdefault(len(cols), ([], []))
            names.append(name)
            cands.append(vocab)
    return list(groups.values())


def group_inputs(emb: EmbeddedInputs, names: list[str], cands: list[str]):
    """``(behaviours, query, valid)`` of one attended group: the aligned sequences'
    embeddings concatenated per step, the candidates' concatenated, and the steps where
    any of the sequences has a real event."""
    behaviours = ops.concatenate([emb.sequences[n] for n in names], axis=-1)
    query = ops.concatenate([emb.categorical[c] for c in cands], axis=-1)
    valid = emb.masks[names[0]]
    for n in names[1:]:
        valid = ops.logical_or(valid, emb.masks[n])
    return behaviours, query, valid


def output_logit(emb: EmbeddedInputs, features: list, attended: set, candidates: set, *,
                 hidden_units, activation: str, dropout: float):
    """The ranking head: ``features`` plus mean-pooled unattended sequences, the other
    categorical embeddings and the numeric features, through the MLP to one logit."""
    for name, seq in emb.sequences.items():
        if name not in attended:  # no candidate to attend with: mean of the behaviours
            pooling = MaskedPooling("mean", name=f"mean_pooling_{name}")
            features.append(pooling(seq, emb.masks[name]))
    features += [v for c, v in emb.categorical.items() if c not in candidates]
    if emb.numeric is not None:
        features.append(emb.numeric)
    x = features[0] if len(features) == 1 else ops.concatenate(features, axis=-1)
    x = MLP(hidden_units, activation=activation, dropout=dropout, name="mlp")(x)
    return keras.layers.Dense(1, name="logit")(x)


def check_candidates_present(estimator, schema: Schema, absent) -> None:
    """Raise if a candidate column that a model attends with is missing from X."""
    needed = [c for _, cands in attended_groups(schema) for c in cands if c in absent]
    if needed:
        raise ValueError(
            f"{type(estimator).__name__} scores behaviours against the candidate, but the "
            f"candidate columns {needed} are missing from X."
        )


def position_weights(estimator, X, output: str = "attention") -> pd.DataFrame:
    """Tidy frame of the per-position weights of a fitted model's extra output.

    The output ``estimator._extra_models[output]`` returns ``{sequence name: (batch,
    steps) weights}``; the frame has one row per (input row, valid behaviour): ``row``
    (X's index label), ``sequence``, ``position`` (1 = oldest), ``item`` (encoded id),
    ``weight``.
    """
    check_is_fitted(estimator, "model_")
    if output not in estimator._extra_models:
        raise ValueError("This model has no attended sequence (no candidate column).")
    X = as_frame(X)
    if not isinstance(X, pd.DataFrame):
        raise TypeError("X must be a pandas DataFrame of encoded rows.")
    outputs = estimator._extra_outputs(X, output)
    index = np.asarray(X.index)
    frames = []
    for seq, w in outputs.items():
        items = X[estimator.schema_.sequences[seq][0]].to_numpy(dtype=np.int64)
        r, t = np.nonzero(items != PAD_ID)
        frames.append(
            pd.DataFrame(
                {
                    "row": index[r],
                    "sequence": seq,
                    "position": t + 1,
                    "item": items[r, t],
                    "weight": w[r, t].astype(np.float64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
