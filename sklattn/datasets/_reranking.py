"""Synthetic candidate lists whose best order depends on the list itself."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

#: Constant of the pointwise relevance's logit, ``r = sigmoid(a + t - 1)``.
_OFFSET = -1.0

#: Random keys drawn at once for the candidates of a small catalogue (bounds the memory).
_CHUNK_CELLS = 1_000_000
#: Catalogues larger than this many times the longest list draw candidates sparsely.
_SPARSE = 16


def make_reranking_lists(
    n_requests: int = 2000,
    *,
    list_length: int | tuple[int, int] = (10, 20),
    n_items: int = 300,
    n_categories: int = 10,
    n_users: int | None = None,
    history_length: int = 5,
    duplicate_decay: float = 0.3,
    taste_strength: float = 1.5,
    position_bias: float = 0.5,
    initial_noise: float = 0.5,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Requests with a list of candidate items each, for a list-wise re-ranker.

    Each request shows a user a list of candidates in the order of an upstream
    pointwise ranker. Candidates of the same category compete within a list, so
    an item's worth depends on the other items of its list: a model that reads
    the whole list (PRM, Pei et al. 2019) can order it better than any pointwise
    score. A per-user taste, visible through the user's history, matters too.

    The generative model:

    * **Items** ``i = 0 .. n_items - 1``: a category ``c_i`` (the categories are
      dealt out evenly, ``n_items // n_categories`` or one more items each, in a
      random order, so ``c_i`` is uniform over the categories) and a base appeal
      ``a_i ~ N(0, 1)``.
    * **Users** ``u = 0 .. n_users - 1``: a taste vector over the categories,
      ``t_u[c] ~ N(0, taste_strength ** 2)``, and a history of ``history_length``
      items, each drawn by choosing a category with probabilities
      ``softmax(t_u)`` and then an item of that category uniformly, so a model
      that attends to the history (DIN) can learn the user's taste.
    * **Requests**: a user drawn uniformly and ``L`` distinct items drawn
      uniformly from the catalogue, ``L`` uniform in ``list_length`` (both ends
      included). Each candidate's pointwise relevance is

      ``r_i = sigmoid(a_i + t_u[c_i] - 1)``.

    * **List dependence**: the items of a request that share a category compete;
      the true (unbiased, list-aware) click probability is

      ``p_i = r_i * duplicate_decay ** m_i``

      where ``m_i`` is the number of items of the same request and category with
      a larger ``r`` (the best item of a category keeps ``r_i``, the next one is
      worth ``duplicate_decay`` times its relevance, ...). ``p`` does not depend
      on the display order; the best order of a request is by ``p`` descending.
      With ``duplicate_decay=1`` there is no list effect and ``p = r``.
    * **Initial ranking** (the upstream ranker, blind to the list): a score
      ``s_i = logit(r_i) + e_i`` with ``e_i ~ N(0, initial_noise ** 2)``, and
      ``initial_rank`` 1 for the highest score of a request, 2 for the next, ...
    * **Logged clicks**, with position bias: ``y_i ~ Bernoulli(p_i * (1 /
      initial_rank_i) ** position_bias)`` (the chance that a user examines an item
      decays with its displayed position; ``position_bias=0`` means none).

    With the defaults the mean of ``r`` is about 0.33, that of ``p`` about 0.23,
    and about 13% of the rows are clicked. ``duplicate_decay``, ``position_bias``
    and ``initial_noise`` change no random draw: with the same ``random_state``
    the requests, users and items stay the same, and ``initial_noise=0`` shows
    them in the order of the noiseless relevance ``r``.

    **The optimum.** The expected DCG@k of a request, the sum of ``p / log2(1 +
    position)`` over its top ``k`` positions, is largest when the request is
    ordered by ``p`` (rearrangement inequality). So NDCG@k with ``probabilities``
    as gains, averaged over the requests, is 1 for the order by
    ``probabilities``, the best any re-ranker can achieve in expectation, and
    measures how much of the gap between the initial ranking and that optimum a
    re-ranker closes (see the Examples).

    Parameters
    ----------
    n_requests : int, default=2000
        Number of requests (lists).
    list_length : int or tuple of two int, default=(10, 20)
        Candidates per request: ``(low, high)`` draws each request's length
        uniformly from ``low .. high`` (both included); an int fixes it. At least
        2 and at most ``n_items``.
    n_items : int, default=300
        Catalogue size (at least ``n_categories``).
    n_categories : int, default=10
        Number of item categories.
    n_users : int, default=None
        Number of distinct users (each with a fixed taste and history); defaults
        to ``max(1, n_requests // 4)``.
    history_length : int, default=5
        Items in each user's history.
    duplicate_decay : float, default=0.3
        Factor in ``[0, 1]`` applied to an item's click probability for every
        item of the same request and category with a larger relevance; 1 means
        no list effect.
    taste_strength : float, default=1.5
        Standard deviation of the users' per-category tastes; 0 means every user
        likes every category alike.
    position_bias : float, default=0.5
        Exponent of the examination probability ``(1 / initial_rank) **
        position_bias`` of the logged clicks; 0 means no position bias.
    initial_noise : float, default=0.5
        Standard deviation of the noise added to ``logit(r)`` in the initial
        score; 0 makes the initial ranking the order by ``r``.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : pandas.DataFrame
        One row per request and candidate, the rows of a request consecutive and
        in display order (``initial_rank`` 1, 2, ...), the requests in order of
        ``request_id``. Columns ``request_id`` (0 .. ``n_requests - 1``),
        ``user_id``, ``hist_item_1 .. hist_item_{history_length}`` (the user's
        history, oldest first), ``item`` (item id), ``category`` (the item's
        category, ``0 .. n_categories - 1``), ``initial_score`` (float) and
        ``initial_rank`` (int); ids are integers. For
        ``SequenceEncoder(group="request_id", rank="initial_rank", ...)``.
    y : ndarray of shape (n_rows,)
        Logged clicks (0/1), with position bias.
    probabilities : ndarray of shape (n_rows,)
        The true click probabilities ``p`` (list-aware, without position bias).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.metrics import ndcg_score
    >>> from sklattn.datasets import make_reranking_lists
    >>> X, y, p = make_reranking_lists(200, history_length=2, random_state=0)
    >>> list(X.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['request_id', 'user_id', 'hist_item_1', 'hist_item_2', 'item', 'category',
     'initial_score', 'initial_rank']
    >>> bool(X.groupby("request_id").size().between(10, 20).all())
    True
    >>> def mean_ndcg(scores, k=5):  # NDCG@k with p as gains, averaged over requests
    ...     starts = np.flatnonzero(np.diff(X["request_id"])) + 1
    ...     lists = zip(np.split(p, starts), np.split(np.asarray(scores), starts))
    ...     return float(np.mean([ndcg_score([g], [s], k=k) for g, s in lists]))
    >>> mean_ndcg(p)  # the optimum
    1.0
    >>> initial = mean_ndcg(-X["initial_rank"])  # the upstream ranker's order
    >>> bool(initial < 0.9)
    True
    """
    n_requests = _check_int(n_requests, "n_requests", 1)
    n_categories = _check_int(n_categories, "n_categories", 1)
    n_items = _check_int(n_items, "n_items", n_categories, "n_categories")
    low, high = _check_list_length(list_length, n_items)
    n_users = max(1, n_requests // 4) if n_users is None else _check_int(n_users, "n_users", 1)
    history_length = _check_int(history_length, "history_length", 1)
    duplicate_decay = _check_real(duplicate_decay, "duplicate_decay", high=1.0)
    taste_strength = _check_real(taste_strength, "taste_strength")
    position_bias = _check_real(position_bias, "position_bias")
    initial_noise = _check_real(initial_noise, "initial_noise")
    rng = check_random_state(random_state)

    # Items: evenly dealt categories and a base appeal.
    item_cat = rng.permutation(np.arange(n_items) % n_categories)
    appeal = rng.normal(size=n_items)
    members = [np.flatnonzero(item_cat == c) for c in range(n_categories)]
    sizes = np.array([len(m) for m in members])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    by_cat = np.concatenate(members)

    # Users: a taste per category and a history drawn from the liked categories.
    taste = rng.normal(0.0, taste_strength, size=(n_users, n_categories))
    weights = np.exp(taste - taste.max(axis=1, keepdims=True))
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random_sample((n_users, history_length))
    hist_cat = (draws[:, :, None] > cumulative[:, None, :]).sum(axis=2)
    hist_cat = np.minimum(hist_cat, n_categories - 1)  # rounding of the last cumulative
    pick = (rng.random_sample(hist_cat.shape) * sizes[hist_cat]).astype(np.int64)
    history = by_cat[offsets[hist_cat] + pick]

    # Requests: a user and L distinct items each.
    user = rng.randint(n_users, size=n_requests)
    lengths = rng.randint(low, high + 1, size=n_requests)
    request = np.repeat(np.arange(n_requests), lengths)
    candidates = _distinct_items(rng, n_requests, high, n_items)
    items = candidates[np.arange(high)[None, :] < lengths[:, None]]
    cat = item_cat[items]
    logit_r = appeal[items] + taste[user[request], cat] + _OFFSET
    r = 1.0 / (1.0 + np.exp(-logit_r))

    # m: the items of the same request and category with a larger r.
    order = np.lexsort((-r, cat, request))
    key = request[order] * n_categories + cat[order]
    new_group = np.concatenate([[True], key[1:] != key[:-1]])
    starts = np.flatnonzero(new_group)
    position = np.arange(len(order))
    m = np.empty(len(order), dtype=np.int64)
    m[order] = position - np.repeat(starts, np.diff(np.append(starts, len(order))))
    p = r * duplicate_decay**m

    # The initial ranking and the display order.
    score = logit_r + rng.normal(0.0, 1.0, size=len(r)) * initial_noise
    display = np.lexsort((-score, request))
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    rank = np.empty(len(r), dtype=np.int64)
    rank[display] = np.arange(len(r)) - first + 1

    examination = (1.0 / rank) ** position_bias
    y = (rng.random_sample(len(r)) < p * examination).astype(np.int64)

    data = {"request_id": request, "user_id": user[request]}
    for t in range(history_length):
        data[f"hist_item_{t + 1}"] = history[user[request], t]
    data.update(item=items, category=cat, initial_score=score, initial_rank=rank)
    X = pd.DataFrame({k: v[display] for k, v in data.items()})
    return X, y[display], p[display]


def _distinct_items(rng, n_rows, width, n_items):
    """``(n_rows, width)`` item ids, distinct within each row, each row a uniformly drawn
    set of ``width`` items (in a random order, so that its first ``L`` items are a uniform
    set of ``L``).

    A small catalogue takes the ``width`` items with the smallest of ``n_items`` uniform
    keys; a large one (more than ``_SPARSE * width`` items) draws ids with replacement and
    draws again the repeats until none is left, which leaves every set equally likely
    since it treats every item alike, and costs ``O(width)`` rather than ``O(n_items)``
    per row.
    """
    if n_items > _SPARSE * width:
        items = rng.randint(n_items, size=(n_rows, width))
        while True:
            order = np.argsort(items, axis=1, kind="stable")
            ranked = np.take_along_axis(items, order, axis=1)
            repeat = np.zeros(items.shape, dtype=bool)
            np.put_along_axis(repeat, order[:, 1:], ranked[:, 1:] == ranked[:, :-1], axis=1)
            n_repeats = int(repeat.sum())
            if not n_repeats:
                return items
            items[repeat] = rng.randint(n_items, size=n_repeats)
    chunk = max(1, _CHUNK_CELLS // n_items)
    blocks = []
    for begin in range(0, n_rows, chunk):
        keys = rng.random_sample((min(chunk, n_rows - begin), n_items))
        smallest = np.argpartition(keys, width - 1, axis=1)[:, :width]
        by_key = np.argsort(np.take_along_axis(keys, smallest, axis=1), axis=1)
        blocks.append(np.take_along_axis(smallest, by_key, axis=1))
    return np.concatenate(blocks)


def _check_int(value, name, low, low_name=None):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        bound = f"{low_name}={low}" if low_name else low
        raise ValueError(f"{name} must be an integer >= {bound}; got {value!r}.")
    return int(value)


def _check_real(value, name, high=None):
    valid = (
        isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
        and value >= 0 and (high is None or value <= high)
    )
    if not valid:
        bounds = f"in [0, {high}]" if high is not None else "a finite number >= 0"
        raise ValueError(f"{name} must be {bounds}; got {value!r}.")
    return float(value)


def _check_list_length(list_length, n_items):
    if isinstance(list_length, Integral) and not isinstance(list_length, bool):
        low = high = int(list_length)
    else:
        try:
            low, high = list_length
        except (TypeError, ValueError):
            raise ValueError(
                f"list_length must be an int or a (low, high) pair; got {list_length!r}."
            ) from None
        if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in (low, high)):
            raise ValueError(f"list_length must hold integers; got {list_length!r}.")
        low, high = int(low), int(high)
    if not 2 <= low <= high <= n_items:
        raise ValueError(
            f"list_length must satisfy 2 <= low <= high <= n_items={n_items}; "
            f"got {list_length!r}."
        )
    return low, high
