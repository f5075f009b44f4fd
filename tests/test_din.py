import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklattn import DINClassifier, SequenceEncoder, SumPoolingClassifier
from sklattn.datasets import make_interest_sequences, make_long_histories

SEQS = {"hist_item": "item", "hist_cat": "cat"}
TINY = dict(embedding_dim=4, hidden_units=(16,), epochs=2, learning_rate=1e-2, batch_size=128)


def _din(**kw):
    return DINClassifier(**{**TINY, "attention_units": (8,), "random_state": 0, **kw})


@pytest.fixture(scope="module")
def encoded(interest_data):
    X, y, _ = interest_data
    enc = SequenceEncoder(sequences=SEQS, categorical=["user"]).fit(X)
    return enc, enc.transform(X), y


def test_is_a_classifier_with_probabilities(fitted_din, interest_data):
    X, y, _ = interest_data
    assert is_classifier(fitted_din) and is_classifier(fitted_din[-1])
    proba = fitted_din.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert roc_auc_score(y, proba[:, 1]) > 0.6
    assert set(fitted_din.predict(X)) <= {0, 1}


def test_padding_never_changes_predictions(fitted_din, interest_data):
    X, _, _ = interest_data
    est = fitted_din[-1]
    Xe = fitted_din[0].transform(X.head(200))
    before = est.predict_proba(Xe)
    # Padding (id 0) shares its table row with nothing real: overwrite that row with noise.
    for layer in est.model_.layers:
        if layer.name.startswith("emb_"):
            table = layer.embeddings.numpy()
            table[0] = np.random.default_rng(0).normal(0, 10, table.shape[1])
            layer.embeddings.assign(table)
    est._make_predict_fn()
    candidates = Xe[["item", "cat"]].to_numpy()
    assert (candidates > 0).all()
    np.testing.assert_allclose(est.predict_proba(Xe), before, rtol=1e-5, atol=1e-6)


def test_predictions_do_not_depend_on_the_batch(fitted_din, interest_data):
    X, _, _ = interest_data
    Xe = fitted_din[0].transform(X.head(300))
    est = fitted_din[-1]
    full = est.predict_proba(Xe)[:, 1]
    alone = np.array([est.predict_proba(Xe.iloc[[i]])[0, 1] for i in range(0, 300, 37)])
    np.testing.assert_allclose(alone, full[::37], rtol=1e-5)
    shuffled = est.predict_proba(Xe.iloc[::-1])[:, 1][::-1]
    np.testing.assert_allclose(shuffled, full, rtol=1e-5)
    old = est.prediction_chunk_size
    est.prediction_chunk_size = 7  # streaming in small chunks gives the same answer
    try:
        np.testing.assert_allclose(est.predict_proba(Xe)[:, 1], full, rtol=1e-5)
    finally:
        est.prediction_chunk_size = old


