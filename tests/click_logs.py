"""A small synthetic click log with string ids, as the Parquet and stream tests read it."""

import pandas as pd

from sklattn.datasets import make_interest_sequences

SEQUENCES = {"hist_item": "item", "hist_cat": "cat"}


def string_click_log(n: int, seed: int) -> pd.DataFrame:
    """``make_interest_sequences`` rows with string item and category ids and a label."""
    X, y = make_interest_sequences(n, n_items=60, n_categories=6, maxlen=8, random_state=seed)
    X = X.drop(columns="user_activity")
    for c in X.columns:  # string ids, as click logs usually hold them
        if c.startswith(("hist_item", "hist_cat")) or c in ("item", "cat"):
            X[c] = ("i" + X[c].astype("string")).astype(object).where(X[c].notna(), None)
    return X.assign(label=y)
