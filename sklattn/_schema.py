"""The column contract between the encoder and the models.

One place says what an encoded column is: the id conventions (:data:`PAD_ID`,
:data:`OOV_ID`, :data:`FIRST_ID`), the roles of the columns (:class:`Schema`) and
where each role sits in the id matrix a model reads. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

#: Key of the schema in the ``attrs`` of a SequenceEncoder's output.
SCHEMA_ATTR = "sklattn_schema"

PAD_ID = 0
"""Id of padding and of missing values."""
OOV_ID = 1
"""Id of values not seen (or rarer than ``min_frequency``) when the encoder was fitted."""
FIRST_ID = 2
"""Id of the first real value of a vocabulary: value ``k`` of a vocabulary has id
``k + FIRST_ID``, so a vocabulary of ``n`` values has ``n + FIRST_ID`` ids."""

TIME_GAP = "time_gap"
"""Vocabulary of the bucketised time gaps (id ``FIRST_ID + bucket``) that every time-gap
sequence shares, and the name of their candidate column (the candidate's gap is 0)."""


@dataclass
class Schema:
    """Roles of encoded columns.

    Parameters
    ----------
    sequences : dict
        Sequence name -> (ordered column names, vocabulary name). Columns run
        from the oldest to the most recent event; id 0 is padding.
    categorical : dict
        Categorical column -> vocabulary name. A sequence's candidate column
        uses the vocabulary named after itself.
    numeric : list of str
        Float columns.
    vocabulary_sizes : dict
        Vocabulary name -> number of ids (padding and out-of-vocabulary ids
        included).
    time_gaps : dict
        Time-gap sequence name -> the behaviour sequence whose time gaps it holds
        (``{"hist_item_gap": "hist_item"}``). A time-gap sequence is an ordinary
        sequence of :attr:`sequences` (aligned with its behaviour sequence, bucket ids
        of the vocabulary ``"time_gap"``); this says which sequences are time signals
        rather than behaviours, for a model that uses them as positions.
    group : str or None
        The request column of a table of candidate lists (one row per request and
        candidate): int64 codes, equal within a request, read by list-wise models and
        never a feature. None for row-wise data.
    rank : str or None
        The initial rank of each row within its request (1 = top), float64; a list-wise
        model orders each request by it. Never a feature. None: the rows' order within a
        request is the initial ranking.
    """

    sequences: dict[str, tuple[list[str], str]] = field(default_factory=dict)
    categorical: dict[str, str] = field(default_factory=dict)
    numeric: list[str] = field(default_factory=list)
    vocabulary_sizes: dict[str, int] = field(default_factory=dict)
    time_gaps: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    rank: str | None = None

    @property
    def int_columns(self) -> list[str]:
        """Columns of the id matrix, in order: every sequence's columns, then the
        categorical columns."""
        cols = [c for seq_cols, _ in self.sequences.values() for c in seq_cols]
        return cols + list(self.categorical)

    @property
    def column_vocabularies(self) -> list[str]:
        """The vocabulary of each column of the id matrix (aligned with :attr:`int_columns`)."""
        vocabs = [vocab for cols, vocab in self.sequences.values() for _ in cols]
        return vocabs + list(self.categorical.values())

    def positions(self, columns: Iterable[str]) -> list[int]:
        """Positions of ``columns`` in the id matrix, in the order given."""
        index = {c: i for i, c in enumerate(self.int_columns)}
        return [index[c] for c in columns]

    def vocabulary_positions(self, vocabulary: str) -> list[int]:
        """Positions of every id-matrix column that draws on ``vocabulary``."""
        return [i for i, v in enumerate(self.column_vocabularies) if v == vocabulary]

    def sequence_positions(self, name: str, *, with_candidate: bool = False) -> list[int]:
        """Positions of sequence ``name``'s columns (oldest first) and, with
        ``with_candidate`` and when it is a column, of its candidate last."""
        cols, vocab = self.sequences[name]
        if with_candidate and vocab in self.categorical:
            cols = [*cols, vocab]
        return self.positions(cols)

    def candidate_of(self, name: str) -> str | None:
        """The candidate column of sequence ``name``, or None when X has no such column."""
        vocab = self.sequences[name][1]
        return vocab if self.categorical.get(vocab) == vocab else None

    @property
    def list_columns(self) -> list[str]:
        """The group and rank columns that are set (never features)."""
        return [c for c in (self.group, self.rank) if c is not None]

    @property
    def columns(self) -> list[str]:
        """Every column: the id matrix's, the numeric matrix's, then the list columns."""
        return self.int_columns + list(self.numeric) + self.list_columns

    @property
    def candidate_columns(self) -> list[str]:
        """Categorical columns that serve as the candidate of some sequence."""
        vocabs = {vocab for _, vocab in self.sequences.values()}
        return [c for c, v in self.categorical.items() if v in vocabs and c == v]

    def to_dict(self) -> dict:
        return {
            "sequences": {k: {"columns": list(c), "vocabulary": v}
                          for k, (c, v) in self.sequences.items()},
            "categorical": dict(self.categorical),
            "numeric": list(self.numeric),
            "vocabulary_sizes": dict(self.vocabulary_sizes),
            "time_gaps": dict(self.time_gaps),
            "group": self.group,
            "rank": self.rank,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        return cls(
            sequences={k: (list(v["columns"]), v["vocabulary"]) for k, v in d["sequences"].items()},
            categorical=dict(d["categorical"]),
            numeric=list(d["numeric"]),
            vocabulary_sizes=dict(d["vocabulary_sizes"]),
            # Absent from the dicts of encoders fitted before time gaps existed.
            time_gaps=dict(d.get("time_gaps", {})),
            group=d.get("group"),
            rank=d.get("rank"),
        )

    def __setstate__(self, state: dict) -> None:
        # A Schema pickled (inside an encoder or a model) before a field existed loads
        # with that field's default.
        defaults = {"time_gaps": {}, "group": None, "rank": None}
        self.__dict__.update({**defaults, **state})


class VocabularyLabels(Mapping):
    """Original values of each vocabulary: ``labels[vocab][k]`` is the value of id
    ``k + FIRST_ID``.

    A :class:`~sklattn.SequenceEncoder` puts one of these in the ``attrs`` of its
    output (key ``"labels"`` of the schema), so that a model downstream in a
    Pipeline can answer in original values (e.g. a retriever's top-N items). pandas
    deep-copies ``attrs`` on most operations; this object is read-only and copies
    as itself, so that costs nothing even for a catalogue of millions of items.
    """

    def __init__(self, vocabularies: Mapping[str, np.ndarray]) -> None:
        self._vocabularies = dict(vocabularies)

    def __getitem__(self, vocab: str) -> np.ndarray:
        return self._vocabularies[vocab]

    def __iter__(self) -> Iterator[str]:
        return iter(self._vocabularies)

    def __len__(self) -> int:
        return len(self._vocabularies)

    def __copy__(self) -> VocabularyLabels:
        return self

    def __deepcopy__(self, memo) -> VocabularyLabels:
        return self

    __eq__ = object.__eq__
    __hash__ = object.__hash__
