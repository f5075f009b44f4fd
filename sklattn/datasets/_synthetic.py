"""Synthetic behaviour logs whose click probabilities are known."""

from __future__ import annotations

from numbers import Real

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._schema import FIRST_ID


def make_interest_sequences(
    n_samples: int = 10000,
    *,
    n_users: int | None = None,
    n_items: int = 500,
    n_categories: int = 20,
    maxlen: int = 20,
    min_length: int = 1,
    n_interests: int = 2,
    noise: float = 0.2,
    recency_decay: float = 1.0,
    strength: float = 6.0,
    item_bias_scale: float = 0.5,
    time_decay: float | None = None,
    return_proba: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[pd.DataFrame, np.ndarray] | tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Click logs where a click depends on how the candidate relates to recent history.

    Each item belongs to one of ``n_categories`` categories; each user has
    ``n_interests`` favourite categories and a history of up to ``maxlen``
    items drawn mostly from them. A row shows the user a candidate item (half
    of the time from one of the user's interests) and the click probability is

    ``p = sigmoid(-3 + strength * r + b_item + 0.3 * user_activity)``

    where ``r`` is the share of the history in the candidate's category,
    each behaviour weighted by ``recency_decay ** age`` (age 0 = most
    recent), and ``b_item`` a per-item bias. Since ``p`` is returned, the
    optimal AUC of any model is ``roc_auc_score(y, p)``.

    With ``time_decay``, every row also has timestamps: a request time ``time``
    and the time of each behaviour, with irregular gaps (each row has its own pace,
    a mean time between events drawn log-uniformly from one hour to two weeks,
    and exponential times between events), and a behaviour's weight in ``r`` is
    ``exp(-gap / time_decay)`` (``gap`` = request time minus behaviour time, in
    seconds) instead of ``recency_decay ** age``. Two histories with the same
    order of events then weigh them differently, so the time gaps tell a model
    what the positions alone do not.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of rows.
    n_users : int, default=None
        Number of distinct users (each with fixed interests); defaults to
        ``max(1, n_samples // 10)``.
    n_items : int, default=500
        Catalogue size.
    n_categories : int, default=20
        Number of item categories.
    maxlen : int, default=20
        Longest history; shorter ones are padded at the oldest end.
    min_length : int, default=1
        Shortest history.
    n_interests : int, default=2
        Favourite categories per user.
    noise : float, default=0.2
        Share of history items drawn from the whole catalogue.
    recency_decay : float, default=1.0
        Weight of a behaviour ``a`` steps before the most recent one is
        ``recency_decay ** a``; below 1, recent behaviour matters more.
    strength : float, default=6.0
        Effect of the history match on the logit.
    item_bias_scale : float, default=0.5
        Standard deviation of the per-item bias.
    time_decay : float, default=None
        Time constant in seconds of the behaviours' weights ``exp(-gap /
        time_decay)`` (e.g. ``86400.0``: a behaviour a day before the request
        weighs ``1/e`` of one happening now); adds the timestamp columns.
        ``None`` (default) uses ``recency_decay`` and adds no column (the output
        for a given ``random_state`` is then the same as without the parameter).
    return_proba : bool, default=False
        Also return the true click probabilities.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : pandas.DataFrame
        Columns ``user``, ``item``, ``cat``, ``hist_item_1..maxlen``,
        ``hist_cat_1..maxlen`` (``_{maxlen}`` = most recent; missing = <NA>)
        and ``user_activity`` (float); with ``time_decay`` also
        ``hist_time_1..maxlen`` (each behaviour's timestamp in seconds, NaN
        where there is no behaviour) and ``time`` (the request's timestamp in
        seconds), for ``SequenceEncoder(timestamps={"hist_item": ("hist_time",
        "time")})``.
    y : ndarray of shape (n_samples,)
        Clicks (0/1).
    proba : ndarray of shape (n_samples,)
        True click probabilities, if ``return_proba``.

    Examples
    --------
    >>> from sklearn.metrics import roc_auc_score
    >>> from sklattn.datasets import make_interest_sequences
    >>> X, y, p = make_interest_sequences(1000, return_proba=True, random_state=0)
    >>> X.shape
    (1000, 44)
    >>> bool(roc_auc_score(y, p) > 0.8)
    True
    >>> X, y = make_interest_sequences(1000, time_decay=86400.0, random_state=0)
    >>> X.shape
    (1000, 65)
    >>> bool((X["time"] >= X["hist_time_20"]).all())
    True
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
    if time_decay is not None and not (
        isinstance(time_decay, Real) and not isinstance(time_decay, bool)
        and np.isfinite(time_decay) and time_decay > 0
    ):
        raise ValueError(f"time_decay must be a positive number of seconds; got {time_decay!r}.")
    if not 1 <= min_length <= maxlen:
        raise ValueError(f"Need 1 <= min_length <= maxlen; got {min_length} and {maxlen}.")
    if not 1 <= n_interests <= n_categories:
        raise ValueError("n_interests must be between 1 and n_categories.")
    if n_items < n_categories:
        raise ValueError("n_items must be at least n_categories.")
    rng = check_random_state(random_state)
    n_users = max(1, n_samples // 10) if n_users is None else int(n_users)

    item_cat = rng.permutation(np.arange(n_items) % n_categories)
    members = [np.flatnonzero(item_cat == c) for c in range(n_categories)]
    sizes = np.array([len(m) for m in members])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    by_cat = np.concatenate(members)
    item_bias = rng.normal(0.0, item_bias_scale, n_items)

    def draw_from(cats: np.ndarray) -> np.ndarray:
        pick = (rng.random_sample(cats.shape) * sizes[cats]).astype(int)
        return by_cat[offsets[cats] + pick]

    interests = np.array(
        [rng.choice(n_categories, n_interests, replace=False) for _ in range(n_users)]
    )
    user = rng.randint(n_users, size=n_samples)
    lengths = rng.randint(min_length, maxlen + 1, size=n_samples)

    hist_cats = interests[user[:, None], rng.randint(n_interests, size=(n_samples, maxlen))]
    hist = draw_from(hist_cats)
    random_items = rng.randint(n_items, size=(n_samples, maxlen))
    noisy = rng.random_sample((n_samples, maxlen)) < noise
    hist = np.where(noisy, random_items, hist)
    valid = np.arange(maxlen)[None, :] >= (maxlen - lengths)[:, None]

    from_interest = rng.random_sample(n_samples) < 0.5
    cand_cat = np.where(
        from_interest,
        interests[user, rng.randint(n_interests, size=n_samples)],
        rng.randint(n_categories, size=n_samples),
    )
    cand = draw_from(cand_cat)
    cand_cat = item_cat[cand]

    age = maxlen - 1 - np.arange(maxlen)
    w = np.where(valid, float(recency_decay) ** age[None, :], 0.0)
    match = (item_cat[hist] == cand_cat[:, None]) & valid
    r = (w * match).sum(1) / w.sum(1)
    activity = rng.normal(size=n_samples)
    click_draws = rng.random_sample(n_samples)
    if time_decay is not None:
        # Drawn after every other number, so that time_decay=None keeps the output of
        # every random_state.
        times, now = _event_times(rng, n_samples, maxlen)
        gaps = now[:, None] - times
        # exp(-gap / time_decay), divided by the most recent behaviour's weight: r is
        # unchanged and a history of old events does not underflow to 0 / 0.
        newest = np.where(valid, gaps, np.inf).min(axis=1)
        w = np.where(valid, np.exp(-(gaps - newest[:, None]) / float(time_decay)), 0.0)
        r = (w * match).sum(1) / w.sum(1)
    logit = -3.0 + strength * r + item_bias[cand] + 0.3 * activity
    proba = 1.0 / (1.0 + np.exp(-logit))
    y = (click_draws < proba).astype(np.int64)

    def cat_name(c):
        return np.char.add("c", np.char.zfill(c.astype(str), 2))

    data = {"user": user + 1, "item": cand + 1, "cat": cat_name(cand_cat)}
    hist_names = np.where(valid, cat_name(item_cat[hist]), None).astype(object)
    for t in range(maxlen):
        data[f"hist_item_{t + 1}"] = pd.array(
            np.where(valid[:, t], hist[:, t] + 1, 0), dtype="Int64"
        )
        data[f"hist_item_{t + 1}"][~valid[:, t]] = pd.NA
    for t in range(maxlen):
        data[f"hist_cat_{t + 1}"] = hist_names[:, t]
    data["user_activity"] = activity
    if time_decay is not None:
        for t in range(maxlen):
            data[f"hist_time_{t + 1}"] = np.where(valid[:, t], times[:, t], np.nan)
        data["time"] = now
    X = pd.DataFrame(data)
    if return_proba:
        return X, y, proba
    return X, y


#: Request times of the synthetic logs start at 2020-09-13 12:26:40 UTC (Unix time).
_START = 1.6e9


def _event_times(rng: np.random.RandomState, n_samples: int, maxlen: int):
    """Whole-second timestamps ``(n_samples, maxlen)`` (last column = most recent) and
    the request times ``(n_samples,)``: each row has its own mean time between events,
    log-uniform from one hour to two weeks, and exponential times between events (the
    first one counted back from the request)."""
    now = np.round(_START + rng.random_sample(n_samples) * 90 * 86400)
    pace = np.exp(rng.uniform(np.log(3600.0), np.log(14 * 86400.0), size=n_samples))
    between = rng.exponential(size=(n_samples, maxlen)) * pace[:, None]
    back = np.cumsum(between, axis=1)[:, ::-1]  # time before the request, newest last
    return now[:, None] - np.round(back), now


def make_field_interactions(
    n_samples: int = 10000,
    *,
    n_fields: int = 8,
    n_categories: int = 20,
    informative_pair: tuple[int, int] = (0, 1),
    strength: float = 3.0,
    main_effect_scale: float = 0.0,
    return_proba: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[pd.DataFrame, np.ndarray] | tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A categorical table whose clicks depend on one pair of fields interacting.

    Every field ``f0 .. f{n_fields-1}`` takes one of ``n_categories`` values,
    uniformly and independently. Each value ``c`` of the two informative fields
    ``a, b`` has a hidden score ``z_a(c)``, ``z_b(c)`` ~ N(0, 1), and

    ``p = sigmoid(strength * z_a(x_a) * z_b(x_b) + sum_i m_i(x_i))``

    with main effects ``m_i`` ~ N(0, ``main_effect_scale``) (none by default). With
    no main effects neither field alone says anything about the click: only their
    interaction does, and a model that weights field pairs should find it. Since
    ``p`` is returned, the optimal AUC is ``roc_auc_score(y, p)``.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of rows.
    n_fields : int, default=8
        Number of categorical columns.
    n_categories : int, default=20
        Values per field.
    informative_pair : tuple of two int, default=(0, 1)
        The interacting fields.
    strength : float, default=3.0
        Scale of the interaction on the logit.
    main_effect_scale : float, default=0.0
        Standard deviation of every field's per-value main effect.
    return_proba : bool, default=False
        Also return the true click probabilities.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : pandas.DataFrame
        String columns ``f0 .. f{n_fields-1}`` with values ``"v00"``, ``"v01"``, ...
    y : ndarray of shape (n_samples,)
        Clicks (0/1).
    proba : ndarray of shape (n_samples,)
        True click probabilities, if ``return_proba``.

    Examples
    --------
    >>> from sklearn.metrics import roc_auc_score
    >>> from sklattn.datasets import make_field_interactions
    >>> X, y, p = make_field_interactions(2000, return_proba=True, random_state=0)
    >>> X.shape
    (2000, 8)
    >>> bool(roc_auc_score(y, p) > 0.8)
    True
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
    if n_fields < 2:
        raise ValueError(f"n_fields must be >= 2, got {n_fields}.")
    a, b = (int(i) for i in informative_pair)
    if a == b or not (0 <= a < n_fields and 0 <= b < n_fields):
        raise ValueError(
            f"informative_pair must name two different fields below n_fields={n_fields}; "
            f"got {informative_pair}."
        )
    rng = check_random_state(random_state)
    values = rng.randint(n_categories, size=(n_samples, n_fields))
    z = rng.normal(size=(2, n_categories))
    logit = strength * z[0, values[:, a]] * z[1, values[:, b]]
    if main_effect_scale:
        effects = rng.normal(0.0, main_effect_scale, size=(n_fields, n_categories))
        logit = logit + effects[np.arange(n_fields), values].sum(axis=1)
    proba = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random_sample(n_samples) < proba).astype(np.int64)
    width = len(str(n_categories - 1))
    names = np.char.add("v", np.char.zfill(np.arange(n_categories).astype(str), max(2, width)))
    X = pd.DataFrame({f"f{i}": names[values[:, i]] for i in range(n_fields)})
    if return_proba:
        return X, y, proba
    return X, y


def make_multi_interest_sequences(
    n_users: int = 500,
    *,
    n_clusters: int = 20,
    items_per_cluster: int = 10,
    interests_per_user: int = 2,
    history_length: int = 10,
    events_per_user: int = 1,
    noise: float = 0.0,
    random_state: int | np.random.RandomState | None = None,
) -> pd.DataFrame:
    """Next-item logs of users with several distinct interests.

    Items belong to ``n_clusters`` clusters of ``items_per_cluster`` items (item ``i``
    is in cluster ``i // items_per_cluster``). Each user has ``interests_per_user``
    distinct clusters; every event picks one of them uniformly and an item of it
    uniformly (with probability ``noise`` any item instead). A user's events form a
    sequence; each row holds the previous ``history_length`` items as
    ``hist_item_1 .. hist_item_{history_length}`` (oldest first) and the next one as
    ``item``. With ``events_per_user > 1`` the user contributes that many
    consecutive rows (the history window sliding by one event).

    The best possible retriever knows each user's clusters: with ``noise=0`` its
    top ``interests_per_user * items_per_cluster`` items always contain the next
    item. A single user vector must score several clusters at once, which an
    inner product can do only approximately when the clusters outnumber the
    embedding dimensions: the case MIND's multiple interests are for.

    Parameters
    ----------
    n_users : int, default=500
        Number of users.
    n_clusters : int, default=20
        Number of item clusters.
    items_per_cluster : int, default=10
        Items per cluster.
    interests_per_user : int, default=2
        Clusters each user draws from.
    history_length : int, default=10
        Items of history per row.
    events_per_user : int, default=1
        Rows per user.
    noise : float, default=0.0
        Probability that an event is a uniformly random item.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``user_id``, ``hist_item_1 .. hist_item_{history_length}`` and
        ``item`` (integer item ids), ``n_users * events_per_user`` rows, the rows
        of a user consecutive and in time order.

    Examples
    --------
    >>> from sklattn.datasets import make_multi_interest_sequences
    >>> X = make_multi_interest_sequences(n_users=3, history_length=4, random_state=0)
    >>> list(X.columns)
    ['user_id', 'hist_item_1', 'hist_item_2', 'hist_item_3', 'hist_item_4', 'item']
    """
    if interests_per_user > n_clusters:
        raise ValueError(
            f"interests_per_user={interests_per_user} exceeds n_clusters={n_clusters}."
        )
    if history_length < 1 or events_per_user < 1:
        raise ValueError("history_length and events_per_user must be at least 1.")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1]; got {noise}.")
    rng = check_random_state(random_state)
    n_items = n_clusters * items_per_cluster
    length = history_length + events_per_user
    clusters = np.argsort(rng.random_sample((n_users, n_clusters)), axis=1)[
        :, :interests_per_user
    ]
    chosen = clusters[np.arange(n_users)[:, None], rng.randint(interests_per_user,
                                                               size=(n_users, length))]
    events = chosen * items_per_cluster + rng.randint(items_per_cluster, size=(n_users, length))
    random_items = rng.randint(n_items, size=(n_users, length))
    events = np.where(rng.random_sample((n_users, length)) < noise, random_items, events)
    windows = np.lib.stride_tricks.sliding_window_view(events, history_length + 1, axis=1)
    windows = windows.reshape(-1, history_length + 1)
    frame = pd.DataFrame(
        windows[:, :history_length],
        columns=[f"hist_item_{i}" for i in range(1, history_length + 1)],
    )
    frame.insert(0, "user_id", np.repeat(np.arange(n_users), events_per_user))
    frame["item"] = windows[:, history_length]
    return frame


def make_long_histories(
    n_samples: int = 1000,
    *,
    history_length: int = 2000,
    n_items: int = 500,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Already-encoded rows with very long histories (the case where summed histories
    saturate a model's outputs).

    Every row has ``history_length`` behaviours ``hist_1..hist_{history_length}`` and a
    candidate ``item``, integer ids in ``[FIRST_ID, n_items)`` drawn uniformly (no
    padding). The click probability is ``sigmoid(3 * (lift - 1))`` where ``lift`` is how
    much more often than chance the candidate occurs in the history (1 on average), so a
    model that pools the history by its mean can learn it.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of rows.
    history_length : int, default=2000
        Behaviours per row.
    n_items : int, default=500
        Ids run from ``FIRST_ID`` (2) to ``n_items - 1``.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : pandas.DataFrame
        Integer columns ``hist_1..hist_{history_length}`` and ``item``; pass
        ``sequences={"hist": "item"}`` to a model.
    y : ndarray of shape (n_samples,)
        Clicks (0 or 1).

    Examples
    --------
    >>> from sklattn.datasets import make_long_histories
    >>> X, y = make_long_histories(n_samples=5, history_length=3, random_state=0)
    >>> list(X.columns), y.shape
    (['hist_1', 'hist_2', 'hist_3', 'item'], (5,))
    """
    rng = check_random_state(random_state)
    history = rng.randint(FIRST_ID, n_items, size=(n_samples, history_length))
    item = rng.randint(FIRST_ID, n_items, size=n_samples)
    lift = (history == item[:, None]).mean(axis=1) * (n_items - FIRST_ID)
    y = (rng.random_sample(n_samples) < 1 / (1 + np.exp(-3 * (lift - 1)))).astype(int)
    X = pd.DataFrame(history, columns=[f"hist_{t + 1}" for t in range(history_length)])
    return X.assign(item=item), y
