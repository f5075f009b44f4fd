"""The "wide history" transformation: each event's previous items as columns.

:func:`make_history_table` turns any event log into one row per event with the
user's previous items (and, optionally, their attributes) as columns.
"""

from __future__ import annotations

from collections.abc import Hashable
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, InvalidParameterError, validate_params

__all__ = ["make_history_table"]

_MAXLEN = Interval(Integral, 1, None, closed="left")
_MIN_HISTORY = Interval(Integral, 0, None, closed="left")


def _as_masked(values: pd.Series) -> tuple[np.ndarray, np.ndarray, str]:
    """Split a column into a numpy data array, a missing mask and an output kind.

    The kind is ``"Int64"`` for integers, ``"Float64"`` for floats, ``"boolean"``
    for booleans and ``"object"`` for anything else. An empty column gives one
    missing placeholder so that gathers with index 0 stay valid.
    """
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        kind, np_dtype, fill = "boolean", bool, False
    elif pd.api.types.is_integer_dtype(dtype):
        kind, np_dtype, fill = "Int64", np.int64, 0
    elif pd.api.types.is_float_dtype(dtype):
        kind, np_dtype, fill = "Float64", np.float64, np.nan
    else:
        kind, np_dtype, fill = "object", object, None
    if len(values) == 0:
        return np.array([fill], dtype=np_dtype), np.ones(1, dtype=bool), kind
    return values.to_numpy(dtype=np_dtype, na_value=fill), values.isna().to_numpy(), kind


def _window_columns(
    data_us: np.ndarray,
    na_us: np.ndarray,
    kind: str,
    rows: np.ndarray,
    rows_rank: np.ndarray,
    names: list[str],
) -> dict[str, object]:
    """Build the window columns from per-user sorted values.

    ``data_us``/``na_us`` are ordered by (user, time, original row); ``rows`` are
    the positions, in that order, of the output rows and ``rows_rank`` the number
    of previous events of their user. Column ``j`` of ``names`` (0-based) holds
    the event ``len(names) - j`` steps back.
    """
    builders = {
        "Int64": pd.arrays.IntegerArray,
        "Float64": pd.arrays.FloatingArray,
        "boolean": pd.arrays.BooleanArray,
    }
    maxlen = len(names)
    columns: dict[str, object] = {}
    for j, name in enumerate(names):
        lag = maxlen - j
        src = np.maximum(rows - lag, 0)
        mask = (rows_rank < lag) | na_us[src]
        data = data_us[src]
        if kind == "object":
            data[mask] = None
            # An explicit object dtype: pandas would otherwise infer a string dtype.
            columns[name] = pd.Series(data, dtype=object, copy=False)
        else:
            columns[name] = builders[kind](data, mask)
    return columns


