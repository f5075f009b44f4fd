"""What every retriever shares: the catalogue, top-N search, and the sklearn API.

A retriever encodes each row (a user's history) into one or several user vectors and
retrieves the items whose vectors have the largest inner product. MIND (several
interest vectors per row), SASRec and BERT4Rec (one vector per row) derive from
:class:`BaseRetriever`, which owns the catalogue (``item_labels_``, ``item_vectors``),
the search index (exact or faiss, :mod:`._search`), ``retrieve`` / ``predict`` /
``score`` and the pickling of the index. A retriever implements ``_build_graph``,
``_check_roles`` and ``_user_vectors``; by default its item vectors are the rows of
its item embedding table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import TransformerMixin
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._backend import keras
from .._data import absent_columns, require_frame, vocabulary_labels
from .._schema import FIRST_ID, Schema
from ..base import BaseKerasEstimator
from ..metrics import hit_rate_at_k
from ._search import check_top_n, make_index

__all__ = [
    "BaseRetriever",
    "behaviour_sequences",
    "label_array",
    "per_row_loss",
    "retrieval_roles",
]


@keras.saving.register_keras_serializable(package="sklattn")
def per_row_loss(y_true, y_pred):
    """The model's output is already each row's loss: Keras averages it (with weights)."""
    return y_pred


def behaviour_sequences(schema: Schema) -> list[str]:
    """The schema's behaviour sequences: every sequence but the time-gap sequences
    (:attr:`~sklattn.Schema.time_gaps`), which a retriever does not read."""
    gaps = getattr(schema, "time_gaps", None) or {}
    return [name for name in schema.sequences if name not in gaps]


def retrieval_roles(schema: Schema) -> tuple[str, str, str | None]:
    """(sequence name, its vocabulary, the target column or None) of a schema with one
    behaviour sequence."""
    (name,) = behaviour_sequences(schema)
    return name, schema.sequences[name][1], schema.candidate_of(name)


_LABEL_DTYPES = {
    "integer": np.int64,
    "floating": np.float64,
    "mixed-integer-float": np.float64,
    "boolean": np.bool_,
}


def label_array(values) -> np.ndarray:
    """The catalogue's labels in their own dtype: numbers (and booleans) as a numeric
    array, anything else (strings, mixed types) as objects.

    The encoder keeps its vocabularies as object arrays; converted here, ``predict``
    returns ``int64`` items for integer item ids, as a scikit-learn user expects.
    """
    values = np.asarray(values, dtype=object)
    dtype = _LABEL_DTYPES.get(pd.api.types.infer_dtype(values, skipna=False))
    if dtype is not None:
        try:
            converted = values.astype(dtype)
        except (OverflowError, TypeError, ValueError):  # e.g. ints beyond int64
            return values
        if (converted.astype(object) == values).all():  # lossless only
            return converted
    return values


class BaseRetriever(TransformerMixin, BaseKerasEstimator):
    """Base class of sklattn's retrievers: top-N items by inner product.

    Subclasses need the parameters ``top_n``, ``exclude_seen``, ``index`` and
    ``index_options`` (documented as in :class:`~sklattn.MINDRetriever`) and implement:

    * ``_user_vectors(ids, floats) -> (vectors, mask)``: each row's user vectors
      ``(n, K, dim)`` and which of them are valid ``(n, K)`` (``K = 1`` for a
      single-vector model); an item's score is its best inner product with a valid
      vector.
    * optionally ``_item_vectors() -> (n_items, dim)``: the vectors of the catalogue in
      the order of ``item_labels_`` (default: the item embedding table's rows).
    """

    _requires_dataframe = True

    def _user_vectors(self, ids, floats) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _item_vectors(self) -> np.ndarray:
        table = self._tables[self._vocab]
        return np.asarray(table.embeddings)[FIRST_ID:].astype(np.float32)

    def _after_fit(self, X, *, reset: bool, targets, weights) -> None:
        super()._after_fit(X, reset=reset, targets=targets, weights=weights)
        if reset:
            self.sequence_, self._vocab, self.target_ = retrieval_roles(self.schema_)
            size = self.schema_.vocabulary_sizes[self._vocab]
            labels = vocabulary_labels(X)
            if labels is not None and self._vocab in labels:
                self.item_labels_ = label_array(labels[self._vocab][: size - FIRST_ID])
            else:
                self.item_labels_ = np.arange(FIRST_ID, size, dtype=np.int64)
        self.item_embeddings_ = self._item_vectors()
        # Built now, not on the first search: serving never changes the estimator.
        self._build_index()

    def _encode(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``_user_vectors`` of every row of ``X``, chunked."""
        check_is_fitted(self, "model_")
        X = require_frame(self, X)
        chunks = self._run_chunks(X, self._user_vectors)
        return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])

    # ----------------------------------------------------------------- index
    def _index_key(self) -> tuple:
        return self.index, dict(self.index_options or {})

    def _build_index(self) -> None:
        self._index = make_index(
            self.index, self.item_embeddings_, self.index_options, seed=self._seed() or 0
        )
        self._built_index_key = self._index_key()

    def _get_index(self):
        if getattr(self, "_index", None) is None or (
            getattr(self, "_built_index_key", None) != self._index_key()
        ):
            self._build_index()  # index or index_options changed since fit
        return self._index

    def _n_retrieved(self, top_n) -> int:
        """Items per row for a request of ``top_n``: at most what every row is
        guaranteed to have (see the ``top_n`` parameter)."""
        top_n = check_top_n(top_n)
        n_items = len(self.item_labels_)
        if not self.exclude_seen:
            return min(top_n, n_items)
        history = len(self.schema_.sequence_positions(self.sequence_))
        if n_items <= history:
            raise ValueError(
                f"exclude_seen=True, but a history of {history} items can hold the whole "
                f"catalogue of {n_items} items, so no item is guaranteed to remain for a "
                "row; set exclude_seen=False."
            )
        return min(top_n, n_items - history)

    def _search(self, X, top_n) -> tuple[np.ndarray, np.ndarray]:
        """Item positions (rows of ``item_embeddings_``) and scores of every row."""
        check_is_fitted(self, "model_")
        X = require_frame(self, X)
        top_n = self._n_retrieved(top_n)
        index = self._get_index()
        history = self.schema_.sequence_positions(self.sequence_)

        def run(ids, floats):
            vectors, mask = self._user_vectors(ids, floats)
            exclude = None
            if self.exclude_seen:
                # Rows of item_embeddings_; padding and unseen ids become -1 (no item).
                exclude = ids[:, history].astype(np.int64) - FIRST_ID
                exclude[exclude < 0] = -1
            return index.search(vectors, mask, top_n, exclude)

        chunks = self._run_chunks(X, run)
        positions = np.concatenate([c[0] for c in chunks])
        scores = np.concatenate([c[1] for c in chunks])
        # Every row has top_n items with finite scores unless the vectors are not finite.
        bad = (positions < 0).any(axis=1) | ~np.isfinite(scores).all(axis=1)
        if bad.any():
            raise FloatingPointError(
                f"{type(self).__name__} could not rank {top_n} items with finite scores for "
                f"{int(bad.sum())} row(s): the user or item vectors are not finite "
                "(the model has diverged; lower learning_rate)."
            )
        return positions, scores

    # ------------------------------------------------------------------- API
    def retrieve(self, X, top_n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top items of each row with their scores.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows; the target column may be absent.
        top_n : int, default=None
            Number of items (an int >= 1; anything else raises a ``ValueError``);
            ``self.top_n`` when None. Capped at the number of items every row is
            guaranteed to have: ``len(item_labels_)``, minus the history length
            when ``exclude_seen=True`` (see the ``top_n`` parameter).

        Returns
        -------
        items : ndarray of shape (n_samples, n_retrieved)
            Item labels, best first, in the dtype of ``item_labels_``;
            ``n_retrieved`` is ``top_n`` after the cap.
        scores : ndarray of shape (n_samples, n_retrieved), float32
            Each item's best inner product with a valid user vector; always finite.
        """
        positions, scores = self._search(X, self.top_n if top_n is None else top_n)
        return self.item_labels_[positions], scores

    def predict(self, X) -> np.ndarray:
        """The ``top_n`` retrieved items of each row, best first.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows; the target column may be absent.

        Returns
        -------
        ndarray of shape (n_samples, n_retrieved)
            Item labels (``item_labels_`` values, in their dtype). ``n_retrieved`` is
            ``top_n`` capped at ``len(item_labels_)``, minus the history length when
            ``exclude_seen=True``: every row has that many items.
        """
        return self.retrieve(X)[0]

    def score(self, X, y=None, sample_weight=None) -> float:
        """Hit rate at ``top_n``: the fraction of rows whose target item is retrieved.

        ``top_n`` is capped as in :meth:`predict`.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows with the target column (e.g. held-out next items).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows.

        Returns
        -------
        float
        """
        check_is_fitted(self, "model_")
        X = require_frame(self, X)
        if self.target_ is None or self.target_ not in X.columns or (
            self.target_ in absent_columns(X)
        ):
            raise ValueError(
                f"score needs the target column {self._vocab!r} in X (the item to "
                "retrieve)."
            )
        positions, _ = self._search(X, self.top_n)
        targets = X[self.target_].to_numpy(dtype=np.int64) - FIRST_ID
        targets[targets < 0] = -1  # padding or unseen: never a hit
        if sample_weight is None:
            return hit_rate_at_k(targets, positions)
        hits = (positions == targets[:, None]).any(axis=1)
        return float(np.average(hits, weights=_check_sample_weight(sample_weight, hits)))

    # ---------------------------------------------------------- persistence
    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_index", None)  # a faiss index does not pickle: rebuilt on load
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        # The index is rebuilt by the first search, not here: loading a faiss model to
        # call transform needs no faiss, and a load costs no index training.
        self._index = None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a DataFrame of encoded columns (a SequenceEncoder's output, or integer
        # ids named in ``sequences``): integer-coded categorical ids, no plain 2-D
        # arrays, no strings, no NaN (0 is padding), not sparse. scikit-learn's own
        # checks build numeric arrays, so with two_d_array=False it generates only
        # check_estimator_cloneable; each retriever's tests run the array-free checks
        # and the rest of the contract on encoded frames.
        tags.input_tags.two_d_array = False
        tags.input_tags.categorical = True
        tags.input_tags.string = False
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.target_tags.required = False
        # transform returns float32 user vectors whatever the input dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags
