import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from sklattn import SequenceEncoder
from sklattn.preprocessing import OOV_ID, PAD_ID, find_sequence_columns


def _frame():
    return pd.DataFrame(
        {
            "movieId": [10, 20, 30, 10],
            "userRatedMovie1": [20, 10, 10, 30],
            "userRatedMovie2": [30.0, np.nan, 20.0, np.nan],
            "userRatedMovie10": [40, 40, 40, 40],
            "userId": [1, 2, 2, 3],
            "genre": ["a", "b", None, "a"],
            "score": [1.0, 2.0, np.nan, 5.0],
            "label": [0, 1, 0, 1],
        }
    )


def test_find_sequence_columns_orders_numerically():
    cols = ["h10", "h2", "h_1", "h", "hx1", "h_2b"]
    assert find_sequence_columns(["h10", "h2", "h1x"], "h") == ["h2", "h10"]
    assert find_sequence_columns(cols, "h") == ["h"]  # a list-valued column wins
    assert find_sequence_columns(["hist_item_3", "hist_item_1", "hist_cat_1"], "hist_item") == [
        "hist_item_1",
        "hist_item_3",
    ]


def test_shared_vocabulary_padding_and_order():
    enc = SequenceEncoder(
        sequences={"userRatedMovie": "movieId"}, categorical=["userId"], drop=["label"]
    )
    out = enc.fit_transform(_frame())
    seq = out[["userRatedMovie_1", "userRatedMovie_2", "userRatedMovie_3"]].to_numpy()
    ids = dict(zip(enc.vocabularies_["movieId"], range(2, 100), strict=False))
    # Highest-numbered column is the most recent; missing values are compacted as padding.
    assert seq[1].tolist() == [0, ids[10], ids[40]]
    assert seq[0].tolist() == [ids[20], ids[30], ids[40]]
    # The candidate shares the vocabulary with the sequence.
    assert out["movieId"].tolist() == [ids[10], ids[20], ids[30], ids[10]]
    assert out["genre"].iloc[2] == PAD_ID
    assert list(out.columns) == list(enc.get_feature_names_out())
    assert out["score"].dtype == np.float32
    assert "label" not in out


def test_most_recent_first_and_maxlen():
    X = pd.DataFrame({"item": [1, 2], "h1": [5, 6], "h2": [4, np.nan], "h3": [3, 3]})
    enc = SequenceEncoder(sequences={"h": "item"}, most_recent="first", maxlen=2)
    out = enc.fit_transform(X)
    decoded = enc.inverse_transform(out)
    # h1 is the latest event: it ends up in the last (most recent) output column.
    assert decoded[["h_1", "h_2"]].values.tolist() == [[4, 5], [3, 6]]
    enc_last = SequenceEncoder(sequences={"h": "item"}, maxlen=2).fit(X)
    assert enc_last.inverse_transform(enc_last.transform(X))[["h_1", "h_2"]].values.tolist() == [
        [4, 3],
        [6, 3],
    ]


def test_list_valued_sequences():
    X = pd.DataFrame({"item": ["a", "b", "c"], "hist": [["a", "b"], [], None]})
    enc = SequenceEncoder(sequences={"hist": "item"}).fit(X)
    out = enc.transform(X)
    assert out[["hist_1", "hist_2"]].values[1:].tolist() == [[0, 0], [0, 0]]
    assert enc.inverse_transform(out)[["hist_1", "hist_2"]].values[0].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="list-like"):
        enc.transform(pd.DataFrame({"item": ["a"], "hist": ["abc"]}))
    # A numbered column beside the list would be overwritten by the output's hist_1.
    both = X.assign(hist_1=["x", "y", "z"], hist_01=1.0)
    with pytest.raises(ValueError, match=r"'hist' is stored twice.*'hist_1'"):
        SequenceEncoder(sequences={"hist": "item"}).fit(both)
    out = SequenceEncoder(sequences={"hist": "item"}, drop=["hist_1"]).fit_transform(both)
    assert not out.columns.duplicated().any() and "hist_01" in out.columns


