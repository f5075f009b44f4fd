"""Ranking metrics: top-N retrieval (hit rate, recall, NDCG at k) and list-wise re-ranking.

The retrieval metrics (:func:`hit_rate_at_k`, :func:`recall_at_k`, :func:`ndcg_at_k`)
compare ranked lists of predicted items with the relevant items of each row. The
list-wise metrics (:func:`listwise_ndcg_score`, :func:`listwise_map_score`,
:func:`listwise_precision_score`) score a re-ranking dataset, one row per (request,
candidate): the rows of a request are ranked by the model's score and compared with
their labels, and the per-request values are averaged. :func:`make_listwise_scorer`
wraps them as a scikit-learn scorer for ``GridSearchCV`` and ``cross_val_score``.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np

__all__ = [
    "hit_rate_at_k",
    "listwise_map_score",
    "listwise_ndcg_score",
    "listwise_precision_score",
    "make_listwise_scorer",
    "ndcg_at_k",
    "recall_at_k",
]


def _relevance(y_true, y_pred, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``hits[i, r]``: the item ranked ``r`` for row ``i`` is relevant; ``n_relevant[i]``."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim != 2:
        raise ValueError(
            f"y_pred must be 2-D (n_samples, n_ranked) ranked lists; got shape {y_pred.shape}."
        )
    n = y_pred.shape[0]
    if k is not None:
        if int(k) < 1:
            raise ValueError(f"k must be a positive integer; got {k!r}.")
        y_pred = y_pred[:, : int(k)]
    if len(y_true) != n:
        raise ValueError(
            f"y_true and y_pred have inconsistent numbers of samples: {len(y_true)} != {n}."
        )
    first = y_true[0] if n else None
    if n and isinstance(first, (Sequence, set, frozenset, np.ndarray)) and not isinstance(
        first, str
    ):
        sets = [set(np.asarray(list(t)).tolist()) for t in y_true]
        hits = np.array([[item in s for item in row] for row, s in
                         zip(y_pred.tolist(), sets, strict=True)], dtype=bool).reshape(y_pred.shape)
        n_relevant = np.array([len(s) for s in sets], dtype=np.float64)
    else:
        truth = np.asarray(y_true)
        if truth.ndim != 1:
            raise ValueError("y_true must hold one item per row or one collection per row.")
        hits = y_pred == truth[:, None]
        n_relevant = np.ones(n, dtype=np.float64)
    return hits, n_relevant


def hit_rate_at_k(y_true, y_pred, k: int | None = None) -> float:
    """Fraction of rows with at least one relevant item among the first ``k`` predicted.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or sequence of collections
        The relevant item of each row, or a collection of relevant items per row.
    y_pred : array-like of shape (n_samples, n_ranked)
        Ranked predictions, best first (e.g. ``MINDRetriever.predict``).
    k : int, default=None
        Cut-off; all of ``y_pred``'s columns when None.

    Returns
    -------
    float

    Examples
    --------
    >>> from sklattn.metrics import hit_rate_at_k
    >>> hit_rate_at_k(["a", "b"], [["a", "c"], ["c", "d"]])
    0.5
    """
    hits, _ = _relevance(y_true, y_pred, k)
    return float(hits.any(axis=1).mean()) if len(hits) else 0.0


def recall_at_k(y_true, y_pred, k: int | None = None) -> float:
    """Mean over rows of (relevant items among the first ``k``) / (relevant items).

    With one relevant item per row this equals :func:`hit_rate_at_k`. Rows without
    relevant items count as 0.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or sequence of collections
        The relevant item(s) of each row.
    y_pred : array-like of shape (n_samples, n_ranked)
        Ranked predictions, best first.
    k : int, default=None
        Cut-off; all of ``y_pred``'s columns when None.

    Returns
    -------
    float

    Examples
    --------
    >>> from sklattn.metrics import recall_at_k
    >>> recall_at_k([{"a", "b"}], [["a", "c", "d"]], k=2)
    0.5
    """
    hits, n_relevant = _relevance(y_true, y_pred, k)
    if not len(hits):
        return 0.0
    found = hits.sum(axis=1)
    return float(np.mean(np.divide(found, n_relevant, out=np.zeros_like(n_relevant),
                                   where=n_relevant > 0)))


def ndcg_at_k(y_true, y_pred, k: int | None = None) -> float:
    """Normalised discounted cumulative gain with binary relevance, averaged over rows.

    ``DCG = sum_r hit_r / log2(r + 2)`` over ranks ``r = 0 .. k-1``, divided by the
    DCG of a perfect ranking of the row's relevant items.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or sequence of collections
        The relevant item(s) of each row.
    y_pred : array-like of shape (n_samples, n_ranked)
        Ranked predictions, best first.
    k : int, default=None
        Cut-off; all of ``y_pred``'s columns when None.

    Returns
    -------
    float

    Examples
    --------
    >>> from sklattn.metrics import ndcg_at_k
    >>> round(ndcg_at_k(["b"], [["a", "b", "c"]]), 4)  # rank 2: 1 / log2(3)
    0.6309
    """
    hits, n_relevant = _relevance(y_true, y_pred, k)
    if not len(hits):
        return 0.0
    discounts = 1.0 / np.log2(np.arange(hits.shape[1]) + 2.0)
    dcg = (hits * discounts).sum(axis=1)
    ideal_counts = np.minimum(n_relevant, hits.shape[1]).astype(int)
    cumulative = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = cumulative[ideal_counts]
    return float(np.mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)))


# --------------------------------------------------------------------------------------
# List-wise metrics: one row per (request, candidate), grouped by request.
# --------------------------------------------------------------------------------------

#: Metric names accepted by :func:`make_listwise_scorer`.
_LISTWISE_METRICS = ("ndcg", "map", "precision")


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}.")
    return int(k)


def _as_float_1d(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {array.shape}.")
    if array.dtype.kind not in "biuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must hold numbers; got dtype {array.dtype}."
            ) from None
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        bad = "NaN" if np.isnan(array).any() else "infinite values"
        raise ValueError(f"{name} must be finite; it contains {bad}.")
    return array


class _Lists:
    """Rows sorted by (request, score descending), with each request's boundaries.

    ``order``: the sorting permutation of the input rows; ``starts``: the position of
    each request's first row in that order; ``sizes``: the requests' lengths;
    ``rank``: the 0-based rank of each sorted row within its request; ``codes``: the
    sorted request codes (for the ideal order).
    """

    def __init__(self, y_true, y_score, groups, k):
        import pandas as pd

        self.k = _check_k(k)
        y_true = _as_float_1d(y_true, "y_true")
        y_score = _as_float_1d(y_score, "y_score")
        groups = np.asarray(groups)
        if groups.ndim != 1:
            raise ValueError(f"groups must be 1-D; got shape {groups.shape}.")
        lengths = (len(y_true), len(y_score), len(groups))
        if len(set(lengths)) != 1:
            raise ValueError(
                "y_true, y_score and groups have inconsistent lengths: "
                f"{lengths[0]}, {lengths[1]} and {lengths[2]}."
            )
        if (y_true < 0).any():
            raise ValueError("y_true must be non-negative; it contains negative relevances.")
        # Hash-based codes: any hashable ids (mixed types included), missing ones -> -1.
        codes = pd.factorize(groups, use_na_sentinel=True)[0]
        if (codes < 0).any():
            raise ValueError("groups must not contain missing values (None, NaN, NaT).")

        n = len(y_true)
        # lexsort is stable: rows tied on (request, score) keep their input order.
        self.order = np.lexsort((-y_score, codes))
        self.codes = codes
        self.y_true = y_true
        self.relevance = y_true[self.order]
        sorted_codes = codes[self.order]
        boundary = np.ones(n, dtype=bool)
        boundary[1:] = sorted_codes[1:] != sorted_codes[:-1]
        self.starts = np.flatnonzero(boundary)
        self.sizes = np.diff(np.append(self.starts, n))
        self.rank = np.arange(n) - np.repeat(self.starts, self.sizes)
        self.in_top_k = self.rank < self.k
        self.n_relevant = self.sum(self.relevance > 0)
        self.kept = self.n_relevant > 0
        if not self.kept.any():
            raise ValueError(
                "No request has a relevant row (y_true > 0): the list-wise metrics are "
                "undefined."
            )

    def sum(self, values) -> np.ndarray:
        """Per-request sums of ``values`` given in sorted order."""
        return np.add.reduceat(np.asarray(values, dtype=np.float64), self.starts)

    def mean(self, per_request) -> float:
        """Mean over the requests that have a relevant row."""
        return float(np.mean(per_request[self.kept]))


_LISTWISE_PARAMETERS = """\
    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Relevance of each row: a click label (0/1) or a graded non-negative relevance.
    y_score : array-like of shape (n_samples,)
        The model's score of each row; higher ranks first.
    groups : array-like of shape (n_samples,)
        The request of each row (any hashable ids, no missing values). A request's
        rows may come in any order and need not be contiguous.
    k : int, default=10
        Cut-off: only the first ``k`` ranks of each request count."""


def listwise_ndcg_score(y_true, y_score, groups, k: int = 10) -> float:
    """NDCG at ``k`` of each request's ranking by score, averaged over requests.

    The rows of each request are ranked by ``y_score``, highest first; rows with
    equal scores keep their order in the input (a stable sort). With the 0-based rank
    ``r``, ``DCG@k = sum_{r < k} rel_r / log2(r + 2)`` (linear gains, as
    :func:`sklearn.metrics.ndcg_score`), divided by the DCG@k of the request's rows
    sorted by relevance. Requests without a relevant row (all ``y_true`` 0) are
    skipped: they have no ideal ranking and do not enter the mean.

    Unlike :func:`sklearn.metrics.ndcg_score`, which averages the gains of tied
    scores by default, ties are broken by the input order; without ties both agree
    request by request.

