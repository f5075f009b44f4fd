"""The columnar (Arrow) path of SequenceEncoder gives exactly the object path's output."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklattn import SequenceEncoder
from sklattn.preprocessing import _columnar, _encoder

pa = pytest.importorskip("pyarrow")

VALUES = st.sampled_from(["a", "b", "c", "d", "e", "ü", "a b", "", None, np.nan])


def _frame(rows: list, storage: str, n_rows: int = 0) -> pd.DataFrame:
    # Repeated up to n_rows: transform looks small frames (<= 4096 cells) up in a dict.
    rows = rows * -(-n_rows // len(rows)) if n_rows else rows
    columns = {f"hist_{k}": [r[k] for r in rows] for k in range(1, 4)}
    columns["item"] = [r[3] for r in rows]
    columns["shop"] = [r[4] for r in rows]
    frame = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in columns.items()})
    if storage != "object":
        frame = frame.astype(storage)
    return frame


def _encode(fit: pd.DataFrame, test: pd.DataFrame, enabled: bool, **params):
    _columnar.ENABLED = enabled
    # Warn about unseen shares from the first value, so that the two paths' counts of
    # present and unseen values are compared too.
    minimum, _encoder.UNSEEN_WARNING_MIN_VALUES = _encoder.UNSEEN_WARNING_MIN_VALUES, 1
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            enc = SequenceEncoder(sequences={"hist_": "item"}, categorical=["shop"], **params)
            out = (enc.fit_transform(fit), enc.transform(test))
        return out, enc.vocabularies_, [str(w.message) for w in caught]
    finally:
        _columnar.ENABLED = True
        _encoder.UNSEEN_WARNING_MIN_VALUES = minimum


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fit_rows=st.lists(st.tuples(*[VALUES] * 5), min_size=1, max_size=30),
    test_rows=st.lists(st.tuples(*[VALUES] * 5), min_size=1, max_size=30),
    storage=st.sampled_from(["object", "string[pyarrow]", "str"]),
    min_frequency=st.integers(1, 3),
    most_recent=st.sampled_from(["last", "first"]),
)
def test_same_output_as_the_object_path(fit_rows, test_rows, storage, min_frequency,
                                        most_recent):
    params = dict(min_frequency=min_frequency, most_recent=most_recent, unseen_warning=0.3)
    fit, test = _frame(fit_rows, storage), _frame(test_rows, storage, n_rows=1000)
    columnar = _encode(fit, test, True, **params)
    former = _encode(fit.astype(object), test.astype(object), False, **params)
    for a, b in zip(columnar[0], former[0], strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert columnar[1].keys() == former[1].keys()
    for vocab, values in former[1].items():
        assert list(columnar[1][vocab]) == list(values)
    assert columnar[2] == former[2]  # the same warnings, unseen shares included


def test_string_columns_take_the_arrow_path():
    frame = pd.DataFrame({"a": pd.Series(["x", None, ""], dtype="string[pyarrow]"),
                          "b": pd.Series(["y", np.nan, "x"], dtype=object)})
    columns = _columnar.string_columns(frame)
    assert [c.to_pylist() for c in columns] == [["x", None, ""], ["y", None, "x"]]
    # Anything but strings and missing values stays on the object path: bytes would
    # become str, numbers would change type.
    for values in ([b"x", None], ["x", 1], [1.5, None]):
        assert _columnar.string_columns(pd.Series(values, dtype=object)) is None
    assert _columnar.string_columns(pd.Series([1, 2])) is None


def test_string_ids_of_an_int_vocabulary_convert_exactly():
    fit = pd.DataFrame({"hist_1": [1, 2], "hist_2": [2, 3], "item": [3, 1]})
    enc = SequenceEncoder(sequences={"hist_": "item"}).fit(fit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = enc.transform(fit.astype("string[pyarrow]"))
    # "2" is 2 after an exact conversion, as on the object path: the same ids.
    pd.testing.assert_frame_equal(out, enc.transform(fit))


def test_a_refit_encoder_looks_up_its_new_vocabulary():
    rng = np.random.default_rng(0)

    def frame(values):
        return pd.DataFrame({
            "hist_1": pd.Series(rng.choice(values, 3000), dtype="str"),
            "item": pd.Series(rng.choice(values, 3000), dtype="str"),
        })

    first, second = frame(list("abcdef")), frame(list("defghij"))
    enc = SequenceEncoder(sequences={"hist_": "item"})
    enc.fit(first).transform(first)  # builds the look-up of the first vocabulary
    fresh = SequenceEncoder(sequences={"hist_": "item"}).fit(second)
    pd.testing.assert_frame_equal(enc.fit(second).transform(second), fresh.transform(second))
    enc.partial_fit(first)  # continues from second: the look-up must follow again
    both = SequenceEncoder(sequences={"hist_": "item"}).fit(pd.concat([second, first]))
    pd.testing.assert_frame_equal(enc.transform(first), both.transform(first))


def test_strings_arrow_cannot_hold_take_the_object_path():
    values = pd.Series(["a", "\ud800", None], dtype=object)  # a lone surrogate
    assert _columnar.string_columns(values) is None
    out = SequenceEncoder(sequences={"hist_": "item"}).fit_transform(
        pd.DataFrame({"hist_1": values, "item": pd.Series(["\ud800", "a", "a"], dtype=object)})
    )
    assert out["item"].tolist() == [3, 2, 2]
