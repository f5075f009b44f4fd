"""make_reranking_lists: candidate lists whose best order depends on the list."""

import numpy as np
import pandas as pd
import pytest

from sklattn.datasets import make_reranking_lists


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _within(request, values):
    """Position (0 = first) of each row within its request, by ``values`` descending."""
    order = np.lexsort((-values, request))
    starts = np.flatnonzero(np.r_[True, request[order][1:] != request[order][:-1]])
    position = np.empty(len(order), dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(order)])
    position[order] = np.arange(len(order)) - np.repeat(starts, sizes)
    return position


def _ndcg(request, gains, scores, k=5):
    """Mean over requests of NDCG@k of the order by ``scores``, with ``gains``."""
    def discount(position):
        return np.where(position < k, 1.0 / np.log2(position + 2.0), 0.0)

    dcg = np.bincount(request, gains * discount(_within(request, scores)))
    ideal = np.bincount(request, gains * discount(_within(request, gains)))
    return float(np.mean(dcg / ideal))


def test_shapes_dtypes_and_columns():
    X, y, p = make_reranking_lists(300, history_length=3, random_state=0)
    assert list(X.columns) == [
        "request_id", "user_id", "hist_item_1", "hist_item_2", "hist_item_3", "item",
        "category", "initial_score", "initial_rank",
    ]
    assert len(X) == len(y) == len(p)
    assert X.index.equals(pd.RangeIndex(len(X)))
    for col in X.columns.drop("initial_score"):
        assert X[col].dtype == np.int64, col
    assert X["initial_score"].dtype == np.float64
    assert y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
    assert p.dtype == np.float64 and ((p > 0) & (p < 1)).all()
    assert X["user_id"].between(0, 300 // 4 - 1).all()
    assert X["item"].between(0, 299).all() and X["category"].between(0, 9).all()
    hist = X.filter(like="hist_item_").to_numpy()
    assert ((hist >= 0) & (hist < 300)).all()
    # A user's history is the same in every request of that user.
    assert (X.groupby("user_id")[["hist_item_1", "hist_item_2", "hist_item_3"]].nunique()
            == 1).all().all()
    # An item keeps its category everywhere.
    assert (X.groupby("item")["category"].nunique() == 1).all()


# 50 items: (2, 3) draws its candidates sparsely (a catalogue much larger than the lists),
# the others from random keys; (50, 50) shows every item in every request.
@pytest.mark.parametrize("list_length, low, high", [
    ((10, 20), 10, 20), (7, 7, 7), ((2, 3), 2, 3), ((50, 50), 50, 50),
])
def test_lists_are_contiguous_distinct_and_in_display_order(list_length, low, high):
    X, _, _ = make_reranking_lists(400, list_length=list_length, n_items=50, random_state=1)
    request = X["request_id"].to_numpy()
    # request_id: contiguous blocks 0, 1, ..., n_requests - 1 in row order.
    assert request[0] == 0 and (np.diff(request) >= 0).all() and (np.diff(request) <= 1).all()
    assert request[-1] == 399
    sizes = X.groupby("request_id").size()
    assert sizes.between(low, high).all()
    if low < high:
        assert sizes.nunique() > 1
    assert (X.groupby("request_id")["item"].nunique() == sizes).all()
    assert (X.groupby("request_id")["user_id"].nunique() == 1).all()
    # initial_rank is 1 .. L in row order, and follows initial_score.
    rank = X["initial_rank"].to_numpy()
    expected = np.concatenate([np.arange(1, n + 1) for n in sizes])
    np.testing.assert_array_equal(rank, expected)
    score = X["initial_score"].to_numpy()
    same = request[1:] == request[:-1]
    assert (score[1:][same] <= score[:-1][same]).all()


def test_same_seed_same_data_other_seed_other_data():
    a = make_reranking_lists(100, random_state=3)
    b = make_reranking_lists(100, random_state=np.random.RandomState(3))
    c = make_reranking_lists(100, random_state=4)
    pd.testing.assert_frame_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert len(a[0]) != len(c[0]) or not a[0].equals(c[0])


def test_probabilities_are_decayed_relevance_of_duplicates():
    # Without noise the initial score is logit(r): recompute p = r * decay ** m.
    decay = 0.3
    X, _, p = make_reranking_lists(300, duplicate_decay=decay, initial_noise=0.0,
                                   random_state=2)
    r = _sigmoid(X["initial_score"].to_numpy())
    group = X["request_id"].to_numpy() * 10 + X["category"].to_numpy()
    m = _within(group, r)  # items of the same request and category with a larger r
    assert (m > 0).mean() > 0.2  # duplicates are common
    np.testing.assert_allclose(p, r * decay**m, rtol=1e-12)
    # Exactly one item of each request and category keeps its relevance.
    kept = pd.Series(np.isclose(p, r, rtol=1e-12)).groupby(group).sum()
    assert (kept == 1).all()


def test_no_decay_orders_by_relevance():
    X, _, p = make_reranking_lists(300, duplicate_decay=1.0, initial_noise=0.0, random_state=5)
    np.testing.assert_allclose(p, _sigmoid(X["initial_score"].to_numpy()), rtol=1e-12)
    # The optimal order is the display order, i.e. the noiseless relevance order.
    same = X["request_id"].to_numpy()[1:] == X["request_id"].to_numpy()[:-1]
    assert (p[1:][same] <= p[:-1][same]).all()


def test_parameters_that_change_no_draw_keep_the_requests():
    base = make_reranking_lists(200, random_state=6)[0]
    for params in ({"initial_noise": 0.0}, {"position_bias": 0.0}, {"duplicate_decay": 1.0}):
        other = make_reranking_lists(200, random_state=6, **params)[0]
        key = ["request_id", "item"]
        merged = base[key + ["user_id"]].merge(other[key + ["user_id"]], on=key)
        assert len(merged) == len(base) == len(other), params
        assert (merged["user_id_x"] == merged["user_id_y"]).all()


def test_history_reveals_taste():
    X, _, p = make_reranking_lists(2000, duplicate_decay=1.0, random_state=7)
    hist = X.filter(like="hist_item_").to_numpy()
    item_cat = X.groupby("item")["category"].first()
    hist_cat = item_cat.reindex(hist.ravel()).to_numpy().reshape(hist.shape)
    in_history = (hist_cat == X["category"].to_numpy()[:, None]).any(axis=1)
    assert np.mean(p[in_history]) > np.mean(p[~in_history]) + 0.1


def test_list_aware_optimum_beats_initial_and_pointwise_orders():
    X, y, p = make_reranking_lists(2000, random_state=0)
    request = X["request_id"].to_numpy()
    initial = _ndcg(request, p, -X["initial_rank"].to_numpy().astype(float))
    optimum = _ndcg(request, p, p)
    # The same requests shown in the order of the noiseless relevance r.
    clean, _, p_clean = make_reranking_lists(2000, initial_noise=0.0, random_state=0)
    pointwise = _ndcg(clean["request_id"].to_numpy(), p_clean,
                      clean["initial_score"].to_numpy())
    assert optimum == pytest.approx(1.0)
    # Measured with seed 0: initial 0.879, noiseless pointwise 0.926, optimum 1.
    assert optimum - initial > 0.1
    assert optimum - pointwise > 0.05  # only a list-aware model closes this gap
    assert pointwise > initial
    assert 0.05 < y.mean() < 0.3


def test_position_bias_lowers_clicks_at_later_ranks():
    X, y, p = make_reranking_lists(2000, random_state=8)
    _, y0, p0 = make_reranking_lists(2000, position_bias=0.0, random_state=8)
    np.testing.assert_array_equal(p, p0)
    rank = X["initial_rank"].to_numpy()
    # The same uniform draws: bias only removes clicks, and none at the top.
    assert (y <= y0).all()
    np.testing.assert_array_equal(y[rank == 1], y0[rank == 1])
    late = rank >= 8
    assert y[late].mean() < 0.6 * y0[late].mean()
    # Clicks over true probabilities follow (1 / rank) ** 0.5.
    assert y[late].sum() / p[late].sum() == pytest.approx(
        np.mean((1.0 / rank[late]) ** 0.5), abs=0.08
    )
    assert y0[late].sum() / p0[late].sum() == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("params, name", [
    ({"n_requests": 0}, "n_requests"),
    ({"list_length": 1}, "list_length"),
    ({"list_length": (5, 4)}, "list_length"),
    ({"list_length": (2, 400)}, "list_length"),
    ({"list_length": (2, 3, 4)}, "list_length"),
    ({"list_length": (2.0, 3)}, "list_length"),
    ({"n_items": 5}, "n_items"),
    ({"n_categories": 0}, "n_categories"),
    ({"n_users": 0}, "n_users"),
    ({"history_length": 0}, "history_length"),
    ({"duplicate_decay": 1.5}, "duplicate_decay"),
    ({"duplicate_decay": -0.1}, "duplicate_decay"),
    ({"taste_strength": -1.0}, "taste_strength"),
    ({"position_bias": float("nan")}, "position_bias"),
    ({"initial_noise": -0.5}, "initial_noise"),
])
def test_parameter_errors_name_the_parameter(params, name):
    with pytest.raises(ValueError, match=name):
        make_reranking_lists(**{"n_requests": 10, **params})
