"""Keras inputs and shared embedding tables built from a :class:`Schema`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._backend import keras
from .._schema import Schema
from ..layers import Embedding, MaskedPooling, NumericEmbedding

ops = keras.ops


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
    inputs: list, schema: Schema, embedding_dim: int, l2: float = 0.0
) -> EmbeddedInputs:
    """Look up every id column in its vocabulary's table.

    All columns that share a vocabulary (a sequence and its candidate) are
    looked up in one call of one table, so the mini-batch aware penalty sees
    each id of the batch once.
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
        table = Embedding(schema.vocabulary_sizes[vocab], embedding_dim, l2=l2, name=f"emb_{vocab}")
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
                out.masks[name] = ops.not_equal(out.ids[name], 0)
            else:
                out.categorical[name] = vectors[:, start, :]
            start = stop
    return out


def field_names(schema: Schema) -> list[str]:
    """The fields of a factorisation-machine model, in the order of :func:`embed_fields`:
    categorical columns (candidates included), then sequences, then numeric columns."""
    return [*schema.categorical, *schema.sequences, *schema.numeric]


def embed_fields(inputs: list, schema: Schema, embedding_dim: int, *, l2: float = 0.0):
    """One vector per field, stacked: ``(batch, len(field_names(schema)), embedding_dim)``.

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
    return fields[0] if len(fields) == 1 else ops.concatenate(fields, axis=1)
