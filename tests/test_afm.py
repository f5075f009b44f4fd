import itertools
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import (
    check_class_weight_classifiers,
    check_classifiers_train,
)

from sklattn import AFMClassifier, NFMClassifier, SequenceEncoder
from sklattn.datasets import make_field_interactions, make_interest_sequences
from sklattn.layers import (
    AttentionalPooling,
    BiInteractionPooling,
    NumericEmbedding,
    PairwiseProducts,
    pair_indices,
)

SEQS = {"hist_item": "item", "hist_cat": "cat"}
TINY = dict(embedding_dim=4, epochs=2, learning_rate=1e-2, batch_size=128, random_state=0)


def _fields(batch=5, n_fields=6, dim=4, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, n_fields, dim)).astype("float32")


def _fm_pairwise(v):
    """FM's pairwise term per row, written as the explicit double loop."""
    n = v.shape[1]
    return sum(
        (v[:, i] * v[:, j]).sum(-1) for i, j in itertools.combinations(range(n), 2)
    )


# ----------------------------------------------------------------------------- layers
def test_pairwise_products_are_every_pair_in_order():
    v = _fields()
    out = np.asarray(PairwiseProducts()(v))
    expected = [v[:, i] * v[:, j] for i, j in itertools.combinations(range(v.shape[1]), 2)]
    np.testing.assert_allclose(out, np.stack(expected, axis=1), rtol=1e-6)
    rows, cols = pair_indices(6)
    assert list(zip(rows, cols, strict=True)) == list(itertools.combinations(range(6), 2))
    with pytest.raises(ValueError, match="at least 2 fields"):
        PairwiseProducts()(_fields(n_fields=1))


def test_attention_weights_sum_to_one_per_row():
    products = np.asarray(PairwiseProducts()(_fields(batch=7)))
    pooled, weights = AttentionalPooling(3)(products)
    weights = np.asarray(weights)
    assert weights.shape == (7, 15)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    assert (weights > 0).all() and weights.std() > 0
    np.testing.assert_allclose(
        np.asarray(pooled), (products * weights[..., None]).sum(1), rtol=1e-5, atol=1e-6
    )


def test_uniform_attention_with_unit_projection_is_fm_over_the_number_of_pairs():
    v = _fields(batch=4, n_fields=5)
    layer = AttentionalPooling(6)
    products = PairwiseProducts()(v)
    layer(products)
    layer.h.assign(np.zeros(6, "float32"))  # h = 0: every pair scores 0, softmax is uniform
    pooled, weights = layer(products)
    np.testing.assert_allclose(np.asarray(weights), 1 / 10, rtol=1e-6)
    p = np.ones(4, "float32")  # p all ones sums the pooled vector
    np.testing.assert_allclose(np.asarray(pooled) @ p, _fm_pairwise(v) / 10, rtol=1e-5)


def test_bi_interaction_is_the_explicit_pairwise_sum():
    v = _fields(n_fields=7)
    explicit = sum(v[:, i] * v[:, j] for i, j in itertools.combinations(range(7), 2))
    np.testing.assert_allclose(np.asarray(BiInteractionPooling()(v)), explicit, rtol=1e-5,
                               atol=1e-5)


def test_numeric_embedding_scales_one_vector_per_column():
    layer = NumericEmbedding(2, 3)
    x = np.array([[2.0, -1.0]], "float32")
    out = np.asarray(layer(x))
    vectors = np.asarray(layer.vectors)
    np.testing.assert_allclose(out[0], [2.0 * vectors[0], -1.0 * vectors[1]], rtol=1e-6)


# ----------------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def sequence_data():
    X, y, _ = make_interest_sequences(1500, maxlen=6, return_proba=True, random_state=0)
    enc = SequenceEncoder(sequences=SEQS, categorical=["user"]).fit(X)
    return enc, enc.transform(X), y


@pytest.fixture(scope="module")
def fitted_afm(sequence_data):
    _, Xe, y = sequence_data
    return AFMClassifier(**TINY).fit(Xe, y)