def test_unseen_values_and_min_frequency():
    X = pd.DataFrame({"item": ["a", "a", "b"], "h_1": ["a", "b", "c"], "u": ["x", "x", "y"]})
    enc = SequenceEncoder(sequences={"h": "item"}, min_frequency=2).fit(X)
    out = enc.transform(pd.DataFrame({"item": ["zzz", "b"], "h_1": ["c", ""], "u": ["q", "x"]}))
    # "b" is seen twice (candidate and history share the vocabulary), "c" once: too rare.
    assert out["item"].tolist() == [OOV_ID, 3]
    assert out["h_1"].tolist() == [OOV_ID, PAD_ID]
    assert out["u"].tolist() == [OOV_ID, 2]


def test_candidate_may_be_absent_at_transform():
    enc = SequenceEncoder(sequences={"userRatedMovie": "movieId"}, drop=["label"]).fit(_frame())
    out = enc.transform(_frame().drop(columns=["movieId", "label"]))
    assert out["movieId"].tolist() == [0, 0, 0, 0]
    assert out.attrs["sklattn_schema"]["absent"] == ["movieId"]


def test_column_errors_name_the_columns():
    enc = SequenceEncoder(sequences={"userRatedMovie": "movieId"}, drop=["label"]).fit(_frame())
    with pytest.raises(ValueError, match="score"):
        enc.transform(_frame().drop(columns=["score"]))
    with pytest.raises(ValueError, match="surprise"):
        enc.transform(_frame().assign(surprise=1))
    with pytest.raises(ValueError, match="userWatched"):
        SequenceEncoder(sequences={"userWatched": "movieId"}).fit(_frame())
    with pytest.raises(ValueError, match="nope"):
        SequenceEncoder(categorical=["nope"]).fit(_frame())
    with pytest.raises(TypeError, match="DataFrame"):
        SequenceEncoder().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="empty"):
        SequenceEncoder().fit(_frame().iloc[:0])
    with pytest.raises(ValueError, match="when"):
        SequenceEncoder().fit(_frame().assign(when=pd.Timestamp("2020")))
    with pytest.raises(ValueError, match="genre"):
        SequenceEncoder(numeric=["genre"]).fit(_frame())


def test_date_and_duration_columns_named_in_categorical_are_encoded():
    # The error for a date column tells the user to name it in 'categorical'; doing so
    # must then work, for dates and durations alike.
    frame = _frame().assign(
        when=pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-01", "2020-01-03"]),
        lag=pd.to_timedelta([1, 2, 1, 1], unit="D"),
    )
    enc = SequenceEncoder(categorical=["when", "lag"], drop=["label"]).fit(frame)
    out = enc.transform(frame)
    assert enc.schema_.categorical["when"] == "when"
    assert out["when"].tolist()[0] == out["when"].tolist()[2] >= 2
    assert enc.decode(out["when"], "when").tolist() == frame["when"].tolist()
    assert enc.decode(out["lag"], "lag").tolist() == frame["lag"].tolist()


def test_numeric_nan_policies():
    X = _frame()
    mean = np.nanmean(X["score"])
    out = SequenceEncoder(numeric_nan="mean", scale_numeric=False).fit_transform(X)
    assert out["score"].iloc[2] == pytest.approx(mean)
    out = SequenceEncoder(numeric_nan="zero", scale_numeric=False).fit_transform(X)
    assert out["score"].iloc[2] == 0
    out = SequenceEncoder(numeric_nan="mean").fit_transform(X)
    assert out["score"].iloc[2] == 0 and np.isfinite(out["score"]).all()
    with pytest.raises(ValueError, match="score"):
        SequenceEncoder(numeric_nan="error").fit(X)
    enc = SequenceEncoder().fit(X.fillna({"score": 0}))
    with pytest.raises(ValueError, match="score"):
        enc.transform(X.assign(score=np.inf))