{parameters}

    Returns
    -------
    float
        The mean NDCG@k over the requests with at least one relevant row.

    Raises
    ------
    ValueError
        If no request has a relevant row, or if the inputs are invalid (lengths
        differ, ``y_score`` is not finite, ``y_true`` is negative, ``k`` < 1, ...).

    See Also
    --------
    listwise_map_score, listwise_precision_score, make_listwise_scorer

    Examples
    --------
    >>> from sklattn.metrics import listwise_ndcg_score
    >>> y_true = [1, 0, 0, 0, 2, 1]
    >>> y_score = [0.2, 0.9, 0.1, 0.8, 0.3, 0.5]
    >>> groups = ["a", "a", "a", "b", "b", "b"]
    >>> # a: its relevant row ranked 2nd, 1 / log2(3) = 0.6309;
    >>> # b: (1 / log2(3) + 2 / log2(4)) / (2 + 1 / log2(3)) = 0.6199; the mean:
    >>> round(listwise_ndcg_score(y_true, y_score, groups, k=3), 4)
    0.6254
    """
    lists = _Lists(y_true, y_score, groups, k)
    discount = np.where(lists.in_top_k, 1.0 / np.log2(lists.rank + 2.0), 0.0)
    dcg = lists.sum(lists.relevance * discount)
    # The ideal order: the same requests (same boundaries), relevance descending.
    ideal = lists.y_true[np.lexsort((-lists.y_true, lists.codes))]
    idcg = lists.sum(ideal * discount)
    ratio = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=lists.kept)
    return lists.mean(ratio)


def listwise_map_score(y_true, y_score, groups, k: int = 10) -> float:
    """Mean average precision at ``k`` over requests.

    The rows of each request are ranked by ``y_score``, highest first (ties: input
    order). A row is relevant when ``y_true > 0``. For a request with ``R`` relevant
    rows, ``AP@k = sum_{r <= k} precision@r * rel_r / min(k, R)`` over the 1-based
    ranks ``r``, where ``rel_r`` is 1 when the row at rank ``r`` is relevant (0
    otherwise) and ``precision@r`` is the fraction of relevant rows among the first
    ``r``. Requests without a relevant row are skipped.

