"""SequenceEncoder.partial_fit: chunks give the vocabularies and ids of one fit."""

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklattn import SequenceEncoder
from sklattn.datasets import make_interest_sequences
from sklattn.preprocessing import OOV_ID

IDS = st.one_of(st.sampled_from(["a", "b", "c", "d", "", None]), st.integers(1, 4))
NUMBERS = st.one_of(st.floats(-1e3, 1e3), st.just(np.nan))


def _frame(rows: list, strings: bool) -> pd.DataFrame:
    frame = pd.DataFrame({
        "hist_1": pd.Series([r[0] for r in rows], dtype=object),
        "hist_2": pd.Series([r[1] for r in rows], dtype=object),
        "item": pd.Series([r[2] for r in rows], dtype=object),
        "score": pd.Series([r[3] for r in rows], dtype=float),
    })
    if strings:  # every id a string: the columnar path
        for c in ("hist_1", "hist_2", "item"):
            frame[c] = frame[c].map(lambda v: v if v is None else str(v)).astype("str")
    return frame


def _reference_vocabulary(X, min_frequency, max_categories) -> list:
    """The documented order, written out: values read row by row (the history, then the
    candidate column), by decreasing count, ties by first appearance."""
    cells = [*X[["hist_1", "hist_2"]].to_numpy(dtype=object).ravel(), *X["item"]]
    counts: dict = {}
    for value in cells:
        if value is not None and value == value and value != "":  # not missing
            counts[value] = counts.get(value, 0) + 1
    ranked = sorted(counts, key=lambda v: -counts[v])  # stable: first appearance
    return [v for v in ranked if counts[v] >= min_frequency][:max_categories]


# Values dropped by min_frequency or max_categories, of a type the vocabulary lacks, or an
# all-missing numeric column: both encoders warn alike; the ids are what is compared.
@pytest.mark.filterwarnings("ignore:SequenceEncoder:UserWarning")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(IDS, IDS, IDS, NUMBERS), min_size=2, max_size=40),
    cuts=st.lists(st.integers(1, 39), max_size=4),
    strings=st.booleans(),
    min_frequency=st.integers(1, 3),
    max_categories=st.one_of(st.none(), st.integers(1, 4)),
)
def test_chunks_give_the_vocabularies_of_one_fit(rows, cuts, strings, min_frequency,
                                                  max_categories):
    X = _frame(rows, strings)
    bounds = sorted({0, len(X), *(c for c in cuts if c < len(X))})
    params = dict(sequences={"hist_": "item"}, min_frequency=min_frequency,
                  max_categories=max_categories)
    whole = SequenceEncoder(**params).fit(X)
    assert list(whole.vocabularies_["item"]) == _reference_vocabulary(
        X, min_frequency, max_categories
    )
    chunked = SequenceEncoder(**params)
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        chunked.partial_fit(X.iloc[a:b])
    assert whole.vocabularies_.keys() == chunked.vocabularies_.keys()
    for vocab, values in whole.vocabularies_.items():
        assert list(chunked.vocabularies_[vocab]) == list(values)
    np.testing.assert_allclose(chunked.numeric_mean_, whole.numeric_mean_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(chunked.numeric_scale_, whole.numeric_scale_, rtol=1e-9)
    out, expected = chunked.transform(X), whole.transform(X)
    ids = list(whole.schema_.int_columns)
    pd.testing.assert_frame_equal(out[ids], expected[ids])


def test_chunks_of_a_synthetic_log_and_their_ids():
    X, _ = make_interest_sequences(3000, n_items=300, maxlen=10, random_state=0)
    X = X.drop(columns="user_activity")
    params = dict(sequences={"hist_item": "item", "hist_cat": "cat"}, categorical=["user"])
    whole = SequenceEncoder(**params).fit(X)
    chunked = SequenceEncoder(**params)
    for chunk in np.array_split(np.arange(len(X)), 7):
        chunked.partial_fit(X.iloc[chunk])
    pd.testing.assert_frame_equal(chunked.transform(X), whole.transform(X))
    assert chunked.schema_.to_dict() == whole.schema_.to_dict()


def test_partial_fit_after_fit_continues_from_its_counts():
    X, _ = make_interest_sequences(400, n_items=50, maxlen=5, random_state=1)
    params = dict(sequences={"hist_item": "item", "hist_cat": "cat"})
    both = SequenceEncoder(**params).fit(X.iloc[:250]).partial_fit(X.iloc[250:])
    whole = SequenceEncoder(**params).fit(X)
    for vocab, values in whole.vocabularies_.items():
        assert list(both.vocabularies_[vocab]) == list(values)
    # fit starts over: the earlier chunks are forgotten.
    refit = pickle.loads(pickle.dumps(both)).fit(X.iloc[250:])
    second = SequenceEncoder(**params).fit(X.iloc[250:])
    assert list(refit.vocabularies_["item"]) == list(second.vocabularies_["item"])
    assert list(second.vocabularies_["item"]) != list(whole.vocabularies_["item"])


def test_a_chunk_with_other_columns_is_an_error_naming_them():
    X, _ = make_interest_sequences(100, maxlen=5, random_state=0)
    enc = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}).partial_fit(X)
    with pytest.raises(ValueError, match=r"missing \['user_activity'\], not seen before \['x'\]"):
        enc.partial_fit(X.drop(columns="user_activity").assign(x=1.0))
    with pytest.raises(ValueError, match="at least one row"):
        enc.partial_fit(X.iloc[:0])


def test_an_encoder_fitted_without_running_counts_refuses_partial_fit():
    X, _ = make_interest_sequences(100, maxlen=5, random_state=0)
    enc = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}).fit(X)
    del enc._running  # as fitted by an earlier version
    with pytest.raises(ValueError, match="call fit"):
        enc.partial_fit(X)


def test_max_categories_keeps_the_most_frequent_values():
    X = pd.DataFrame({"hist_1": ["a", "a", "b", "c"], "hist_2": ["a", "b", "c", "d"],
                      "item": ["d", "e", "a", "b"]})
    enc = SequenceEncoder(sequences={"hist_": "item"}, max_categories=2).fit(X)
    assert list(enc.vocabularies_["item"]) == ["a", "b"]
    out = enc.transform(X)
    assert set(out["item"]) == {OOV_ID, 2, 3}
    with pytest.raises(ValueError, match="max_categories"):
        SequenceEncoder(sequences={"hist_": "item"}, max_categories=0).fit(X)


def test_a_chunk_that_raises_adds_nothing():
    good = pd.DataFrame({"hist_1": ["a", "b", "b"], "item": ["c", "c", "a"], "x": [1.0, 2, 3]})
    bad = good.assign(hist_1=["z", "z", "z"], x=[1.0, np.nan, 3])
    params = dict(sequences={"hist_": "item"}, numeric_nan="error")
    enc = SequenceEncoder(**params).partial_fit(good)
    with pytest.raises(ValueError, match="NaN in numeric columns"):
        enc.partial_fit(bad)
    enc.partial_fit(good)
    twice = SequenceEncoder(**params).fit(pd.concat([good, good]))
    assert list(enc.vocabularies_["item"]) == list(twice.vocabularies_["item"])
    np.testing.assert_allclose(enc.numeric_mean_, twice.numeric_mean_)
    # A first chunk that raises leaves no roles behind: the next call starts over.
    fresh = SequenceEncoder(**params)
    with pytest.raises(ValueError, match="NaN in numeric columns"):
        fresh.partial_fit(bad)
    fresh.partial_fit(good.drop(columns="x"))
    assert fresh.schema_.numeric == []