def test_inverse_transform_round_trip():
    X = _frame()
    enc = SequenceEncoder(sequences={"userRatedMovie": "movieId"}, drop=["label"]).fit(X)
    back = enc.inverse_transform(enc.transform(X))
    assert back["movieId"].tolist() == X["movieId"].tolist()
    assert back["genre"].tolist() == ["a", "b", None, "a"]
    np.testing.assert_allclose(back["score"].to_numpy(float)[[0, 1, 3]], [1.0, 2.0, 5.0], rtol=1e-6)


def test_set_output_clone_pickle():
    X = _frame()
    enc = SequenceEncoder(sequences={"userRatedMovie": "movieId"}, drop=["label"])
    assert clone(enc).get_params() == enc.get_params()
    enc.set_output(transform="pandas").fit(X)
    out = enc.transform(X)
    assert isinstance(out, pd.DataFrame) and "sklattn_schema" in out.attrs
    again = pickle.loads(pickle.dumps(enc))
    pd.testing.assert_frame_equal(again.transform(X), out)


def test_aligned_sequences_stay_aligned():
    X = pd.DataFrame(
        {
            "item": [1, 2],
            "cat": ["x", "y"],
            "hist_item_1": [1, 2],
            "hist_item_2": [np.nan, 1],
            "hist_item_3": [2, np.nan],
            "hist_cat_1": ["x", "y"],
            "hist_cat_2": [np.nan, "x"],
            "hist_cat_3": ["y", "y"],
        }
    )
    enc = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}).fit(X)
    back = enc.inverse_transform(enc.transform(X))
    assert back[["hist_item_1", "hist_item_2", "hist_item_3"]].values.tolist() == [
        [None, 1, 2],
        [2, 1, None],
    ]
    assert back[["hist_cat_1", "hist_cat_2", "hist_cat_3"]].values.tolist() == [
        [None, "x", "y"],
        ["y", "x", "y"],
    ]


def test_seed_format_samples(shared_data):
    df = pd.read_csv(shared_data / "sparrowrecsys" / "samples.csv", nrows=3000)
    enc = SequenceEncoder(
        sequences={"userRatedMovie": "movieId"},
        categorical=["userId"],
        drop=["label", "rating", "timestamp"],
        most_recent="first",
    )
    out = enc.fit_transform(df)
    seq = out[[f"userRatedMovie_{i}" for i in range(1, 6)]].to_numpy()
    present = df["userRatedMovie1"].notna().to_numpy()
    assert (seq[present, -1] > 1).all()  # userRatedMovie1 (the latest) ends up last
    assert (seq[~present] == 0).all()
    back = enc.inverse_transform(out[present].head(50))
    assert back["userRatedMovie_5"].tolist() == df["userRatedMovie1"][present].head(50).tolist()


values = st.one_of(
    st.text(max_size=4), st.none(), st.just(np.nan), st.integers(-3, 3), st.just("")
)