{parameters}

    Returns
    -------
    float
        The mean AP@k over the requests with at least one relevant row.

    Raises
    ------
    ValueError
        If no request has a relevant row, or if the inputs are invalid.

    See Also
    --------
    listwise_ndcg_score, listwise_precision_score, make_listwise_scorer

    Examples
    --------
    >>> from sklattn.metrics import listwise_map_score
    >>> y_true = [1, 0, 1, 0, 1, 0]
    >>> y_score = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]
    >>> groups = [1, 1, 1, 2, 2, 2]
    >>> # request 1: (1/1 + 2/3) / 2 = 0.8333; request 2: (1/2) / 1 = 0.5
    >>> round(listwise_map_score(y_true, y_score, groups, k=3), 4)
    0.6667
    """
    lists = _Lists(y_true, y_score, groups, k)
    hit = (lists.relevance > 0).astype(np.float64)
    cumulative = np.cumsum(hit)
    before = np.repeat(cumulative[lists.starts] - hit[lists.starts], lists.sizes)
    precision = (cumulative - before) / (lists.rank + 1.0)
    total = lists.sum(np.where(lists.in_top_k, precision * hit, 0.0))
    denominator = np.minimum(lists.k, lists.n_relevant)
    ap = np.divide(total, denominator, out=np.zeros_like(total), where=lists.kept)
    return lists.mean(ap)


def listwise_precision_score(y_true, y_score, groups, k: int = 10) -> float:
    """Precision at ``k`` of each request's ranking by score, averaged over requests.

    The rows of each request are ranked by ``y_score``, highest first (ties: input
    order). A request's value is (relevant rows among its first ``k``) divided by
    ``min(k, L)``, with ``L`` the request's number of rows, so a short list that
    holds only relevant rows scores 1. A row is relevant when ``y_true > 0``.
    Requests without a relevant row are skipped.

