"""List-wise metrics of sklattn.metrics: rows grouped by request, and their scorer."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ndcg_score
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline

from sklattn.metrics import (
    listwise_map_score,
    listwise_ndcg_score,
    listwise_precision_score,
    make_listwise_scorer,
)

METRICS = [listwise_ndcg_score, listwise_map_score, listwise_precision_score]


def _random_lists(seed, n_requests=40, lengths=(2, 12), graded=True, shuffle=True):
    """Random requests of variable length; scores without ties; rows shuffled."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(lengths[0], lengths[1] + 1, size=n_requests)
    groups = np.repeat(np.arange(n_requests) * 7 + 3, sizes)
    n = len(groups)
    if graded:
        y_true = rng.choice([0, 0, 0, 1, 2, 3], size=n).astype(float)
    else:
        y_true = (rng.random(n) < 0.3).astype(int)
    y_score = rng.normal(size=n)
    if shuffle:
        perm = rng.permutation(n)
        return y_true[perm], y_score[perm], groups[perm]
    return y_true, y_score, groups


def _per_request(y_true, y_score, groups):
    """(relevances ranked by score, stable ties) of each request, in first-seen order."""
    out = {}
    for rel, score, g, i in zip(y_true, y_score, groups, range(len(groups)), strict=True):
        out.setdefault(g, []).append((-score, i, rel))
    return {g: [rel for _, _, rel in sorted(rows)] for g, rows in out.items()}


def _reference_map(y_true, y_score, groups, k):
    values = []
    for ranked in _per_request(y_true, y_score, groups).values():
        n_relevant = sum(1 for rel in ranked if rel > 0)
        if n_relevant == 0:
            continue
        hits, total = 0, 0.0
        for r, rel in enumerate(ranked[:k], start=1):
            if rel > 0:
                hits += 1
                total += hits / r
        values.append(total / min(k, n_relevant))
    return sum(values) / len(values)


def _reference_precision(y_true, y_score, groups, k):
    values = []
    for ranked in _per_request(y_true, y_score, groups).values():
        if not any(rel > 0 for rel in ranked):
            continue
        values.append(sum(1 for rel in ranked[:k] if rel > 0) / min(k, len(ranked)))
    return sum(values) / len(values)


# ---------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 5, 20])
def test_ndcg_matches_sklearn_request_by_request(seed, k):
    y_true, y_score, groups = _random_lists(seed)
    expected = [
        ndcg_score([y_true[groups == g]], [y_score[groups == g]], k=k)
        for g in np.unique(groups)
        if (y_true[groups == g] > 0).any()
    ]
    assert listwise_ndcg_score(y_true, y_score, groups, k=k) == pytest.approx(
        np.mean(expected), rel=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 5, 20])
@pytest.mark.parametrize("graded", [False, True])
def test_map_and_precision_match_reference(seed, k, graded):
    y_true, y_score, groups = _random_lists(seed, lengths=(1, 12), graded=graded)
    assert listwise_map_score(y_true, y_score, groups, k=k) == pytest.approx(
        _reference_map(y_true, y_score, groups, k), rel=1e-12
    )
    assert listwise_precision_score(y_true, y_score, groups, k=k) == pytest.approx(
        _reference_precision(y_true, y_score, groups, k), rel=1e-12
    )


def test_hand_computed_examples():
    # request "a" ranked: rel 1, 0, 1, 0; request "b" ranked: 0, 0, 1
    y_true = [0, 1, 1, 0, 0, 1, 0]
    y_score = [0.8, 0.9, 0.5, 0.1, 0.7, 0.2, 0.6]
    groups = ["a", "a", "a", "a", "b", "b", "b"]
    # AP@3: a = (1/1 + 2/3) / 2, b = (1/3) / 1
    assert listwise_map_score(y_true, y_score, groups, k=3) == pytest.approx(
        ((1 + 2 / 3) / 2 + 1 / 3) / 2
    )
    # AP@2: a = (1/1) / min(2, 2), b = 0
    assert listwise_map_score(y_true, y_score, groups, k=2) == pytest.approx(0.25)
    # P@3: a = 2/3, b = 1/3; P@5: a = 2/4, b = 1/3 (denominator min(k, length))
    assert listwise_precision_score(y_true, y_score, groups, k=3) == pytest.approx(0.5)
    assert listwise_precision_score(y_true, y_score, groups, k=5) == pytest.approx(
        (2 / 4 + 1 / 3) / 2
    )
    # NDCG@3: a = (1 + 1/log2(4)) / (1 + 1/log2(3)), b = (1/log2(4)) / 1
    expected = ((1 + 0.5) / (1 + 1 / np.log2(3)) + 0.5) / 2
    assert listwise_ndcg_score(y_true, y_score, groups, k=3) == pytest.approx(expected)


