"""Time gaps as a behaviour feature: SequenceEncoder(timestamps=...) writes log-bucketised
gaps aligned with a behaviour sequence, and DIN / DIEN use them with no change."""

import datetime
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from sklattn import DIENClassifier, DINClassifier, SequenceEncoder
from sklattn._schema import FIRST_ID, OOV_ID, PAD_ID, SCHEMA_ATTR, TIME_GAP, Schema
from sklattn.datasets import make_interest_sequences

TIMES = {"h": ("t", "now")}
SEQS = {"hist_item": "item", "hist_cat": "cat"}
GAPS = {"hist_item": ("hist_time", "time")}


def _one_behaviour(gaps, **params):
    """One behaviour per row at time 0, the request ``gap`` seconds later."""
    X = pd.DataFrame({"item": 1, "h_1": 1, "t_1": 0.0, "now": np.asarray(gaps, float)})
    enc = SequenceEncoder(sequences={"h": "item"}, timestamps=TIMES, **params)
    return enc, enc.fit_transform(X)


# ------------------------------------------------------------------ buckets
def test_bucket_boundaries_are_exact():
    gaps = [0, 0.5, 0.999, 1, 1.5, 2, 3, 4, 7.99, 8, 2**30 - 1, 2**30, 2**31, 2**40]
    buckets = [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 30, 31, 31, 31]
    enc, out = _one_behaviour(gaps)
    assert out["h_gap_1"].tolist() == [FIRST_ID + b for b in buckets]
    assert (out[TIME_GAP] == FIRST_ID).all()  # the candidate's gap is 0: bucket 0
    assert enc.schema_.vocabulary_sizes[TIME_GAP] == 32 + FIRST_ID
    # Fewer buckets: the last one takes every longer gap.
    enc, out = _one_behaviour([0.5, 1, 2, 3, 4, 1e9], time_gap_buckets=4)
    assert out["h_gap_1"].tolist() == [FIRST_ID + b for b in [0, 1, 2, 2, 3, 3]]
    assert enc.schema_.vocabulary_sizes[TIME_GAP] == 4 + FIRST_ID
    # A bucket decodes to its lower bound in seconds.
    assert enc.decode([PAD_ID, OOV_ID, 2, 3, 4, 5], TIME_GAP).tolist() == [
        None, None, 0.0, 1.0, 2.0, 4.0]


def _frame():
    # h1 is the most recent behaviour (most_recent="first"); row 1 misses h2, row 2 misses
    # the timestamp of h1, row 3 misses its request time.
    return pd.DataFrame({
        "item": [1, 2, 3, 1],
        "h1": [1, 2, 3, 1],
        "h2": [2, None, 1, 2],
        "h3": [3, 3, None, 3],
        "t1": [100.0, 100.0, np.nan, 100.0],
        "t2": [90.0, 95.0, 50.0, 90.0],
        "t3": [36.0, 99.0, 40.0, 36.0],
        "now": [100.0, 104.0, 100.0, np.nan],
    })


def test_padding_missing_and_alignment_under_most_recent_first():
    enc = SequenceEncoder(sequences={"h": "item"}, timestamps=TIMES, most_recent="first")
    out = enc.fit_transform(_frame())
    behaviours = out[["h_1", "h_2", "h_3"]].to_numpy()
    gaps = out[["h_gap_1", "h_gap_2", "h_gap_3"]].to_numpy()
    # Oldest to newest, left-padded; a gap is padding exactly where its behaviour is.
    np.testing.assert_array_equal(behaviours == PAD_ID, gaps == PAD_ID)
    bucket = {0: 0, 4: 3, 5: 3, 9: 4, 10: 4, 50: 6, 60: 6, 64: 7}
    assert gaps[0].tolist() == [FIRST_ID + bucket[64], FIRST_ID + bucket[10], FIRST_ID]
    # Row 1: h2 is missing, so h3 (gap 5 s) and h1 (gap 4 s) shift right together.
    assert gaps[1].tolist() == [PAD_ID, FIRST_ID + bucket[5], FIRST_ID + bucket[4]]
    assert enc.inverse_transform(out).loc[1, ["h_2", "h_3"]].tolist() == [3, 2]
    # Row 2: h3 is missing (padding); h1's timestamp is missing (unknown gap).
    assert gaps[2].tolist() == [PAD_ID, FIRST_ID + bucket[50], OOV_ID]
    # Row 3: no request time: every real behaviour's gap is unknown.
    assert gaps[3].tolist() == [OOV_ID, OOV_ID, OOV_ID]