def test_fields_of_a_sequence_table(fitted_afm, sequence_data):
    # Categorical columns (candidates included), then each sequence, then numerics.
    assert fitted_afm.field_names_ == ["item", "cat", "user", "hist_item", "hist_cat",
                                       "user_activity"]
    assert is_classifier(fitted_afm)
    _, Xe, y = sequence_data
    proba = fitted_afm.predict_proba(Xe)
    assert proba.shape == (len(Xe), 2) and np.isfinite(proba).all()
    assert roc_auc_score(y, proba[:, 1]) > 0.6


@pytest.mark.parametrize("cls", [AFMClassifier, NFMClassifier])
def test_building_the_graph_sets_no_fitted_attribute(cls, sequence_data):
    # The graph is built again on unpickling: it must not write fitted attributes,
    # which only fit sets.
    _, Xe, y = sequence_data
    est = cls(**TINY).fit(Xe.head(200), y[:200])
    schema, before = est.schema_, dict(vars(est))
    fresh = cls(**TINY)
    fresh._build_graph(schema)
    assert not [k for k in vars(fresh) if k.endswith("_")]
    assert est.field_names_ == ["item", "cat", "user", "hist_item", "hist_cat", "user_activity"]
    assert pickle.loads(pickle.dumps(est)).field_names_ == before["field_names_"]


def test_interaction_importances_frame(fitted_afm, sequence_data):
    _, Xe, _ = sequence_data
    weights = fitted_afm.interaction_weights(Xe.head(50))
    assert weights.shape == (50, 15)
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-5)
    imp = fitted_afm.interaction_importances(Xe.head(50))
    assert list(imp.columns) == ["field_a", "field_b", "weight"]
    assert len(imp) == 15 and imp["weight"].is_monotonic_decreasing
    np.testing.assert_allclose(imp["weight"].sum(), 1.0, rtol=1e-5)
    pairs = set(zip(imp["field_a"], imp["field_b"], strict=True))
    assert ("item", "hist_item") in pairs and ("hist_cat", "user_activity") in pairs


def test_padding_never_changes_predictions(fitted_afm, sequence_data):
    _, Xe, _ = sequence_data
    assert (Xe.head(200)["hist_item_1"].to_numpy() == 0).any()  # some rows are padded
    est = pickle.loads(pickle.dumps(fitted_afm))  # a copy: the fixture stays untouched
    before = est.predict_proba(Xe.head(200))
    for layer in est.model_.layers:  # padding's row of every table, linear ones too: noise
        if hasattr(layer, "embeddings"):
            table = layer.embeddings.numpy()
            table[0] = np.random.default_rng(0).normal(0, 10, table.shape[1])
            layer.embeddings.assign(table)
    est._make_predict_fn()
    np.testing.assert_allclose(est.predict_proba(Xe.head(200)), before, rtol=1e-5, atol=1e-6)


def test_predictions_do_not_depend_on_the_batch(fitted_afm, sequence_data):
    _, Xe, _ = sequence_data
    full = fitted_afm.predict_proba(Xe.head(300))[:, 1]
    alone = [fitted_afm.predict_proba(Xe.iloc[[i]])[0, 1] for i in range(0, 300, 37)]
    np.testing.assert_allclose(alone, full[::37], rtol=1e-5)


@pytest.mark.parametrize("cls", [AFMClassifier, NFMClassifier])
def test_same_seed_same_predictions_and_pickle(cls, sequence_data):
    _, Xe, y = sequence_data
    est = cls(**TINY).fit(Xe, y)
    p = est.predict_proba(Xe)
    np.testing.assert_array_equal(cls(**TINY).fit(Xe, y).predict_proba(Xe), p)
    assert not np.allclose(cls(**{**TINY, "random_state": 1}).fit(Xe, y).predict_proba(Xe), p)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict_proba(Xe), p)
    if cls is AFMClassifier:
        pd.testing.assert_frame_equal(
            restored.interaction_importances(Xe), est.interaction_importances(Xe)
        )
    assert not hasattr(clone(est), "model_")