def test_same_seed_same_predictions_and_pickle(encoded, tmp_path):
    _, Xe, y = encoded
    a = _din().fit(Xe, y)
    b = _din().fit(Xe, y)
    c = _din(random_state=1).fit(Xe, y)
    pa = a.predict_proba(Xe)
    np.testing.assert_array_equal(pa, b.predict_proba(Xe))
    assert not np.allclose(pa, c.predict_proba(Xe))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).predict_proba(Xe), pa)
    joblib.dump(a, tmp_path / "din.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "din.joblib").predict_proba(Xe), pa)
    assert clone(a).get_params() == a.get_params()
    assert not hasattr(clone(a), "model_")


def test_numpy_and_random_states_left_alone(encoded):
    _, Xe, y = encoded
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    _din(epochs=1).fit(Xe, y)
    assert np.random.rand() == expected


def test_attention_weights_frame(fitted_din, interest_data):
    X, _, _ = interest_data
    Xe = fitted_din[0].transform(X.head(5))
    w = fitted_din[-1].attention_weights(Xe)
    assert list(w.columns) == ["row", "sequence", "position", "item", "weight"]
    n_valid = int((Xe.filter(like="hist_item_").to_numpy() > 0).sum())
    assert len(w) == n_valid and (w["item"] > 0).all()
    assert set(w["sequence"]) == {"hist_item"}
    assert np.isfinite(w["weight"]).all()
    # Weights follow the behaviours: changing the candidate changes them.
    other = Xe.assign(item=Xe["item"].iloc[::-1].to_numpy(), cat=Xe["cat"].iloc[::-1].to_numpy())
    assert not np.allclose(fitted_din[-1].attention_weights(other)["weight"], w["weight"])


def test_normalized_attention_sums_to_one(encoded):
    _, Xe, y = encoded
    est = _din(normalize_attention=True, epochs=1).fit(Xe, y)
    w = est.attention_weights(Xe.head(20))
    np.testing.assert_allclose(w.groupby("row")["weight"].sum(), 1.0, rtol=1e-5)


def test_grid_search_and_cross_val_score(interest_data):
    X, y, _ = interest_data
    pipe = make_pipeline(SequenceEncoder(sequences=SEQS), _din(epochs=1))
    from sklearn.model_selection import check_cv

    assert isinstance(check_cv(3, y, classifier=is_classifier(pipe)), StratifiedKFold)
    scores = cross_val_score(pipe, X, y, cv=2, scoring="roc_auc")
    assert np.isfinite(scores).all()
    search = GridSearchCV(
        pipe, {"dinclassifier__embedding_dim": [2, 4]}, cv=StratifiedKFold(2), scoring="roc_auc"
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["dinclassifier__embedding_dim"] in (2, 4)


def test_string_labels(encoded):
    _, Xe, y = encoded
    labels = np.where(y == 1, "click", "skip")
    est = _din(epochs=1).fit(Xe, labels)
    assert list(est.classes_) == ["click", "skip"]
    assert set(est.predict(Xe)) <= {"click", "skip"}
    # predict_proba[:, 1] is the probability of classes_[1] ("skip").
    p_skip = est.predict_proba(Xe)[:, 1]
    assert roc_auc_score(labels == "skip", p_skip) > 0.5


def test_class_weight_is_keyed_by_label(encoded):
    # Labels 1 and 2: the targets are 0 and 1, and a dict keyed by labels must weigh the
    # rows of the label it names (it used to weigh the rows of target 1, label 2).
    _, Xe, y = encoded
    labels = np.where(y == 1, 2, 1)
    est = _din(epochs=1, class_weight={1: 0.25}).fit(Xe, labels)
    weights = est._sample_weights(None, (labels == 2).astype(np.float32))
    np.testing.assert_array_equal(weights, np.where(labels == 1, 0.25, 1.0))
    words = np.where(y == 1, "click", "skip")
    est = _din(epochs=1, class_weight={"click": 4.0, "skip": 1.0}).fit(Xe, words)
    weights = est._sample_weights(None, (words == "skip").astype(np.float32))
    np.testing.assert_array_equal(weights, np.where(words == "click", 4.0, 1.0))
    with pytest.raises(ValueError, match=r"class_weight names labels that y does not hold: "
                       r"\['clik'\]; the labels are \['click', 'skip'\]"):
        _din(epochs=1, class_weight={"clik": 4.0}).fit(Xe, words)


def test_weights_validation_and_early_stopping(encoded):
    _, Xe, y = encoded
    w = np.where(y == 1, 5.0, 1.0)
    base = _din(epochs=1).fit(Xe, y).predict_proba(Xe)[:, 1].mean()
    weighted = _din(epochs=1).fit(Xe, y, sample_weight=w).predict_proba(Xe)[:, 1].mean()
    balanced = _din(epochs=1, class_weight="balanced").fit(Xe, y).predict_proba(Xe)[:, 1].mean()
    assert weighted > base and balanced > base
    est = _din(epochs=30, validation_fraction=0.2, n_iter_no_change=1, learning_rate=0.05)
    est.fit(Xe, y)
    assert "val_loss" in est.history_ and est.n_iter_ < 30


def test_warm_start_and_partial_fit(encoded):
    _, Xe, y = encoded
    est = _din(epochs=1, warm_start=True).fit(Xe, y)
    first = est.predict_proba(Xe)
    model = est.model_
    est.fit(Xe, y)
    assert est.model_ is model and est.n_iter_ == 2
    assert not np.allclose(first, est.predict_proba(Xe))
    pf = _din()
    with pytest.raises(ValueError, match="2 classes"):
        pf.partial_fit(Xe[y == 0], y[y == 0])
    pf = _din()
    pf.partial_fit(Xe[:500], y[:500], classes=[0, 1])
    pf.partial_fit(Xe[500:], y[500:])
    assert pf.n_iter_ == 2 and pf.predict_proba(Xe).shape == (len(Xe), 2)


def test_bad_input_errors(encoded, fitted_din, interest_data):
    enc, Xe, y = encoded
    X, _, _ = interest_data
    est = fitted_din[-1]
    with pytest.raises(ValueError, match="hist_item_3"):
        est.predict(Xe.drop(columns=["hist_item_3"]))
    with pytest.raises(ValueError, match="surprise"):
        est.predict(Xe.assign(surprise=0))
    with pytest.raises(ValueError, match="candidate columns \\['item'\\]"):
        fitted_din.predict(X.drop(columns=["item"]))
    with pytest.raises(ValueError, match="1 class"):
        _din().fit(Xe, np.zeros(len(Xe)))
    with pytest.raises(ValueError, match="0 sample"):
        est.predict(Xe.iloc[:0])
    with pytest.raises(ValueError, match="user_activity"):
        est.predict(Xe.assign(user_activity=np.nan))
    with pytest.raises(ValueError, match="cat"):
        est.predict(Xe.assign(cat="c01"))
    with pytest.raises(ValueError, match="not numeric"):
        _din().fit(X, y)  # raw strings without an encoder
    with pytest.raises(ValueError, match="Only binary"):
        _din().fit(Xe, np.arange(len(Xe)) % 3)
    with pytest.raises(ValueError, match="embedding_dim"):
        _din(embedding_dim=0).fit(Xe, y)


def test_fit_on_pre_encoded_integer_frame(encoded):
    _, Xe, y = encoded
    raw = pd.DataFrame(Xe.to_numpy(), columns=Xe.columns)  # no schema attached
    raw[Xe.columns[:-1]] = raw[Xe.columns[:-1]].astype(int)
    est = _din(sequences=SEQS, categorical=["user"]).fit(raw, y)
    assert est.schema_.vocabulary_sizes["item"] == raw.filter(like="item").to_numpy().max() + 1
    assert est.schema_.numeric == ["user_activity"]
    unseen = raw.head(3).assign(item=10**6)  # beyond the vocabulary: the unseen id
    assert np.isfinite(est.predict_proba(unseen)).all()
    with pytest.raises(ValueError, match="non-negative"):
        est.predict(raw.head(3).assign(item=-1))


def test_mini_batch_aware_regularisation_shrinks_embeddings(encoded):
    _, Xe, y = encoded
    plain = _din(epochs=3).fit(Xe, y)
    reg = _din(epochs=3, l2_reg_embedding=0.5).fit(Xe, y)

    def norm(est):
        return np.linalg.norm(est.model_.get_layer("emb_item").embeddings.numpy()[2:])

    assert norm(reg) < 0.8 * norm(plain)


@pytest.mark.parametrize("activation", ["dice", "relu"])
def test_activations_train(encoded, activation):
    _, Xe, y = encoded
    est = _din(activation=activation, epochs=1).fit(Xe, y)
    assert np.isfinite(est.predict_proba(Xe)).all()


def test_din_beats_sum_pooling():
    """On data whose clicks depend on the candidate's match with the history, DIN wins."""
    X, y, p = make_interest_sequences(12000, maxlen=10, return_proba=True, random_state=1)
    train, test = slice(0, 9000), slice(9000, None)
    settings = dict(
        embedding_dim=8, hidden_units=(32,), epochs=4, learning_rate=3e-3, batch_size=128,
        activation="prelu", random_state=0,
    )
    aucs = {}
    for est in (DINClassifier(attention_units=(16,), **settings), SumPoolingClassifier(**settings)):
        model = make_pipeline(SequenceEncoder(sequences=SEQS, categorical=[]), est)
        model.fit(X[train].drop(columns="user"), y[train])
        proba = model.predict_proba(X[test].drop(columns="user"))[:, 1]
        aucs[type(est).__name__] = roc_auc_score(y[test], proba)
    optimum = roc_auc_score(y[test], p[test])
    assert aucs["DINClassifier"] > aucs["SumPoolingClassifier"] + 0.03, aucs
    assert aucs["DINClassifier"] <= optimum + 0.01


def test_seed_format_pipeline(shared_data):
    df = pd.read_csv(shared_data / "sparrowrecsys" / "samples.csv", nrows=4000)
    y = df.pop("label")
    model = make_pipeline(
        SequenceEncoder(
            sequences={"userRatedMovie": "movieId"}, most_recent="first",
            drop=["rating", "timestamp"],
        ),
        _din(epochs=1),
    ).fit(df, y)
    assert np.isfinite(model.predict_proba(df.head(100))).all()


def test_verbose_progress(encoded, capsys):
    _, Xe, y = encoded
    _din(epochs=1, verbose=0).fit(Xe, y)
    assert capsys.readouterr().out == ""
    _din(epochs=2, verbose=2).fit(Xe, y)
    assert "Epoch 2/2" in capsys.readouterr().out


def test_sum_pooling_saturates_on_long_histories_and_says_so():
    """Summed over 2,000 events, every embedding step moves the pooled vector 2,000 times
    as far: the fit ends predicting class 0 for every row saturated (clipped log
    loss 18.9), which used to pass silently. It warns now, and pooling="mean" learns the
    same data."""
    X, y = make_long_histories(random_state=0)
    small = dict(sequences={"hist": "item"}, embedding_dim=4, hidden_units=(64,), epochs=3,
                 learning_rate=0.03, l2_reg_embedding=0.0, random_state=0)
    with pytest.warns(UserWarning, match=r"saturated.*2000 behaviour.*pooling='mean'"):
        summed = SumPoolingClassifier(**small).fit(X, y)
    assert np.mean(np.abs(summed.decision_function(X)) > 15) > 0.9
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mean = SumPoolingClassifier(pooling="mean", **small).fit(X, y)
    assert not [w for w in caught if "saturated" in str(w.message)]
    logits = mean.decision_function(X)
    assert np.abs(logits).max() < 15
    assert log_loss(y, mean.predict_proba(X)) < 0.6  # 0.52; a constant scores 0.69
    assert roc_auc_score(y, logits) > 0.8  # 0.85; the saturated sum: 0.52


def test_sum_pooling_parameter():
    assert SumPoolingClassifier().pooling == "sum"  # the paper's Base Model
    X, y = make_long_histories(50, history_length=5, random_state=0)
    with pytest.raises(ValueError, match="pooling"):
        SumPoolingClassifier(sequences={"hist": "item"}, pooling="max").fit(X, y)


@pytest.mark.parametrize("attention_activation, unit", [(None, "Dice"), ("relu", "Activation")])
def test_attention_activation_sets_the_activation_unit_apart(interest_data, attention_activation,
                                                             unit):
    X, y, _ = interest_data
    model = make_pipeline(
        SequenceEncoder(sequences=SEQS),
        DINClassifier(embedding_dim=4, hidden_units=(8,), attention_units=(8,), epochs=1,
                      attention_activation=attention_activation, random_state=0),
    ).fit(X.head(500), y[:500])
    layers = model[-1].model_.layers
    attention = next(layer for layer in layers if layer.name.startswith("attention_"))
    assert type(attention.first_activation).__name__ == unit
    mlp = model[-1].model_.get_layer("mlp")
    assert any(type(layer).__name__ == "Dice" for layer in mlp._flatten_layers())