def test_negative_gaps_are_unknown_and_warn():
    X = _frame().assign(now=[100.0, 96.0, 100.0, 100.0])  # row 1: h1 and h3 after the request
    enc = SequenceEncoder(sequences={"h": "item"}, timestamps=TIMES, most_recent="first")
    with pytest.warns(UserWarning, match=r"2 behaviour\(s\) of 'h'.*'t1'\.\.'t3'.*'now'"):
        out = enc.fit_transform(X)
    assert out.loc[1, ["h_gap_2", "h_gap_3"]].tolist() == [OOV_ID, OOV_ID]
    assert out.loc[1, "h_gap_1"] == PAD_ID  # h2 is missing: padding, not a negative gap


def test_list_valued_input_and_maxlen():
    numbered = _frame().iloc[[0, 1]]
    lists = pd.DataFrame({
        "item": numbered["item"],
        "h": [[1, 2, 3], [2, 3]],
        "t": [[100.0, 90.0, 36.0], [100.0, 99.0]],
        "now": numbered["now"],
    })
    params = dict(sequences={"h": "item"}, timestamps=TIMES, most_recent="first")
    from_lists = SequenceEncoder(**params).fit_transform(lists)
    from_columns = SequenceEncoder(**params).fit_transform(
        numbered.assign(h2=[2, 3], h3=[3, None], t2=[90.0, 99.0]))
    pd.testing.assert_frame_equal(from_lists, from_columns)
    # maxlen keeps the most recent gaps with their behaviours.
    short = SequenceEncoder(**params, maxlen=2).fit_transform(lists)
    assert short.columns.tolist() == ["h_1", "h_2", "h_gap_1", "h_gap_2", "item", TIME_GAP]
    np.testing.assert_array_equal(short[["h_gap_1", "h_gap_2"]],
                                  from_lists[["h_gap_2", "h_gap_3"]])
    with pytest.raises(ValueError, match=r"2 timestamps in 't' but 3 behaviours in 'h'"):
        SequenceEncoder(**params).fit(lists.assign(t=[[1.0, 2.0], [1.0, 2.0]]))


