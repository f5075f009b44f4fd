"""The encoder's schema on every scikit-learn path, id types, persistence, and errors
that name what is wrong."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklattn import AFMClassifier, DINClassifier, MINDRetriever, SequenceEncoder
from sklattn.datasets import make_interest_sequences, make_multi_interest_sequences

SEQS = {"hist_item": "item", "hist_cat": "cat"}
TINY = dict(embedding_dim=4, hidden_units=(8,), attention_units=(4,), epochs=1,
            learning_rate=1e-2, random_state=0)


def _din_pipeline(**encoder):
    return make_pipeline(SequenceEncoder(sequences=SEQS, **encoder), DINClassifier(**TINY))


@pytest.fixture(scope="module")
def logs():
    X, y = make_interest_sequences(600, maxlen=5, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def fitted(logs):
    X, y = logs
    return _din_pipeline().fit(X, y)


# ------------------------------------------------------------------ the schema survives
@pytest.mark.parametrize("container", ["default", "pandas", "polars"])
def test_every_output_container_gives_the_same_predictions(logs, fitted, container):
    pytest.importorskip("polars")
    X, y = logs
    model = _din_pipeline().set_output(transform=container).fit(X, y)
    np.testing.assert_array_equal(model.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(
        model[-1].attention_weights(model[0].transform(X.head(5)))["weight"],
        fitted[-1].attention_weights(fitted[0].transform(X.head(5)))["weight"],
    )


def test_retriever_with_polars_output():
    pytest.importorskip("polars")
    X = make_multi_interest_sequences(n_users=80, history_length=5, random_state=0)

    def model():
        return make_pipeline(
            SequenceEncoder(sequences={"hist_item": "item"}),
            MINDRetriever(embedding_dim=4, n_interests=2, n_negatives=5, hidden_units=(4,),
                          epochs=1, top_n=5, random_state=0),
        )

    plain, polars = model().fit(X), model().set_output(transform="polars").fit(X)
    np.testing.assert_array_equal(polars.predict(X), plain.predict(X))
    assert polars.score(X) == plain.score(X)


def test_seed_format_pipeline_with_each_output_container(shared_data):
    pytest.importorskip("polars")
    df = pd.read_csv(shared_data / "sparrowrecsys" / "samples.csv", nrows=3000)
    y = df.pop("label")
    predictions = []
    for container in ("default", "pandas", "polars"):
        model = make_pipeline(
            SequenceEncoder(sequences={"userRatedMovie": "movieId"}, most_recent="first",
                            drop=["rating", "timestamp"]),
            DINClassifier(**TINY),
        ).set_output(transform=container).fit(df, y)
        predictions.append(model.predict_proba(df.head(300)))
    np.testing.assert_array_equal(predictions[0], predictions[1])
    np.testing.assert_array_equal(predictions[0], predictions[2])


def test_polars_and_pyarrow_input(logs, fitted):
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    X, _ = logs
    expected = fitted.predict_proba(X.head(50))
    np.testing.assert_array_equal(fitted.predict_proba(pl.from_pandas(X.head(50))), expected)
    np.testing.assert_array_equal(
        fitted.predict_proba(pa.Table.from_pandas(X.head(50), preserve_index=False)), expected
    )


def test_column_transformer_around_the_encoder(logs, fitted):
    X, y = logs
    wrapped = make_pipeline(
        ColumnTransformer([("enc", SequenceEncoder(sequences=SEQS), list(X.columns))]),
        DINClassifier(**TINY),
    ).set_output(transform="pandas").fit(X, y)
    np.testing.assert_array_equal(wrapped.predict_proba(X), fitted.predict_proba(X))


def test_a_lost_schema_is_an_error_that_says_how_to_pass_the_roles(logs):
    X, y = logs
    mixed = make_pipeline(
        ColumnTransformer([("enc", SequenceEncoder(sequences=SEQS), list(X.columns)),
                           ("scaled", StandardScaler(), ["user_activity"])]),
        DINClassifier(**TINY),
    ).set_output(transform="pandas")
    with pytest.raises(ValueError, match=r"enc__hist_item.*sequences="):
        mixed.fit(X, y)
    encoded = SequenceEncoder(sequences=SEQS).fit_transform(X)
    rebuilt = pd.DataFrame(encoded.to_numpy(), columns=encoded.columns)  # attrs lost
    with pytest.raises(ValueError, match="hist_item.*categorical="):
        DINClassifier(**TINY).fit(rebuilt, y)
    # Named roles work on the rebuilt frame, and numbered numeric features can opt out.
    DINClassifier(**TINY, sequences=SEQS).fit(rebuilt, y)
    DINClassifier(**TINY, categorical=[]).fit(rebuilt, y)


def test_columns_added_after_the_encoder_are_an_error(logs):
    X, y = logs
    encoded = SequenceEncoder(sequences=SEQS).fit_transform(X)
    with pytest.raises(ValueError, match="surprise"):
        DINClassifier(**TINY).fit(encoded.assign(surprise=1.0), y)


# ------------------------------------------------------------------ id types at transform
def test_ids_served_as_strings_are_converted_exactly(logs, fitted):
    X, _ = logs
    served = X.head(200).copy()
    ids = ["item"] + [f"hist_item_{i}" for i in range(1, 6)]
    served[ids] = served[ids].astype("Int64").astype(str).replace("<NA>", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = fitted.predict_proba(served)
    np.testing.assert_array_equal(proba, fitted.predict_proba(X.head(200)))


def test_ids_of_another_type_that_cannot_be_converted_warn_with_the_share():
    X = pd.DataFrame({"user": [1, 2, 3, 4] * 50, "x": np.arange(200.0)})
    encoder = SequenceEncoder(categorical=["user"]).fit(X)
    served = X.assign(user=["u1", "2", "003", "4"] * 50)  # "2", "4" convert; the rest cannot
    with pytest.warns(UserWarning, match=r"'user'.*\b50%.*not int"):
        out = encoder.transform(served)
    assert (out["user"].to_numpy()[1::4] == encoder.transform(X)["user"].to_numpy()[1::4]).all()
    assert (out["user"].to_numpy()[0::4] == 1).all()


def test_int_ids_served_to_a_string_vocabulary_are_converted():
    X = pd.DataFrame({"zip": ["10", "20", "30"] * 10})
    encoder = SequenceEncoder(categorical=["zip"]).fit(X)
    np.testing.assert_array_equal(encoder.transform(pd.DataFrame({"zip": [10, 20, 30] * 10})),
                                  encoder.transform(X))


def test_mostly_unseen_values_warn_above_the_threshold():
    X = pd.DataFrame({"item": np.arange(200) % 20})
    encoder = SequenceEncoder(categorical=["item"]).fit(X)
    fresh = pd.DataFrame({"item": np.arange(200) + 1000})
    with pytest.warns(UserWarning, match=r"100% of the values of 'item'.*unseen_warning=0.5"):
        encoder.transform(fresh)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder.transform(fresh.head(10))  # a small request: cold-start items are normal
        SequenceEncoder(categorical=["item"], unseen_warning=None).fit(X).transform(fresh)


def test_an_all_missing_numeric_column_is_named_when_text_arrives():
    X = pd.DataFrame({"item": ["a", "b"] * 10, "note": [np.nan] * 20})
    with pytest.warns(UserWarning, match=r"\['note'\] hold no value"):
        encoder = SequenceEncoder().fit(X)
    with pytest.raises(ValueError, match="'note' was numeric at fit.*'hello'"):
        encoder.transform(X.assign(note=["hello"] * 20))


# ------------------------------------------------------------------ persistence
@pytest.mark.parametrize("name", ["din", "afm", "mind"])
def test_skops_round_trip_of_fitted_pipelines(name):
    sio = pytest.importorskip("skops.io")
    if name == "mind":
        X = make_multi_interest_sequences(n_users=80, history_length=5, random_state=0)
        model = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}),
                              MINDRetriever(embedding_dim=4, n_interests=2, n_negatives=5,
                                            hidden_units=(4,), epochs=1, top_n=5,
                                            random_state=0)).fit(X)
        predict = model.predict
    else:
        X, y = make_interest_sequences(300, maxlen=4, random_state=0)
        est = (DINClassifier(**TINY) if name == "din" else
               AFMClassifier(embedding_dim=4, epochs=1, random_state=0))
        model = _din_pipeline().set_params(dinclassifier=est) if name == "din" else (
            make_pipeline(SequenceEncoder(sequences=SEQS), est))
        model.fit(X, y)
        predict = model.predict_proba
    blob = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=blob)
    # Only sklattn's own classes need trusting: no pandas or Keras internals are stored.
    assert all(t.startswith("sklattn.") for t in untrusted), untrusted
    restored = sio.loads(blob, trusted=untrusted)
    restored_predict = restored.predict if name == "mind" else restored.predict_proba
    np.testing.assert_array_equal(restored_predict(X.head(40)), predict(X.head(40)))


# ------------------------------------------------------------------ errors name the problem
def test_errors_name_the_column_or_parameter(logs, fitted):
    X, y = logs
    with pytest.raises(ValueError, match="0 sample"):
        fitted.predict_proba(X.iloc[:0])
    with pytest.raises(ValueError, match=r"duplicated column names: \['cat'\]"):
        fitted.predict_proba(pd.concat([X.head(3), X.head(3)[["cat"]]], axis=1))
    with pytest.raises(ValueError, match="'hidden_units' parameter"):
        DINClassifier(hidden_units=(0,)).fit(SequenceEncoder(sequences=SEQS).fit_transform(X), y)
    with pytest.raises(TypeError, match="pandas or polars DataFrame or a pyarrow Table"):
        SequenceEncoder().fit(X.to_numpy())


def test_arrow_list_history_column():
    pa = pytest.importorskip("pyarrow")
    X = pd.DataFrame({"item": [1, 2, 3, 1], "hist": [[2, 3], [1], [], None]})
    arrow = X.assign(hist=X["hist"].astype(pd.ArrowDtype(pa.list_(pa.int64()))))
    encoder = SequenceEncoder(sequences={"hist": "item"})
    pd.testing.assert_frame_equal(encoder.fit_transform(arrow), encoder.fit_transform(X))


# ------------------------------------------------------------------ no false alarms
def test_ordinary_numeric_frames_are_not_taken_for_lost_schemas():
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    one_hot = OneHotEncoder(sparse_output=False).set_output(transform="pandas").fit_transform(
        pd.DataFrame({"hour": rng.integers(0, 24, 200)}))  # hour_0..hour_23, 0/1
    counts = pd.DataFrame({"f1": rng.integers(0, 9, 200), "f2": rng.integers(0, 9, 200)})
    for frame in (one_hot, counts):
        DINClassifier(**TINY).fit(frame, y)


def test_a_subset_of_the_encoded_columns_with_named_roles(logs):
    X, y = logs
    encoded = SequenceEncoder(sequences=SEQS).fit_transform(X)
    subset = encoded.drop(columns=["user_activity"])  # pandas keeps the attrs
    DINClassifier(**TINY, sequences=SEQS).fit(subset, y).predict(subset)


def test_string_vocabularies_stay_objects():
    values = ["a", "a\x00", "b", "x" * 2000]
    encoder = SequenceEncoder(categorical=["s"]).fit(pd.DataFrame({"s": values}))
    assert encoder.vocabularies_["s"].dtype == object  # no 2,000-wide fixed strings
    ids = encoder.transform(pd.DataFrame({"s": values}))["s"].tolist()
    assert len(set(ids)) == 4 and 1 not in ids  # "a\x00" is not "a"


def test_a_converted_value_that_is_still_unseen_is_type_drift():
    encoder = SequenceEncoder(categorical=["zip"]).fit(pd.DataFrame({"zip": ["02139", "10001"]}))
    with pytest.warns(UserWarning, match=r"'zip'.*not str.*2139"):
        ids = encoder.transform(pd.DataFrame({"zip": [2139, 10001]}))["zip"].tolist()
    assert ids[0] == 1 and ids[1] >= 2  # 10001 -> "10001" converts exactly


def test_estimators_pickled_before_new_parameters_load(logs):
    import pickle

    from sklattn import SumPoolingClassifier

    X, y = logs
    encoder = SequenceEncoder(sequences=SEQS).fit(X)
    model = SumPoolingClassifier(embedding_dim=4, hidden_units=(4,), epochs=1,
                                 random_state=0).fit(encoder.transform(X), y)
    # As an earlier version pickled them: without the parameters added since.
    for est, new in ((encoder, ["unseen_warning", "_vocabulary_kinds"]), (model, ["pooling"])):
        old = pickle.loads(pickle.dumps(est))
        for name in new:
            vars(old).pop(name)
        restored = pickle.loads(pickle.dumps(old))
        assert restored.get_params() == est.get_params()
    restored_encoder = pickle.loads(pickle.dumps(encoder))
    unseen = X.head(3).assign(item=10**9)  # an unseen id of the fit type
    pd.testing.assert_frame_equal(restored_encoder.transform(unseen), encoder.transform(unseen))


def test_rows_encoded_by_another_encoder_are_refused(logs, fitted):
    """An encoder fitted on other rows gives the same ids to other values: a model
    refuses them instead of scoring items it never saw under those ids."""
    X, y = logs
    model = fitted[-1]
    own = fitted[0].transform(X.head(5))
    np.testing.assert_array_equal(model.predict_proba(own), fitted.predict_proba(X.head(5)))
    again = pickle.loads(pickle.dumps(fitted[0]))  # the same vocabularies, another object
    np.testing.assert_array_equal(model.predict_proba(again.transform(X.head(5))),
                                  model.predict_proba(own))
    other = clone(fitted[0]).fit(X.iloc[::-1].head(len(X) // 3))
    with pytest.raises(ValueError, match="other vocabularies.*SequenceEncoder the model"):
        model.predict_proba(other.transform(X.head(5)))
    with pytest.raises(ValueError, match="other vocabularies"):
        pickle.loads(pickle.dumps(model)).partial_fit(other.transform(X.head(50)), y[:50])
