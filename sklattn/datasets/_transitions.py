"""Synthetic next-item logs where the next item depends on the order of the history."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state


def make_transition_sequences(
    n_users: int = 500,
    *,
    n_items: int = 100,
    history_length: int = 10,
    events_per_user: int = 1,
    noise: float = 0.1,
    random_state: int | np.random.RandomState | None = None,
) -> pd.DataFrame:
    """Next-item logs of users who walk a fixed item-to-item transition.

    The items ``0 .. n_items - 1`` form one cycle in a random order (a fixed
    permutation ``next_of`` with a single cycle through every item). Each user starts
    at a uniformly drawn item; each next event is ``next_of[previous event]``, or with
    probability ``noise`` a uniformly drawn item instead (a jump). Each row holds the
    previous ``history_length`` events as ``hist_item_1 .. hist_item_{history_length}``
    (oldest first) and the next one as ``item``, MIND's format (see
    :func:`make_multi_interest_sequences`).

    The next item depends only on the newest event: a model that reads the order of
    the history can know it, one that treats the history as a set of interests or
    ranks items by popularity cannot. The best possible retriever ranks
    ``next_of[newest]`` first: its hit rate at ``k`` is ``1 - noise + noise * k /
    n_items``, while every item is equally popular (a top ``k`` by popularity hits
    ``k / n_items``). Because the cycle passes through every item, a walk without
    jumps never returns to an item of its last ``n_items - 1`` events, so excluding
    the history from the retrieved items costs the best retriever nothing.

    Parameters
    ----------
    n_users : int, default=500
        Number of users.
    n_items : int, default=100
        Number of items (at least 2).
    history_length : int, default=10
        Items of history per row.
    events_per_user : int, default=1
        Rows per user; with more than one, the user's consecutive rows slide the
        history window by one event.
    noise : float, default=0.1
        Probability that an event is a uniformly drawn item instead of the
        transition's next item.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``user_id``, ``hist_item_1 .. hist_item_{history_length}`` and
        ``item`` (integer item ids), ``n_users * events_per_user`` rows, the rows of a
        user consecutive and in time order.

    Examples
    --------
    >>> from sklattn.datasets import make_transition_sequences
    >>> X = make_transition_sequences(n_users=3, history_length=4, random_state=0)
    >>> list(X.columns)
    ['user_id', 'hist_item_1', 'hist_item_2', 'hist_item_3', 'hist_item_4', 'item']
    >>> clean = make_transition_sequences(n_users=50, history_length=3, noise=0.0,
    ...                                   random_state=0)
    >>> follows = dict(zip(clean["hist_item_3"], clean["item"]))  # one next item each
    >>> bool((clean["hist_item_3"].map(follows) == clean["item"]).all())
    True
    """
    if n_users < 1:
        raise ValueError(f"n_users must be at least 1; got {n_users}.")
    if n_items < 2:
        raise ValueError(f"n_items must be at least 2; got {n_items}.")
    if history_length < 1 or events_per_user < 1:
        raise ValueError("history_length and events_per_user must be at least 1.")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1]; got {noise}.")
    rng = check_random_state(random_state)
    order = rng.permutation(n_items)
    next_of = np.empty(n_items, dtype=np.int64)
    next_of[order] = np.roll(order, -1)  # one cycle through every item
    length = history_length + events_per_user
    events = np.empty((n_users, length), dtype=np.int64)
    events[:, 0] = rng.randint(n_items, size=n_users)
    jumps = rng.random_sample((n_users, length)) < noise
    random_items = rng.randint(n_items, size=(n_users, length))
    for t in range(1, length):
        events[:, t] = np.where(jumps[:, t], random_items[:, t], next_of[events[:, t - 1]])
    windows = np.lib.stride_tricks.sliding_window_view(events, history_length + 1, axis=1)
    windows = windows.reshape(-1, history_length + 1)
    frame = pd.DataFrame(
        windows[:, :history_length],
        columns=[f"hist_item_{i}" for i in range(1, history_length + 1)],
    )
    frame.insert(0, "user_id", np.repeat(np.arange(n_users), events_per_user))
    frame["item"] = windows[:, history_length]
    return frame
