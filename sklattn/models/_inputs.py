"""Keras inputs and shared embedding tables built from a :class:`Schema`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._backend import keras
from .._schema import Schema
from ..layers import Embedding

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
