"""Fuzzing the pipeline with hypothesis-generated frames.

Whatever arrives, a pipeline answers with a valid probability for every row, or with a
ValueError / TypeError whose message names a column or a parameter: never NaN, never a
numpy, pandas or Keras message.
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.pipeline import make_pipeline

from sklattn import DINClassifier, SequenceEncoder

HIST = [f"hist_item_{i}" for i in (1, 2, 3)]
COLUMNS = ["item", "cat", *HIST, "activity", "tag"]
PARAMETERS = ["X", "sequences", "categorical", "numeric", "drop"]


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = rng.integers(1, 30, size=(n, 4)).astype(float)
    items[rng.random((n, 4)) < 0.2] = np.nan
    items[:, 0] = rng.integers(1, 30, size=n)
    return pd.DataFrame({
        "item": items[:, 0].astype(int),
        "cat": rng.choice(["a", "b", "c"], size=n),
        **{c: items[:, i + 1] for i, c in enumerate(HIST)},
        "activity": rng.normal(size=n),
        "tag": rng.choice(["x", "y", None], size=n),
    })


def _model():
    return make_pipeline(
        SequenceEncoder(sequences={"hist_item": "item"}, categorical=["tag"]),
        DINClassifier(embedding_dim=4, hidden_units=(4,), attention_units=(4,), epochs=1,
                      batch_size=64, random_state=0),
    )


@pytest.fixture(scope="module")
def fitted():
    X = _frame(300)
    return _model().fit(X, np.arange(300) % 2)


# A column's values at predict time: its own, or another type, missing values, empty
# strings, unseen values, booleans, dates.
def _mutations(column: pd.Series, draw) -> pd.Series:
    kind = draw(st.sampled_from(
        ["same", "str", "float", "object", "nan", "empty", "unseen", "bool", "date", "mixed"]
    ))
    n = len(column)
    if kind == "str":
        return column.astype(str)
    if kind == "float":
        return pd.to_numeric(column, errors="coerce").astype(float)
    if kind == "object":
        return column.astype(object)
    if kind == "nan":
        return pd.Series([np.nan] * n, index=column.index)
    if kind == "empty":
        return pd.Series([""] * n, index=column.index)
    if kind == "unseen":
        return pd.Series([f"new{i}" for i in range(n)], index=column.index)
    if kind == "bool":
        return pd.Series([bool(i % 2) for i in range(n)], index=column.index)
    if kind == "date":
        return pd.Series(pd.date_range("2020-01-01", periods=n), index=column.index)
    if kind == "mixed":
        return pd.Series([1, "a", None, 2.5, True][:n] + [0] * max(0, n - 5),
                         index=column.index, dtype=object)[:n]
    return column


@st.composite
def frames(draw):
    n = draw(st.integers(0, 6))
    frame = _frame(max(n, 1), seed=draw(st.integers(0, 10)))[:n].copy()
    for c in COLUMNS:
        if draw(st.booleans()):
            frame[c] = _mutations(frame[c], draw)
    columns = list(frame.columns)
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    if draw(st.integers(0, 4)) == 0:
        columns = [c for c in columns if c != draw(st.sampled_from(COLUMNS))]
    frame = frame[columns]
    if draw(st.integers(0, 4)) == 0:
        frame = pd.concat([frame, frame[[draw(st.sampled_from(columns))]]], axis=1)
    if draw(st.integers(0, 5)) == 0:
        frame = frame.assign(extra=1.0)
    return frame


def _check_outcome(call, names) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # drift warnings are expected
            proba = call()
    except (ValueError, TypeError) as error:
        message = str(error)
        named = [n for n in names if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", message)]
        assert named, f"error names no column or parameter: {message!r}"
        for internal in ("truth value of an array", "cannot reshape", "could not convert",
                         "Traceback", "tensorflow", "keras.src"):
            assert internal not in message, message
        return
    proba = np.asarray(proba)
    assert proba.ndim == 2 and proba.shape[1] == 2
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(frame=frames())
def test_predict_answers_or_names_the_problem(fitted, frame):
    _check_outcome(lambda: fitted.predict_proba(frame), [*COLUMNS, "extra", *PARAMETERS])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(frame=frames())
def test_fit_answers_or_names_the_problem(frame):
    def fit_then_predict():
        y = np.arange(len(frame)) % 2
        return _model().fit(frame, y).predict_proba(frame)

    _check_outcome(fit_then_predict, [*COLUMNS, "extra", *PARAMETERS, "y"])
