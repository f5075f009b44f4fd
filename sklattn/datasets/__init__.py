"""Synthetic data with a known optimum, MovieLens loaders and chunked Parquet reading."""

from ..preprocessing import make_history_table
from ._movielens import fetch_movielens, load_movielens
from ._parquet import iter_parquet
from ._reranking import make_reranking_lists
from ._stream import DataStream
from ._synthetic import (
    make_field_interactions,
    make_interest_sequences,
    make_long_histories,
    make_multi_interest_sequences,
)
from ._transitions import make_transition_sequences

__all__ = [
    "DataStream",
    "fetch_movielens",
    "iter_parquet",
    "load_movielens",
    "make_field_interactions",
    "make_history_table",
    "make_interest_sequences",
    "make_long_histories",
    "make_multi_interest_sequences",
    "make_reranking_lists",
    "make_transition_sequences",
]