@validate_params(
    {
        "ratings": [pd.DataFrame],
        # Any column label, as before validation was added (pandas allows non-str labels).
        "user_col": [Hashable],
        "item_col": [Hashable],
        "time_col": [Hashable],
        "maxlen": [_MAXLEN],
        "prefix": [str, None],
        "item_features": [pd.DataFrame, None],
        "min_history": [_MIN_HISTORY],
    },
    prefer_skip_nested_validation=True,
)
def make_history_table(
    ratings: pd.DataFrame,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    maxlen: int = 20,
    prefix: str | None = None,
    item_features: pd.DataFrame | None = None,
    min_history: int = 0,
) -> pd.DataFrame:
    """Add each event's window of the user's previous items as columns.

    Events are ordered by ``time_col``; ties are broken by the original row order
    (stable sort). For every event the ``maxlen`` items the same user interacted
    with strictly before it (in that order) become the columns
    ``{prefix}_1 .. {prefix}_{maxlen}``: the highest number holds the most recent
    previous item and ``{prefix}_1`` the oldest item of the window. Positions with
    no previous event are missing (the windows are right-aligned).

    Parameters
    ----------
    ratings : pandas.DataFrame
        Event log, one row per interaction. All its columns are kept.
    user_col, item_col, time_col : hashable, default="user_id", "item_id", "timestamp"
        Names of the user, item and time columns.
    maxlen : int, default=20
        Number of previous items per event.
    prefix : str, default=None
        Prefix of the history columns; defaults to ``f"hist_{item_col}"``.
    item_features : pandas.DataFrame, default=None
        Item attributes, indexed by item id or holding a column named
        ``item_col``. Each other column ``f`` is looked up for every history
        position and added as ``hist_{f}_1 .. hist_{f}_{maxlen}`` (same ordering
        and missing rules; items absent from ``item_features`` give missing).
    min_history : int, default=0
        Drop events with fewer than ``min_history`` previous items of the same user.

    Returns
    -------
    table : pandas.DataFrame
        The events sorted by (time, original row order) with a fresh
        ``RangeIndex``, the original columns first, then the history columns,
        then the feature history columns. Integer item ids (and integer
        features) give nullable ``"Int64"`` columns with ``<NA>``; float
        features give ``"Float64"``, booleans ``"boolean"``; anything else gives
        ``object`` columns with ``None``.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        If an argument has the wrong type or is out of range (``maxlen < 1``,
        ``min_history < 0``, a bool for either of them). It is both a
        :class:`ValueError` and a :class:`TypeError`.
    ValueError
        If a column is missing, the user or time column has missing values,
        ``item_features`` has duplicated item ids, or an output column already
        exists.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklattn.preprocessing import make_history_table
    >>> log = pd.DataFrame({"user_id": [1, 1, 1, 2],
    ...                     "item_id": [10, 11, 12, 10],
    ...                     "timestamp": [1, 2, 3, 2]})
    >>> make_history_table(log, maxlen=2)
       user_id  item_id  timestamp  hist_item_id_1  hist_item_id_2
    0        1       10          1            <NA>            <NA>
    1        1       11          2            <NA>              10
    2        2       10          2            <NA>            <NA>
    3        1       12          3              10              11
    """
    # Integral intervals accept bools; keep rejecting them.
    for name, value, constraint in (
        ("maxlen", maxlen, _MAXLEN),
        ("min_history", min_history, _MIN_HISTORY),
    ):
        if isinstance(value, bool):
            raise InvalidParameterError(
                f"The {name!r} parameter of make_history_table must be {constraint}. "
                f"Got {value!r} instead."
            )
    missing_cols = [c for c in (user_col, item_col, time_col) if c not in ratings.columns]
    if missing_cols:
        raise ValueError(
            f"Column(s) {missing_cols} not found in ratings; available columns: "
            f"{list(ratings.columns)}."
        )
    for col in (user_col, time_col):
        if ratings[col].isna().any():
            raise ValueError(f"Column {col!r} has missing values.")
    maxlen = int(maxlen)
    if prefix is None:
        prefix = f"hist_{item_col}"

    features: pd.DataFrame | None = None
    if item_features is not None:
        features = item_features
        if item_col in features.columns:
            features = features.set_index(item_col)
        if features.index.has_duplicates:
            raise ValueError("item_features has duplicated item ids.")

    hist_names = [f"{prefix}_{j}" for j in range(1, maxlen + 1)]
    new_names = list(hist_names)
    if features is not None:
        for feat in features.columns:
            new_names.extend(f"hist_{feat}_{j}" for j in range(1, maxlen + 1))
    clash = sorted(set(new_names) & {str(c) for c in ratings.columns})
    dupes = len(new_names) != len(set(new_names))
    if clash or dupes:
        raise ValueError(
            f"Output column(s) {clash or 'with duplicated names'} would collide; choose "
            "another prefix or rename the columns."
        )

    # Global order: time, then original row order.
    frame = ratings.sort_values(time_col, kind="stable").reset_index(drop=True)
    n = len(frame)

    # Per-user order (stable, so it keeps the time order within each user).
    codes = pd.factorize(frame[user_col])[0]
    perm = np.argsort(codes, kind="stable")  # user-sorted position -> frame row
    sorted_codes = codes[perm]
    positions = np.arange(n)
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_codes[1:] != sorted_codes[:-1]
    first_of_group = np.maximum.accumulate(np.where(starts, positions, 0))
    rank_us = positions - first_of_group  # number of previous events of the user
    inv = np.empty(n, dtype=np.intp)
    inv[perm] = positions  # frame row -> user-sorted position

    keep = np.flatnonzero(rank_us[inv] >= min_history) if min_history > 0 else positions
    rows = inv[keep]
    rows_rank = rank_us[rows]

    data, na, kind = _as_masked(frame[item_col])
    new_columns = _window_columns(data[perm], na[perm], kind, rows, rows_rank, hist_names)
    if features is not None:
        lookup_us = features.index.get_indexer(frame[item_col])[perm]
        unknown_us = lookup_us < 0
        safe_us = np.where(unknown_us, 0, lookup_us)
        for feat in features.columns:
            data, na, kind = _as_masked(features[feat])
            names = [f"hist_{feat}_{j}" for j in range(1, maxlen + 1)]
            new_columns.update(
                _window_columns(
                    data[safe_us], na[safe_us] | unknown_us, kind, rows, rows_rank, names
                )
            )

    out = pd.concat(
        [
            frame.take(keep).reset_index(drop=True),
            pd.DataFrame(new_columns, index=pd.RangeIndex(len(keep))),
        ],
        axis=1,
    )
    return out