def test_datetimes_equal_seconds():
    X = _frame().assign(now=[100.5, 104.0, 100.0, 250.0])
    params = dict(sequences={"h": "item"}, timestamps=TIMES, most_recent="first")
    expected = SequenceEncoder(**params).fit_transform(X)
    cols = ["t1", "t2", "t3", "now"]
    naive = X.assign(**{c: pd.to_datetime(X[c] + 1.6e9, unit="s") for c in cols})
    aware = naive.assign(now=naive["now"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo"))
    objects = naive.assign(**{c: naive[c].astype(object) for c in cols})
    for frame in (naive, aware, objects):
        pd.testing.assert_frame_equal(SequenceEncoder(**params).fit_transform(frame), expected)


# ------------------------------------------------------------------ schema and persistence
def test_schema_records_the_gaps_and_travels():
    enc = SequenceEncoder(sequences={"h": "item"}, timestamps=TIMES, most_recent="first")
    out = enc.fit_transform(_frame())
    assert enc.schema_.time_gaps == {"h_gap": "h"}
    assert enc.schema_.sequences["h_gap"] == (["h_gap_1", "h_gap_2", "h_gap_3"], TIME_GAP)
    assert enc.schema_.candidate_of("h_gap") == TIME_GAP
    assert out.attrs[SCHEMA_ATTR]["time_gaps"] == {"h_gap": "h"}
    assert list(enc.get_feature_names_out()) == list(out.columns)
    assert Schema.from_dict(enc.schema_.to_dict()) == enc.schema_
    old = enc.schema_.to_dict()
    del old["time_gaps"]  # written before time gaps existed
    assert Schema.from_dict(old).time_gaps == {}
    again = pickle.loads(pickle.dumps(enc))
    pd.testing.assert_frame_equal(again.transform(_frame()), out)
    assert again.schema_.time_gaps == {"h_gap": "h"}
    # inverse_transform: gaps as their bucket's lower bound in seconds.
    back = enc.inverse_transform(out)
    assert back.loc[0, ["h_gap_1", "h_gap_2", "h_gap_3", TIME_GAP]].tolist() == [
        64.0, 8.0, 0.0, 0.0]


def test_encoders_and_schemas_pickled_before_time_gaps_load():
    enc = SequenceEncoder(sequences={"h": "item"}, most_recent="first").fit(_frame().drop(
        columns=["t1", "t2", "t3", "now"]))
    X = _frame().drop(columns=["t1", "t2", "t3", "now"])
    old = pickle.loads(pickle.dumps(enc))
    for name in ("timestamps", "time_gap_buckets", "timestamp_columns_in_"):
        vars(old).pop(name)
    vars(old.schema_).pop("time_gaps")
    restored = pickle.loads(pickle.dumps(old))
    assert restored.get_params() == enc.get_params()
    assert restored.schema_.time_gaps == {}
    pd.testing.assert_frame_equal(restored.transform(X), enc.transform(X))


def test_the_gaps_travel_through_column_transformer_and_skops():
    from sklearn.compose import ColumnTransformer

    from sklattn._data import resolve_schema

    X = _frame()
    enc = SequenceEncoder(sequences={"h": "item"}, timestamps=TIMES, most_recent="first")
    wrapped = ColumnTransformer([("enc", enc, list(X.columns))]).set_output(transform="pandas")
    assert resolve_schema(DINClassifier(), wrapped.fit_transform(X)).time_gaps == {"h_gap": "h"}
    sio = pytest.importorskip("skops.io")
    enc.fit(X)
    blob = sio.dumps(enc)
    restored = sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
    assert restored.schema_.time_gaps == {"h_gap": "h"}
    pd.testing.assert_frame_equal(restored.transform(X), enc.transform(X))


def test_polars_output_carries_the_gaps():
    pytest.importorskip("polars")
    from sklattn._data import resolve_schema

    enc = SequenceEncoder(sequences={"h": "item"}, timestamps=TIMES, most_recent="first")
    out = enc.set_output(transform="polars").fit_transform(_frame())
    assert type(out).__module__.startswith("polars")
    assert resolve_schema(DINClassifier(), out).time_gaps == {"h_gap": "h"}


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("params, frame, match", [
    (dict(timestamps={"x": ("t", "now")}), None, r"sequence 'x'.*'sequences' \(\['h'\]\)"),
    (dict(timestamps={"h": "t"}), None, r"timestamps\['h'\] must be a pair"),
    (dict(timestamps={"h": ("when", "now")}), None, r"timestamp sequence 'when'"),
    (dict(timestamps={"h": ("t", "asked")}), None, r"request timestamp column 'asked'"),
    (dict(timestamps=TIMES, drop=["now"]), None,
     r"\['now'\] are named in 'timestamps' and in drop"),
    (dict(timestamps=TIMES, time_gap_buckets=1), None, r"'time_gap_buckets' parameter"),
    (dict(timestamps=TIMES), lambda X: X.drop(columns="t3"),
     r"'t' of timestamps\['h'\] has 2 columns.*'h' has 3"),
    (dict(timestamps=TIMES), lambda X: X.assign(t2="yesterday"),
     r"Timestamps in 't2' must be numbers \(seconds\) or datetimes.*'yesterday'"),
    (dict(timestamps=TIMES), lambda X: X.assign(now=True), r"Timestamps in 'now'.*bool"),
    (dict(timestamps=TIMES), lambda X: X.assign(t1=np.inf), r"infinite values"),
    (dict(timestamps=TIMES), lambda X: X.assign(time_gap=1.0), r"column 'time_gap'"),
    (dict(timestamps=TIMES), lambda X: X.assign(h=[[1], [2], [3], [1]]).drop(
        columns=["h1", "h2", "h3"]), r"stored like the sequence 'h'"),
])
def test_errors_name_the_parameter_or_column(params, frame, match):
    X = _frame() if frame is None else frame(_frame())
    with pytest.raises(ValueError, match=match):
        SequenceEncoder(sequences={"h": "item"}, **params).fit(X)


def test_transform_errors_name_the_column():
    enc = SequenceEncoder(sequences={"h": "item"}, timestamps=TIMES).fit(_frame())
    with pytest.raises(ValueError, match=r"missing columns seen in fit: \['now'\]"):
        enc.transform(_frame().drop(columns="now"))
    with pytest.raises(ValueError, match=r"Timestamps in 'now'.*'noon'"):
        enc.transform(_frame().assign(now="noon"))
    with pytest.raises(ValueError, match=r"not seen in fit: \['time_gap'\]"):
        enc.transform(_frame().assign(time_gap=2))


stamps = st.one_of(
    st.floats(-1e3, 1e4), st.integers(-10, 10**4), st.none(), st.just(np.nan),
    st.just(np.inf), st.booleans(), st.text(max_size=3),
    st.datetimes(datetime.datetime(1960, 1, 1), datetime.datetime(2100, 1, 1)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(stamps, min_size=4, max_size=4), min_size=1, max_size=6))
def test_any_timestamps_give_aligned_ids_or_an_error_naming_the_column(rows):
    enc = SequenceEncoder(sequences={"h": "item"}, timestamps=TIMES).fit(_frame())
    X = pd.concat([_frame()] * 2, ignore_index=True).head(len(rows))
    X[["t1", "t2", "t3", "now"]] = pd.DataFrame(rows, dtype=object).to_numpy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = enc.transform(X)
        except ValueError as error:
            assert re.search(r"'(t1|t2|t3|now)'", str(error)), error
            return
    assert all(str(w.message).startswith("SequenceEncoder: ") for w in caught), caught
    gaps = out[["h_gap_1", "h_gap_2", "h_gap_3"]].to_numpy()
    behaviours = out[["h_1", "h_2", "h_3"]].to_numpy()
    np.testing.assert_array_equal(gaps == PAD_ID, behaviours == PAD_ID)
    assert gaps.max() < enc.schema_.vocabulary_sizes[TIME_GAP]


# ------------------------------------------------------------------ models
TINY_DIN = dict(embedding_dim=4, hidden_units=(8,), attention_units=(4,), epochs=1,
                learning_rate=1e-2, random_state=0)
TINY_DIEN = dict(embedding_dim=4, hidden_units=(8,), aux_hidden_units=(4,), epochs=1,
                 learning_rate=1e-2, random_state=0)


@pytest.fixture(scope="module")
def timed_logs():
    return make_interest_sequences(400, maxlen=5, time_decay=86400.0, random_state=0)


@pytest.mark.parametrize("model", [DINClassifier(**TINY_DIN), DIENClassifier(**TINY_DIEN)],
                         ids=["din", "dien"])
def test_din_and_dien_attend_with_the_gaps_and_ignore_padding(timed_logs, model):
    from sklattn.models._blocks import attended_groups

    X, y = timed_logs
    pipe = make_pipeline(SequenceEncoder(sequences=SEQS, timestamps=GAPS), model).fit(X, y)
    est = pipe[-1]
    # The gap sequence is a side feature of each behaviour, its zero gap part of the query.
    assert attended_groups(est.schema_) == [
        (["hist_item", "hist_cat", "hist_item_gap"], ["item", "cat", TIME_GAP])]
    assert not any(layer.name.startswith("mean_pooling") for layer in est.model_.layers)
    Xe = pipe[0].transform(X)
    assert (Xe.filter(like="hist_item_gap_").to_numpy() == PAD_ID).any()  # some padding
    before = est.predict_proba(Xe)
    # Padding (id 0) shares its table row with nothing real: overwrite it with noise.
    for table in est._tables.values():
        weights = table.embeddings.numpy()
        weights[PAD_ID] = np.random.default_rng(0).normal(0, 10, weights.shape[1])
        table.embeddings.assign(weights)
    est._make_predict_fn()
    np.testing.assert_allclose(est.predict_proba(Xe), before, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pipe.predict_proba(X), before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["AFMClassifier", "NFMClassifier"])
def test_field_models_take_the_gaps_as_fields(timed_logs, name):
    import sklattn

    X, y = timed_logs
    model = getattr(sklattn, name)(embedding_dim=4, epochs=1, random_state=0)
    pipe = make_pipeline(SequenceEncoder(sequences=SEQS, timestamps=GAPS), model).fit(X, y)
    assert np.isfinite(pipe.predict_proba(X.head(20))).all()


def test_time_decay_data():
    X, y, p = make_interest_sequences(300, maxlen=6, time_decay=3600.0, return_proba=True,
                                      random_state=0)
    plain, _ = make_interest_sequences(300, maxlen=6, random_state=0)
    times = [f"hist_time_{t}" for t in range(1, 7)]
    # The same logs with timestamps added: NaN exactly where there is no behaviour, event
    # times in order, before the request.
    pd.testing.assert_frame_equal(X.drop(columns=[*times, "time"]), plain)
    stamps = X[times].to_numpy()
    np.testing.assert_array_equal(np.isnan(stamps), X.filter(like="hist_item_").isna().to_numpy())
    assert (np.nan_to_num(np.diff(stamps, axis=1), nan=0.0) >= 0).all()
    assert (X["time"].to_numpy() >= stamps[:, -1]).all()
    assert np.isfinite(p).all()
    with pytest.raises(ValueError, match="time_decay"):
        make_interest_sequences(10, time_decay=0.0)


def test_din_learns_from_time_gaps():
    """Clicks weigh each behaviour by exp(-gap / time_decay), normalised over the history:
    a softmax over the gaps. DIN (with normalised attention, that softmax's form) with the
    gaps beats DIN without them, which sees the order of events but not their times.
    Measured over data seeds 0..7: margins of 0.047 to 0.093."""
    X, y = make_interest_sequences(6000, n_items=100, n_categories=10, maxlen=10,
                                   time_decay=86400.0, random_state=0)
    X = X.drop(columns=["user", *X.filter(like="hist_item_").columns])
    train, test = slice(0, 4500), slice(4500, None)
    settings = dict(embedding_dim=8, hidden_units=(32,), attention_units=(16,), epochs=6,
                    learning_rate=1e-2, batch_size=128, activation="prelu",
                    normalize_attention=True, random_state=0)
    aucs = {}
    for gaps in (False, True):
        data = X if gaps else X.drop(columns=[*X.filter(like="hist_time_").columns, "time"])
        encoder = SequenceEncoder(
            sequences={"hist_cat": "cat"}, categorical=["item"],
            timestamps={"hist_cat": ("hist_time", "time")} if gaps else None,
        )
        model = make_pipeline(encoder, DINClassifier(**settings)).fit(data[train], y[train])
        aucs[gaps] = roc_auc_score(y[test], model.predict_proba(data[test])[:, 1])
    assert aucs[True] > aucs[False] + 0.02, aucs


# ------------------------------------------------------------------ retrievers
@pytest.mark.parametrize("name", ["MINDRetriever", "SASRecRetriever", "BERT4RecRetriever"])
def test_retrievers_read_the_behaviour_sequence_beside_its_gaps(name):
    """A time-gap sequence is not a second behaviour sequence: a retriever fitted on an
    encoder with ``timestamps`` reads the items only, so other gaps give the same
    items."""
    import sklattn

    X, _ = make_interest_sequences(300, n_items=40, maxlen=5, time_decay=0.5, random_state=0)
    encoder = SequenceEncoder(sequences={"hist_item": "item"}, timestamps=GAPS)
    E = encoder.fit_transform(X)
    model = getattr(sklattn, name)(embedding_dim=8, top_n=5, epochs=1, random_state=0).fit(E)
    assert model.sequence_ == "hist_item"
    gaps = [c for c in E.columns if c.startswith("hist_item_gap_")]
    assert gaps
    other = E.head(20).copy()
    other[gaps] = np.where(other[gaps] == PAD_ID, PAD_ID, FIRST_ID + 7)
    np.testing.assert_array_equal(model.predict(other), model.predict(E.head(20)))
