"""Helpers shared by sklattn's benchmark scripts (timing, JSON lines, MovieLens prep)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def emit(**record) -> None:
    """Print one JSON line (floats rounded) and flush."""
    clean = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in record.items()}
    print(json.dumps(clean), flush=True)


def latency_ms(fn, n_calls: int = 300, warmup: int = 20) -> tuple[float, float]:
    """p50 and p99 wall-clock milliseconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = np.empty(n_calls)
    for i in range(n_calls):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def movielens_ctr(
    maxlen: int = 20,
    test_fraction: float = 0.2,
    path: Path | None = None,
    user_columns: tuple[str, ...] = ("gender", "age", "occupation"),
):
    """MovieLens-100k as a click-through task.

    Every rating is an impression; rating >= 4 is a click. Each row carries the
    user's previous ``maxlen`` rated movies (and their first genre) as history,
    the candidate movie and genre, and the user's ``user_columns`` (of gender, age,
    occupation, zip_code).
    The split is by time: the latest ``test_fraction`` of ratings are the test set.

    Returns (X_train, X_test, y_train, y_test) as raw DataFrames / arrays.
    """
    from sklattn.datasets import load_movielens, make_history_table

    data = load_movielens(path or SHARED_DATA / "ml-100k")
    genres = data.movies.set_index("item_id")[["genre"]]
    table = make_history_table(data.ratings, maxlen=maxlen, item_features=genres)
    table = table.merge(genres, left_on="item_id", right_index=True, how="left")
    table = table.merge(
        data.users[["user_id", *user_columns]], on="user_id", how="left"
    )
    y = (table.pop("rating").to_numpy() >= 4).astype(np.int64)
    table = table.drop(columns=["timestamp"])
    n_test = int(len(table) * test_fraction)
    split = len(table) - n_test  # make_history_table sorts by time
    return table.iloc[:split], table.iloc[split:], y[:split], y[split:]


def require_shared_data() -> bool:
    if not (SHARED_DATA / "ml-100k").is_dir():
        emit(benchmark="movielens", skipped=f"{SHARED_DATA / 'ml-100k'} is absent")
        return False
    return True


def reference_python(env_var: str, default: str) -> str | None:
    """Interpreter of a reference library's own environment, if present."""
    path = os.environ.get(env_var, default)
    return path if path and Path(path).exists() else None


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)



def movielens_retrieval(
    maxlen: int = 20,
    path: Path | None = None,
    user_columns: tuple[str, ...] = ("gender", "age", "occupation"),
):
    """MovieLens-100k as a next-item retrieval task, leave-last-out.

    Every rating is a positive interaction (the rating value is ignored). Events are
    ordered by time per user (ties by file order); each row is one event: the user's
    previous ``maxlen`` movies as ``hist_movie_1 .. hist_movie_{maxlen}`` (right-aligned,
    the highest number the most recent, missing where the user has fewer), the event's
    movie as ``movie``, ``user_id`` and the user's ``user_columns``.

    Each user's last event is the test row; every earlier event with at least one
    previous movie is a training row. Returns ``(X_train, X_test)`` as raw DataFrames.
    """
    from sklattn.datasets import load_movielens, make_history_table

    data = load_movielens(path or SHARED_DATA / "ml-100k")
    ratings = data.ratings.rename(columns={"item_id": "movie"})[
        ["user_id", "movie", "timestamp"]
    ]
    table = make_history_table(ratings, item_col="movie", maxlen=maxlen, prefix="hist_movie")
    table = table.merge(data.users[["user_id", *user_columns]], on="user_id", how="left")
    last = ~table.duplicated("user_id", keep="last")
    has_history = table[f"hist_movie_{maxlen}"].notna()
    table = table.drop(columns=["timestamp"])
    test = table[last].sort_values("user_id").reset_index(drop=True)
    train = table[~last & has_history].reset_index(drop=True)
    return train, test
