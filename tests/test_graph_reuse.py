"""Reuse of traced graphs between fits (``BaseKerasEstimator._reuse_graphs``)."""

from __future__ import annotations

import gc
import pickle
import weakref

import numpy as np
import pytest

import sklattn.base as base
from sklattn import AFMClassifier, DIENClassifier, DINClassifier, SequenceEncoder
from sklattn.base import clear_graph_cache
from sklattn.datasets import make_interest_sequences


@pytest.fixture(scope="module")
def data():
    X, y = make_interest_sequences(n_samples=300, maxlen=6, n_items=40, random_state=0)
    E = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}).fit_transform(X)
    return E, y


@pytest.fixture(autouse=True)
def empty_cache():
    gc.collect()  # estimators of earlier tests, discarded in reference cycles
    clear_graph_cache()
    yield
    clear_graph_cache()


def _pooled() -> int:
    gc.collect()
    with base._GRAPH_POOL_LOCK:
        base._admit_released()
    return sum(len(v) for v in base._GRAPH_POOL.values())


def _fit(cls, data, **kw):
    E, y = data
    return cls(epochs=1, batch_size=64, random_state=0, **kw).fit(E, y)


@pytest.mark.parametrize(
    "cls, kw",
    [(DINClassifier, {}), (DIENClassifier, {"gru_type": "AUGRU"}), (AFMClassifier, {})],
)
def test_a_reused_graph_gives_the_predictions_of_a_fresh_one(data, cls, kw):
    E, _ = data
    fresh = _fit(cls, data, **kw).predict_proba(E)
    assert _pooled() == 1  # the discarded estimator's graph
    est = _fit(cls, data, **kw)
    assert _pooled() == 0  # taken by the second fit
    np.testing.assert_array_equal(est.predict_proba(E), fresh)
    # and the third fit, from the second's graph, too
    del est
    np.testing.assert_array_equal(_fit(cls, data, **kw).predict_proba(E), fresh)


def test_a_live_estimator_keeps_its_graph(data):
    est = _fit(DINClassifier, data)
    assert _pooled() == 0
    other = _fit(DINClassifier, data)
    assert other.model_ is not est.model_


def test_a_layer_held_by_the_user_keeps_its_graph_from_reuse(data):
    table = _fit(DINClassifier, data)._tables["item"]  # the estimator is discarded
    values = np.array(table.embeddings.numpy())
    assert _pooled() == 0
    _fit(DINClassifier, data, learning_rate=0.01)
    np.testing.assert_array_equal(np.array(table.embeddings.numpy()), values)


def test_a_model_held_by_the_user_is_never_reused(data):
    E, _ = data
    model = _fit(DINClassifier, data).model_  # the estimator itself is discarded
    weights = [np.array(w) for w in model.get_weights()]
    assert _pooled() == 0
    _fit(DINClassifier, data, learning_rate=0.01)
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, np.asarray(after))


def test_a_refit_reuses_its_own_graph_with_fresh_initial_values(data):
    E, y = data
    est = _fit(DINClassifier, data)
    first = est.predict_proba(E)
    model = weakref.ref(est.model_)  # a strong reference would keep it from reuse
    est.fit(E, y)
    assert est.model_ is model()
    np.testing.assert_array_equal(est.predict_proba(E), first)


def test_another_architecture_is_not_reused(data):
    E, _ = data
    _fit(DINClassifier, data, embedding_dim=4)
    assert _pooled() == 1
    est = _fit(DINClassifier, data, embedding_dim=6)
    assert _pooled() == 1  # the 4-wide graph is still there, unused
    clear_graph_cache()
    np.testing.assert_array_equal(
        est.predict_proba(E), _fit(DINClassifier, data, embedding_dim=6).predict_proba(E)
    )


def test_learning_rate_and_epochs_do_not_change_the_graph(data):
    E, y = data
    _fit(DINClassifier, data)
    reused = DINClassifier(epochs=2, batch_size=64, learning_rate=0.02, random_state=0)
    reused.fit(E, y)
    assert _pooled() == 0
    clear_graph_cache()
    fresh = DINClassifier(epochs=2, batch_size=64, learning_rate=0.02, random_state=0)
    np.testing.assert_array_equal(reused.predict_proba(E), fresh.fit(E, y).predict_proba(E))


def test_pickled_estimators_round_trip(data):
    E, _ = data
    est = _fit(DINClassifier, data)
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.predict_proba(E), est.predict_proba(E))


def test_clear_graph_cache_drops_every_graph(data):
    _fit(DINClassifier, data)
    assert _pooled() == 1
    clear_graph_cache()
    assert _pooled() == 0


def test_full_batches_cover_every_row_once_and_weigh_the_fillers_zero():
    from sklattn.base import _full_batches

    X = np.arange(10, dtype="int32")[:, None]
    y = np.arange(10, dtype="float32")
    orders = []
    batches = _full_batches([X], y, np.full(10, 0.5), 4, seed=0)
    for _ in range(2):  # two epochs of the same dataset: two permutations
        seen, order = [], []
        for x, _, w in batches:
            x, w = np.asarray(x).ravel(), np.asarray(w)
            assert len(x) == 4  # every batch is full
            seen += x[w > 0].tolist()
            order += x.tolist()
            # the real rows of the short batch weigh batch_size / k, the fillers 0
            np.testing.assert_allclose(w[w > 0], 0.5 * (4 / 2 if (w == 0).any() else 1.0))
        assert sorted(seen) == list(range(10))
        orders.append(order)
    assert orders[0] != orders[1]


def test_an_xla_fit_on_a_short_last_batch_matches_its_row_count(data):
    E, y = data  # 300 rows: four batches of 64, the last one with 44
    est = DINClassifier(epochs=2, batch_size=64, random_state=0, jit_compile=True).fit(E, y)
    proba = est.predict_proba(E)
    assert np.isfinite(proba).all() and est.n_iter_ == 2
    again = DINClassifier(epochs=2, batch_size=64, random_state=0, jit_compile=True).fit(E, y)
    np.testing.assert_array_equal(again.predict_proba(E), proba)