def test_graded_ndcg_uses_linear_gains():
    # ranked: 1, 3 -> (1 + 3/log2(3)) / (3 + 1/log2(3))
    value = listwise_ndcg_score([3, 1], [0.1, 0.2], [0, 0])
    assert value == pytest.approx((1 + 3 / np.log2(3)) / (3 + 1 / np.log2(3)))


def test_single_row_request_and_perfect_ranking():
    assert listwise_ndcg_score([2], [0.3], ["q"]) == 1.0
    y_true, y_score, groups = _random_lists(5)
    for metric in (listwise_ndcg_score, listwise_map_score):
        assert metric(y_true, y_true + 1e-3 * y_score, groups, k=50) == pytest.approx(1.0)


@pytest.mark.parametrize("metric", METRICS)
def test_ties_keep_the_input_order(metric):
    # both rows score 0: the row given first ranks first
    assert metric([0, 1], [0.0, 0.0], [1, 1], k=1) == 0.0
    assert metric([1, 0], [0.0, 0.0], [1, 1], k=1) == 1.0


# ---------------------------------------------------------------------------------------
# Invariances and skipping
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_row_order_does_not_matter(metric):
    y_true, y_score, groups = _random_lists(3, shuffle=False)
    contiguous = metric(y_true, y_score, groups, k=4)
    perm = np.random.default_rng(0).permutation(len(groups))
    assert metric(y_true[perm], y_score[perm], groups[perm], k=4) == pytest.approx(
        contiguous, rel=1e-12
    )
    # interleaved: the i-th row of every request, then the (i+1)-th, ...
    rank_in_request = pd.Series(groups).groupby(groups).cumcount().to_numpy()
    interleaved = np.lexsort((groups, rank_in_request))
    assert len(np.flatnonzero(np.diff(groups[interleaved]) != 0)) > 40
    assert metric(
        y_true[interleaved], y_score[interleaved], groups[interleaved], k=4
    ) == pytest.approx(contiguous, rel=1e-12)
    # pandas inputs and string ids give the same value
    assert metric(
        pd.Series(y_true), pd.Series(y_score), pd.Series(groups).map("req{}".format), k=4
    ) == pytest.approx(contiguous, rel=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_requests_without_relevant_rows_are_skipped(metric):
    y_true, y_score, groups = _random_lists(4)
    value = metric(y_true, y_score, groups, k=3)
    extra = np.concatenate([y_true, [0, 0, 0]])
    scores = np.concatenate([y_score, [5.0, 4.0, 3.0]])
    ids = np.concatenate([groups, [-1, -1, -1]])
    assert metric(extra, scores, ids, k=3) == pytest.approx(value, rel=1e-12)
    with pytest.raises(ValueError, match="No request has a relevant row"):
        metric([0, 0, 0], [0.1, 0.2, 0.3], [1, 1, 2])
    with pytest.raises(ValueError, match="No request has a relevant row"):
        metric([], [], [])


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    ("y_true", "y_score", "groups", "k", "match"),
    [
        ([1, 0], [0.1, 0.2, 0.3], [1, 1], 10, r"inconsistent lengths: 2, 3 and 2"),
        ([1, 0], [0.1, 0.2], [1], 10, r"inconsistent lengths: 2, 2 and 1"),
        ([1, 0], [0.1, np.nan], [1, 1], 10, r"y_score must be finite; it contains NaN"),
        ([1, 0], [0.1, np.inf], [1, 1], 10, r"y_score must be finite"),
        ([1, -1], [0.1, 0.2], [1, 1], 10, r"y_true must be non-negative"),
        ([1, np.nan], [0.1, 0.2], [1, 1], 10, r"y_true must be finite"),
        (["a", "b"], [0.1, 0.2], [1, 1], 10, r"y_true must hold numbers"),
        ([[1, 0]], [0.1, 0.2], [1, 1], 10, r"y_true must be 1-D"),
        ([1, 0], [0.1, 0.2], [1, None], 10, r"groups must not contain missing values"),
        ([1, 0], [0.1, 0.2], [1.0, np.nan], 10, r"groups must not contain missing values"),
        ([1, 0], [0.1, 0.2], [1, 1], 0, r"k must be a positive integer; got 0"),
        ([1, 0], [0.1, 0.2], [1, 1], 2.5, r"k must be a positive integer; got 2.5"),
        ([1, 0], [0.1, 0.2], [1, 1], True, r"k must be a positive integer"),
    ],
)
def test_errors_name_the_parameter(metric, y_true, y_score, groups, k, match):
    with pytest.raises(ValueError, match=match):
        metric(y_true, y_score, groups, k=k)


