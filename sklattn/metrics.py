"""Ranking metrics for top-N retrieval: hit rate, recall and NDCG at k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["hit_rate_at_k", "ndcg_at_k", "recall_at_k"]


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
