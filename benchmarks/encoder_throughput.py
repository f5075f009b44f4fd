"""SequenceEncoder.fit_transform throughput on string ids: the columnar (Arrow) path
against the former object-array path, on the same data in the same run.

Data: ``make_interest_sequences`` with 200,000 items, 100 categories and histories of up
to 50 behaviours, every item and category id written as a string (``"i123"``), the user
id an integer. Each round encodes it three ways: Arrow-backed string columns (pandas
3's default ``str`` dtype; also what Parquet, polars and pyarrow give), object columns
of strings (how pandas 2 stores them; converted to Arrow once), and object columns with
the columnar path switched off (``_columnar.ENABLED = False``: the encoder as it was
before it, the baseline). Rounds alternate the three, so the ratios are taken under the
same machine state, and the three outputs are checked to be identical. A fourth
encoding hashes the items into 2 ** 20 buckets (``hash_buckets``) instead of counting
them, and reports its rows/s and the measured share of distinct items that share a
bucket, against the formula of ``docs/encoder.md``. One JSON line per size.

Usage: ``python benchmarks/encoder_throughput.py [--rows 200000,1000000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
from _common import emit

from sklattn import SequenceEncoder
from sklattn.datasets import make_interest_sequences
from sklattn.preprocessing import _columnar

SEQUENCES = {"hist_item": "item", "hist_cat": "cat"}


def string_frames(n_rows: int, maxlen: int = 50) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic log with string ids, as Arrow string columns and as object columns."""
    X, _ = make_interest_sequences(
        n_rows, n_items=200_000, n_categories=100, maxlen=maxlen, random_state=0
    )
    arrow = X.copy()
    for column in X.columns:
        if column.startswith(("hist_item", "hist_cat")) or column in ("item", "cat"):
            arrow[column] = ("i" + X[column].astype("string")).astype("string[pyarrow]")
    objects = arrow.copy()
    for column in objects.columns:
        if isinstance(objects[column].dtype, pd.StringDtype):
            objects[column] = objects[column].astype(object).where(objects[column].notna(), None)
    return arrow, objects


HASH_BUCKETS = 2**20


def encode(X: pd.DataFrame, **params) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    out = SequenceEncoder(sequences=SEQUENCES, categorical=["user"], **params).fit_transform(X)
    return out, time.perf_counter() - start


def collision_share(X: pd.DataFrame, hashed: pd.DataFrame) -> tuple[float, float, int]:
    """Measured and expected share of distinct items whose bucket holds another item."""
    items = [c for c in X.columns if c.startswith("hist_item")] + ["item"]
    raw = pd.concat([X[c] for c in items], ignore_index=True)
    ids = pd.concat([hashed[c] for c in items], ignore_index=True)
    pairs = pd.DataFrame({"value": raw, "id": ids}).dropna().drop_duplicates("value")
    sharing = pairs["id"].map(pairs["id"].value_counts()) > 1
    n = len(pairs)
    return float(sharing.mean()), 1 - (1 - 1 / HASH_BUCKETS) ** (n - 1), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="200000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for n_rows in (int(r) for r in args.rows.split(",")):
        arrow, objects = string_frames(n_rows)
        cells = sum(c.startswith(("hist_item", "hist_cat")) for c in arrow.columns)
        rates = {"arrow": [], "object": [], "former": [], "hashed": []}
        for _ in range(args.rounds):
            hashed, seconds = encode(arrow, hash_buckets={"item": HASH_BUCKETS})
            rates["hashed"].append(n_rows / seconds)
            fast, seconds = encode(arrow)
            rates["arrow"].append(n_rows / seconds)
            converted, seconds = encode(objects)
            rates["object"].append(n_rows / seconds)
            _columnar.ENABLED = False
            try:
                former, seconds = encode(objects)
            finally:
                _columnar.ENABLED = True
            rates["former"].append(n_rows / seconds)
            if not (fast.equals(former) and converted.equals(former)):
                raise AssertionError("The columnar and object paths gave different encodings.")
        ratios = {
            kind: [a / b for a, b in zip(rates[kind], rates["former"], strict=True)]
            for kind in ("arrow", "object")
        }
        measured, expected, distinct = collision_share(arrow, hashed)
        emit(benchmark="encoder_throughput", rows=n_rows, history_cells_per_row=cells,
             hash_buckets=HASH_BUCKETS, distinct_items=distinct,
             items_sharing_a_bucket=measured, expected_sharing=expected,
             median_hashed_over_former=statistics.median(
                 a / b for a, b in zip(rates["hashed"], rates["former"], strict=True)),
             **{f"{k}_rows_per_s": [round(r) for r in v] for k, v in rates.items()},
             arrow_over_former=[round(r, 2) for r in ratios["arrow"]],
             object_over_former=[round(r, 2) for r in ratios["object"]],
             median_arrow_over_former=statistics.median(ratios["arrow"]),
             median_object_over_former=statistics.median(ratios["object"]),
             identical_output=True, pandas=pd.__version__,
             string_dtype=str(arrow["hist_item_1"].dtype))
        del arrow, objects, fast, converted, former, hashed


if __name__ == "__main__":
    main()