def test_scorer_errors():
    with pytest.raises(ValueError, match=r"metric must be one of 'ndcg', 'map', 'precision'"):
        make_listwise_scorer("auc")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        make_listwise_scorer("map", k=0)
    X, y = _requests_frame()
    model = _pipeline().fit(X, y)
    with pytest.raises(ValueError, match=r"no column 'session' \(group\)"):
        make_listwise_scorer(group="session")(model, X, y)
    with pytest.raises(ValueError, match="DataFrame with the request column 'request_id'"):
        make_listwise_scorer()(model, X.to_numpy(), y)


# ---------------------------------------------------------------------------------------
# The scikit-learn scorer
# ---------------------------------------------------------------------------------------


def _requests_frame(n_requests=45, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 9, size=n_requests)
    request_id = np.repeat(np.arange(100, 100 + n_requests), sizes)
    n = len(request_id)
    X = pd.DataFrame({"request_id": request_id, "f1": rng.normal(size=n),
                      "f2": rng.normal(size=n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * X["f1"] - 1)))).astype(int).to_numpy()
    perm = rng.permutation(n)  # requests interleaved
    return X.iloc[perm].reset_index(drop=True), y[perm]


def _pipeline(final=None):
    return make_pipeline(ColumnTransformer([("x", "passthrough", ["f1", "f2"])]),
                         final if final is not None else LogisticRegression())


def test_scorer_repr_and_pickle():
    scorer = make_listwise_scorer("ndcg", k=5, group="request_id")
    assert repr(scorer) == "make_listwise_scorer(metric='ndcg', k=5, group='request_id')"
    assert repr(make_listwise_scorer()) == (
        "make_listwise_scorer(metric='ndcg', k=10, group='request_id')"
    )
    assert repr(pickle.loads(pickle.dumps(scorer))) == repr(scorer)


def test_scorer_in_grid_search_equals_the_metric_by_hand():
    X, y = _requests_frame()
    groups = X["request_id"].to_numpy()
    scorer = make_listwise_scorer("ndcg", k=5, group="request_id")
    cv = GroupKFold(3)
    search = GridSearchCV(_pipeline(), {"logisticregression__C": [0.01, 1.0]},
                          scoring=scorer, cv=cv)
    search.fit(X, y, groups=groups)
    assert "make_listwise_scorer(metric='ndcg', k=5, group='request_id')" in repr(search)
    for i, params in enumerate(search.cv_results_["params"]):
        for fold, (train, test) in enumerate(cv.split(X, y, groups)):
            model = clone(_pipeline()).set_params(**params).fit(X.iloc[train], y[train])
            X_test = X.iloc[test]
            by_hand = listwise_ndcg_score(
                y[test], model.decision_function(X_test), X_test["request_id"], k=5
            )
            assert search.cv_results_[f"split{fold}_test_score"][i] == pytest.approx(
                by_hand, rel=1e-12
            )
    # scores from an informative feature beat chance
    assert 0.5 < search.best_score_ <= 1.0


@pytest.mark.parametrize("metric", ["ndcg", "map", "precision"])
def test_scorer_in_cross_val_score(metric):
    X, y = _requests_frame(seed=1)
    groups = X["request_id"]
    cv = GroupKFold(3)
    scores = cross_val_score(_pipeline(), X, y, groups=groups, cv=cv,
                             scoring=make_listwise_scorer(metric, k=3))
    function = {"ndcg": listwise_ndcg_score, "map": listwise_map_score,
                "precision": listwise_precision_score}[metric]
    for score, (train, test) in zip(scores, cv.split(X, y, groups), strict=True):
        model = _pipeline().fit(X.iloc[train], y[train])
        expected = function(y[test], model.decision_function(X.iloc[test]),
                            groups.iloc[test], k=3)
        assert score == pytest.approx(expected, rel=1e-12)


def test_scorer_falls_back_to_predict_proba():
    X, y = _requests_frame(seed=2)
    model = _pipeline(GaussianNB()).fit(X, y)
    assert not hasattr(model, "decision_function")
    expected = listwise_map_score(y, model.predict_proba(X)[:, 1], X["request_id"], k=4)
    assert make_listwise_scorer("map", k=4)(model, X, y) == pytest.approx(expected)