{parameters}

    Returns
    -------
    float
        The mean precision@k over the requests with at least one relevant row.

    Raises
    ------
    ValueError
        If no request has a relevant row, or if the inputs are invalid.

    See Also
    --------
    listwise_ndcg_score, listwise_map_score, make_listwise_scorer

    Examples
    --------
    >>> from sklattn.metrics import listwise_precision_score
    >>> y_true = [1, 0, 1, 0, 1]
    >>> y_score = [0.9, 0.8, 0.7, 0.3, 0.2]
    >>> groups = [1, 1, 1, 2, 2]
    >>> # request 1: 1 relevant in the top 2; request 2 (2 rows): 1 of min(2, 2)
    >>> listwise_precision_score(y_true, y_score, groups, k=2)
    0.5
    """
    lists = _Lists(y_true, y_score, groups, k)
    found = lists.sum(lists.in_top_k & (lists.relevance > 0))
    return lists.mean(found / np.minimum(lists.k, lists.sizes))


for _function in (listwise_ndcg_score, listwise_map_score, listwise_precision_score):
    if _function.__doc__:  # None under ``python -OO``
        _function.__doc__ = _function.__doc__.replace("{parameters}", _LISTWISE_PARAMETERS)
del _function

_LISTWISE_FUNCTIONS = {
    "ndcg": listwise_ndcg_score,
    "map": listwise_map_score,
    "precision": listwise_precision_score,
}


class _ListwiseScorer:
    """A scikit-learn scorer: ``scorer(estimator, X, y) -> float``; see
    :func:`make_listwise_scorer`."""

    def __init__(self, metric: str, k: int, group: str):
        self.metric = metric
        self.k = k
        self.group = group

    def __repr__(self) -> str:
        return f"make_listwise_scorer(metric={self.metric!r}, k={self.k!r}, group={self.group!r})"

    def __call__(self, estimator, X, y) -> float:
        columns = getattr(X, "columns", None)
        if columns is None:
            raise ValueError(
                f"X must be a pandas DataFrame with the request column {self.group!r} "
                f"(group); got {type(X).__name__}."
            )
        if self.group not in columns:
            raise ValueError(
                f"X has no column {self.group!r} (group) to group its rows by request."
            )
        groups = X[self.group].to_numpy()
        if hasattr(estimator, "decision_function"):
            y_score = np.asarray(estimator.decision_function(X))
        elif hasattr(estimator, "predict_proba"):
            y_score = np.asarray(estimator.predict_proba(X))[:, 1]
        else:
            raise ValueError(
                f"{type(estimator).__name__} has neither decision_function nor "
                "predict_proba to score the rows with."
            )
        if y_score.ndim == 2 and y_score.shape[1] == 1:
            y_score = y_score[:, 0]
        return _LISTWISE_FUNCTIONS[self.metric](y, y_score, groups, k=self.k)


def make_listwise_scorer(metric: str = "ndcg", *, k: int = 10, group: str = "request_id"):
    """A scikit-learn scorer of a list-wise metric, grouping the rows of X by request.

    The scorer, ``scorer(estimator, X, y) -> float``, can be passed as ``scoring=``
    to ``GridSearchCV``, ``cross_val_score`` or ``cross_validate``. It reads each
    row's request from the column ``group`` of the DataFrame ``X``, scores the rows
    with ``estimator.decision_function(X)`` when the estimator has it and with
    ``estimator.predict_proba(X)[:, 1]`` otherwise, and returns the metric of
    ``(y, scores, requests)``; higher is better. Split with a group-aware splitter
    (``GroupKFold``, ``GroupShuffleSplit`` with ``groups=`` the request ids) so that
    every request lies wholly in one fold. The estimator sees the request column
    too: drop it in the pipeline (e.g. with a ``ColumnTransformer``) if the model
    should not use it.

    Parameters
    ----------
    metric : {"ndcg", "map", "precision"}, default="ndcg"
        :func:`listwise_ndcg_score`, :func:`listwise_map_score` or
        :func:`listwise_precision_score`.
    k : int, default=10
        Cut-off of the metric.
    group : str, default="request_id"
        The column of X that holds each row's request id.

    Returns
    -------
    callable
        ``scorer(estimator, X, y) -> float``; its repr reads like this call.

    Raises
    ------
    ValueError
        If ``metric`` is not one of the names above, or ``k`` is not a positive
        integer. Calling the scorer raises a ValueError if X has no column
        ``group``.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn.metrics import make_listwise_scorer
    >>> X = pd.DataFrame({"request_id": [1, 1, 1, 2, 2, 2],
    ...                   "f1": [0.1, 0.9, 0.4, 0.8, 0.2, 0.5]})
    >>> y = [0, 1, 0, 1, 0, 0]
    >>> model = make_pipeline(ColumnTransformer([("x", "passthrough", ["f1"])]),
    ...                       LogisticRegression()).fit(X, y)
    >>> scorer = make_listwise_scorer("ndcg", k=3)
    >>> scorer
    make_listwise_scorer(metric='ndcg', k=3, group='request_id')
    >>> scorer(model, X, y)
    1.0
    """
    if not isinstance(metric, str) or metric not in _LISTWISE_FUNCTIONS:
        raise ValueError(
            f"metric must be one of {', '.join(map(repr, _LISTWISE_METRICS))}; "
            f"got {metric!r}."
        )
    return _ListwiseScorer(metric, _check_k(k), group)