# Random rows are mostly unseen values of mixed types: the drift and unseen-share warnings
# are expected here (tests/test_schema_paths.py tests them).
@pytest.mark.filterwarnings("ignore:SequenceEncoder:UserWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fit_rows=st.lists(st.lists(values, min_size=4, max_size=4), min_size=1, max_size=12),
    new_rows=st.lists(st.lists(values, min_size=4, max_size=4), min_size=1, max_size=12),
)
def test_encoder_properties(fit_rows, new_rows):
    cols = ["item", "h_1", "h_2", "h_3"]
    fit_X = pd.DataFrame(fit_rows, columns=cols, dtype=object)
    new_X = pd.DataFrame(new_rows, columns=cols, dtype=object)
    enc = SequenceEncoder(sequences={"h": "item"}).fit(fit_X)
    size = enc.schema_.vocabulary_sizes["item"]
    out = enc.transform(new_X)
    ids = out.to_numpy()
    assert ids.dtype.kind == "i" and ids.min() >= 0 and ids.max() < size
    # Missing values are padding, everything else is a known id or the unseen id.
    missing = new_X.map(lambda v: v is None or v == "" or (isinstance(v, float) and np.isnan(v)))
    assert ((out["item"] == PAD_ID).to_numpy() == missing["item"].to_numpy()).all()
    assert (out[["h_1", "h_2", "h_3"]] != PAD_ID).sum(axis=1).tolist() == (
        (~missing[["h_1", "h_2", "h_3"]]).sum(axis=1).tolist()
    )
    # Left-padded: no event after... padding only at the oldest end.
    seq = out[["h_1", "h_2", "h_3"]].to_numpy() != PAD_ID
    assert (np.diff(seq.astype(int), axis=1) >= 0).all()
    # Seen values come back from inverse_transform.
    back = enc.inverse_transform(out)
    known = set(enc.vocabularies_["item"].tolist())
    for original, decoded in zip(new_X["item"], back["item"], strict=True):
        if original in known and not (isinstance(original, float) and np.isnan(original)):
            assert decoded == original
    # Small (dict) and large (vectorised) code paths agree.
    big = pd.concat([new_X] * (4096 // len(new_X) + 2), ignore_index=True)
    np.testing.assert_array_equal(enc.transform(big).to_numpy()[: len(new_X)], ids)


def test_group_and_rank_columns_pass_through_as_list_roles():
    X = pd.DataFrame({"req": ["q7", "q7", "q1", "q1", "q1"], "r": [2, 1, 1, 3, 2],
                      "item": ["a", "b", "c", "a", "b"], "h_1": ["a", "a", "b", "b", "b"],
                      "f": [0.1, 0.2, 0.3, 0.4, 0.5]})
    enc = SequenceEncoder(sequences={"h": "item"}, group="req", rank="r")
    out = enc.fit_transform(X)
    assert enc.schema_.group == "req" and enc.schema_.rank == "r"
    assert "req" not in enc.schema_.numeric + enc.schema_.int_columns
    assert out["req"].tolist() == [0, 0, 1, 1, 1] and out["req"].dtype == np.int64
    assert out["r"].tolist() == [2.0, 1.0, 1.0, 3.0, 2.0]
    assert list(out.columns[-2:]) == ["req", "r"] == enc.schema_.list_columns
    assert out.attrs["sklattn_schema"]["group"] == "req"
    # Codes are per call: a lone request is request 0.
    assert enc.transform(X.iloc[2:]).loc[:, "req"].tolist() == [0, 0, 0]
    assert enc.inverse_transform(out)["r"].tolist() == [2.0, 1.0, 1.0, 3.0, 2.0]
    restored = pickle.loads(pickle.dumps(enc))
    pd.testing.assert_frame_equal(restored.transform(X), out)
    with pytest.raises(ValueError, match="'zz' named in 'group'"):
        SequenceEncoder(group="zz").fit(X)
    with pytest.raises(ValueError, match="'f' is named in 'rank' and in 'numeric'"):
        SequenceEncoder(sequences={"h": "item"}, numeric=["f"], rank="f").fit(X)
    with pytest.raises(ValueError, match="the same column"):
        SequenceEncoder(group="req", rank="req").fit(X)
    with pytest.raises(ValueError, match="group column 'req' has missing values in 1 rows"):
        enc.transform(X.assign(req=["q7", None, "q1", "q1", "q1"]))
    with pytest.raises(ValueError, match="rank column 'r' has missing"):
        enc.transform(X.assign(r=[1, np.nan, 1, 2, 3]))
    with pytest.raises(ValueError, match="rank column 'r' must hold numbers"):
        enc.transform(X.assign(r=["top", "2", "1", "2", "3"]))
    with pytest.raises(ValueError, match="missing columns seen in fit: \\['req'\\]"):
        enc.transform(X.drop(columns="req"))