def test_grid_search_over_attention_factor_in_a_pipeline():
    X, y = make_field_interactions(600, n_fields=4, random_state=0)
    search = GridSearchCV(
        make_pipeline(SequenceEncoder(), AFMClassifier(**{**TINY, "epochs": 1})),
        {"afmclassifier__attention_factor": [2, 4]},
        scoring="roc_auc", cv=2,
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["afmclassifier__attention_factor"] in (2, 4)


def test_bad_parameters_and_inputs(sequence_data):
    _, Xe, y = sequence_data
    with pytest.raises(ValueError, match="attention_factor"):
        AFMClassifier(attention_factor=0).fit(Xe, y)
    with pytest.raises(ValueError, match="l2_reg"):
        AFMClassifier(l2_reg=-1.0).fit(Xe, y)
    with pytest.raises(ValueError, match="hidden_units|activation"):
        NFMClassifier(activation="swish").fit(Xe, y)
    one_field = SequenceEncoder().fit_transform(pd.DataFrame({"a": ["x", "y"] * 20}))
    with pytest.raises(ValueError, match=r"at least 2, but X has 1 feature\(s\) \['a'\]"):
        AFMClassifier().fit(one_field, [0, 1] * 20)
    X, _ = make_interest_sequences(300, maxlen=4, random_state=0)
    enc = SequenceEncoder(sequences=SEQS)
    est = AFMClassifier(**{**TINY, "epochs": 1}).fit(enc.fit_transform(X), np.arange(300) % 2)
    with pytest.raises(ValueError, match=r"columns \['item', 'cat'\] are missing"):
        est.predict(enc.transform(X.drop(columns=["item", "cat"])))


def test_nan_numeric_is_an_error_not_a_nan_probability(fitted_afm, sequence_data):
    _, Xe, _ = sequence_data
    bad = Xe.head(5).copy()
    bad.loc[bad.index[0], "user_activity"] = np.nan
    with pytest.raises(ValueError, match="user_activity"):
        fitted_afm.predict_proba(bad)


def test_afm_finds_the_informative_pair_and_beats_nfm():
    """The label depends only on how f0 and f1 interact: AFM's attention should find
    that pair among the 28, and weighting it beats NFM's equal-weight sum."""
    X, y, p = make_field_interactions(10000, n_fields=8, return_proba=True, random_state=0)
    n = 6000
    enc = SequenceEncoder().fit(X.iloc[:n])
    E_train, E_test = enc.transform(X.iloc[:n]), enc.transform(X.iloc[n:])
    common = dict(embedding_dim=8, epochs=5, learning_rate=1e-2, random_state=0)
    afm = AFMClassifier(**common).fit(E_train, y[:n])
    nfm = NFMClassifier(**common).fit(E_train, y[:n])
    auc_afm = roc_auc_score(y[n:], afm.predict_proba(E_test)[:, 1])
    auc_nfm = roc_auc_score(y[n:], nfm.predict_proba(E_test)[:, 1])
    optimum = roc_auc_score(y[n:], p[n:])
    assert auc_afm > auc_nfm + 0.02, (auc_afm, auc_nfm)
    assert auc_afm > optimum - 0.05, (auc_afm, optimum)
    top = afm.interaction_importances(E_test).iloc[0]
    assert (top["field_a"], top["field_b"]) == ("f0", "f1")
    assert top["weight"] > 3 / 28  # well above the uniform weight


def test_plot_interaction_importances(fitted_afm, sequence_data):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from sklattn.plotting import plot_interaction_importances

    _, Xe, _ = sequence_data
    ax = plot_interaction_importances(fitted_afm.interaction_importances(Xe.head(100)))
    imp = fitted_afm.interaction_importances(Xe.head(100))
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert sorted(labels) == sorted(fitted_afm.field_names_)
    grid = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert grid.shape == (6, 6) and np.isnan(np.diag(grid)).all()
    a, b = imp.iloc[0][["field_a", "field_b"]]
    assert grid[labels.index(a), labels.index(b)] == pytest.approx(imp["weight"].iloc[0])
    np.testing.assert_allclose(grid, grid.T)
    with pytest.raises(ValueError, match="field_a"):
        plot_interaction_importances(pd.DataFrame({"weight": [1.0]}))


def test_seed_format_pipeline(shared_data):
    df = pd.read_csv(shared_data / "sparrowrecsys" / "samples.csv", nrows=1500)
    y = df.pop("label")
    for cls in (AFMClassifier, NFMClassifier):
        model = make_pipeline(
            SequenceEncoder(
                sequences={"userRatedMovie": "movieId"}, most_recent="first",
                categorical=["userId"], drop=["rating", "timestamp"],
            ),
            cls(**{**TINY, "epochs": 1}),
        ).fit(df, y)
        assert np.isfinite(model.predict_proba(df.head(100))).all()


def test_warm_started_fits_are_reproducible(sequence_data):
    """Same seed, same sequence of warm-started fits, same model: even with another
    estimator trained in between (the base reseeds before every fit)."""
    _, Xe, y = sequence_data
    params = {**TINY, "epochs": 1, "warm_start": True}
    a = AFMClassifier(**params).fit(Xe, y).fit(Xe, y)
    b = AFMClassifier(**params).fit(Xe, y)
    NFMClassifier(**params).fit(Xe, y)  # draws from the same global generators
    b.fit(Xe, y)
    np.testing.assert_array_equal(a.predict_proba(Xe), b.predict_proba(Xe))
    assert a.n_iter_ == 2
    once = AFMClassifier(**params).fit(Xe, y)
    assert not np.allclose(once.predict_proba(Xe), a.predict_proba(Xe))


def test_plain_numeric_arrays_are_fields():
    """Without an encoder every column is numeric: each is a field x_k * v_k."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype("float32")
    y = (X[:, 0] * X[:, 1] > 0).astype(int)  # a pure interaction of columns 0 and 1
    est = AFMClassifier(**{**TINY, "epochs": 15, "learning_rate": 0.05}).fit(X, y)
    assert est.field_names_ == ["x0", "x1", "x2"]
    assert roc_auc_score(y, est.predict_proba(X)[:, 1]) > 0.8
    top = est.interaction_importances(X)
    assert (top.iloc[0]["field_a"], top.iloc[0]["field_b"]) == ("x0", "x1")
    with pytest.warns(UserWarning, match="feature names"):  # scikit-learn's warning
        est.predict_proba(pd.DataFrame(X, columns=["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"1 feature\(s\)"):
        AFMClassifier(**TINY).fit(X[:, :1], y)


@pytest.mark.parametrize("check", [check_classifiers_train, check_class_weight_classifiers])
@pytest.mark.parametrize("cls", [AFMClassifier, NFMClassifier])
def test_default_parameters_learn_scikit_learns_check_data(cls, check):
    """Default parameters, nothing else (the checks set random_state=0 themselves).

    200 rows with batch 256 is one Adam step per epoch: with random linear weights,
    w_0 = 0 and learning rate 1e-3 both checks failed (training accuracy 0.5)."""
    check(cls.__name__, cls())


@pytest.mark.parametrize("cls", [AFMClassifier, NFMClassifier])
def test_linear_weights_start_at_zero_and_the_bias_at_the_weighted_base_rate(cls):
    X = np.random.default_rng(0).normal(size=(200, 3)).astype("float32")
    y = np.r_[np.ones(50, int), np.zeros(150, int)]
    weights = np.r_[np.full(50, 2.0), np.ones(150)]  # weighted base rate 100 / 250
    # A learning rate of 1e-12 leaves the fitted weights where they started.
    est = cls(embedding_dim=4, epochs=1, learning_rate=1e-12, random_state=0)
    est.fit(X, y, sample_weight=weights)
    bias = est._layers["logit"].bias.numpy()
    np.testing.assert_allclose(bias, [np.log(100 / 150)], rtol=1e-5)
    vectors = [layer.vectors.numpy() for layer in est.model_.layers
               if isinstance(layer, NumericEmbedding)][0]
    np.testing.assert_allclose(vectors[:, -1], 0.0, atol=1e-9)  # the w_k column
    assert np.abs(vectors[:, :-1]).max() > 0  # the field vectors stay random
    # Fewer than two classes with weight (a class weighted 0, a first partial_fit batch of
    # one class) give a neutral start, not the +-13.8 of a clipped rate, from which later
    # batches never brought the model back.
    est = cls(embedding_dim=4, epochs=1, learning_rate=1e-12, random_state=0,
              class_weight={0: 1.0, 1: 0.0}).fit(X, y)
    np.testing.assert_allclose(est._layers["logit"].bias.numpy(), [0.0], atol=1e-9)
    assert np.isfinite(est.predict_proba(X)).all()
    est = cls(embedding_dim=4, learning_rate=1e-12, random_state=0)
    est.partial_fit(X[y == 0], y[y == 0], classes=[0, 1])
    np.testing.assert_allclose(est._layers["logit"].bias.numpy(), [0.0], atol=1e-9)
