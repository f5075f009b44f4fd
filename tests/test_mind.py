import copy
import pickle

import numpy as np
import pandas as pd
import pytest
from retriever_contract import check_encoded_frame_contract, contract_tests
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sklattn import MINDRetriever, SequenceEncoder
from sklattn.datasets import make_multi_interest_sequences
from sklattn.layers import (
    CandidateSampler,
    CapsuleRouting,
    LabelAwareAttention,
    SampledSoftmaxLoss,
    interest_counts,
)
from sklattn.metrics import hit_rate_at_k, ndcg_at_k, recall_at_k
from sklattn.models._search import BruteForceIndex, FaissIndex

TINY = dict(embedding_dim=8, n_interests=2, hidden_units=(16,), n_negatives=20, epochs=2,
            learning_rate=1e-2, top_n=10, random_state=0)


@pytest.fixture(scope="module")
def data():
    X = make_multi_interest_sequences(n_users=300, history_length=6, events_per_user=2,
                                      random_state=0)
    # Some short histories, so that padding and the dynamic interest number matter.
    X.loc[X.index % 5 == 0, ["hist_item_1", "hist_item_2", "hist_item_3"]] = np.nan
    return X


@pytest.fixture(scope="module")
def fitted(data):
    encoder = SequenceEncoder(sequences={"hist_item": "item"})
    E = encoder.fit_transform(data)
    return encoder, E, MINDRetriever(**TINY).fit(E)


def _behaviours(batch=6, steps=5, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(batch, steps, dim)).astype("float32")
    valid = np.ones((batch, steps), bool)
    for i in range(batch):
        valid[i, : i % steps] = False  # left padding of various lengths
    return e, valid


# ----------------------------------------------------------------------------- layers
def test_routing_is_batch_independent_and_deterministic():
    e, valid = _behaviours()
    layer = CapsuleRouting(n_interests=3, seed=0)
    together, mask = (np.asarray(t) for t in layer(e, valid))
    again, _ = layer(e, valid)
    np.testing.assert_array_equal(together, np.asarray(again))
    for i in range(len(e)):
        alone, alone_mask = layer(e[i:i + 1], valid[i:i + 1])
        np.testing.assert_allclose(np.asarray(alone)[0], together[i], atol=1e-6)
        np.testing.assert_array_equal(np.asarray(alone_mask)[0], mask[i])
    # Reversing the batch changes nothing for any row either.
    reversed_, _ = layer(e[::-1], valid[::-1])
    np.testing.assert_allclose(np.asarray(reversed_)[::-1], together, atol=1e-6)


def test_routing_logits_are_never_stored():
    e, valid = _behaviours()
    layer = CapsuleRouting(n_interests=3, seed=0)
    layer(e, valid)
    start = np.asarray(layer.initial_logits).copy()
    first, _ = layer(e[:1], valid[:1])
    layer(e[1:] * 10.0, valid[1:])  # other users in between
    second, _ = layer(e[:1], valid[:1])
    np.testing.assert_array_equal(np.asarray(layer.initial_logits), start)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    assert not layer.initial_logits.trainable


def test_padding_never_changes_interests():
    e, valid = _behaviours()
    layer = CapsuleRouting(n_interests=3, seed=0)
    clean, _ = layer(e, valid)
    garbage = np.where(valid[..., None], e, 1e3).astype("float32")
    dirty, _ = layer(garbage, valid)
    np.testing.assert_allclose(np.asarray(dirty), np.asarray(clean), atol=1e-6)


def test_capsules_differ_and_interest_count_follows_the_formula():
    lengths = np.arange(0, 40)
    expected = np.maximum(1, np.minimum(4, np.floor(np.log2(1 + lengths)))).astype(int)
    np.testing.assert_array_equal(np.asarray(interest_counts(lengths, 4)), expected)

    e, valid = _behaviours(batch=8, steps=8, dim=6)
    interests, mask = CapsuleRouting(n_interests=4, seed=0)(e, valid)
    interests, mask = np.asarray(interests), np.asarray(mask)
    np.testing.assert_array_equal(mask.sum(1), interest_counts(valid.sum(1), 4))
    assert np.all(interests[~mask] == 0)
    full = interests[0][mask[0]]  # row 0 has no padding
    assert len(full) >= 2 and not np.allclose(full[0], full[1])  # symmetry broken
    _, fixed = CapsuleRouting(n_interests=4, dynamic=False, seed=0)(e, valid)
    assert np.asarray(fixed).all()


def test_label_aware_attention_with_huge_p_picks_the_closest_interest():
    rng = np.random.default_rng(1)
    interests = rng.normal(size=(50, 3, 4)).astype("float32") * 3
    target = rng.normal(size=(50, 4)).astype("float32") * 3
    mask = np.ones((50, 3), bool)
    mask[:10, 2] = False
    user, w = LabelAwareAttention(pow_p=1e4)(interests, target, mask)
    scores = np.einsum("bkd,bd->bk", interests, target)
    scores[~mask] = -np.inf
    best = scores.argmax(1)
    np.testing.assert_allclose(np.asarray(w), np.eye(3)[best], atol=1e-6)
    np.testing.assert_allclose(np.asarray(user), interests[np.arange(50), best], atol=1e-5)
    # p = 0 averages the valid interests.
    _, uniform = LabelAwareAttention(pow_p=0.0)(interests, target, mask)
    np.testing.assert_allclose(np.asarray(uniform), mask / mask.sum(1, keepdims=True), atol=1e-6)


def test_sampled_softmax_removes_accidental_hits_and_corrects_log_q():
    rng = np.random.default_rng(0)
    user = rng.normal(size=(3, 4)).astype("float32")
    target = rng.normal(size=(3, 4)).astype("float32")
    negatives = rng.normal(size=(5, 4)).astype("float32")
    target_ids, negative_ids = np.array([7, 8, 9]), np.array([7, 2, 3, 9, 4])
    log_q_t = np.log(np.array([0.5, 0.1, 0.2], "float32"))
    log_q_n = np.log(np.array([0.5, 0.3, 0.3, 0.2, 0.1], "float32"))
    loss = np.asarray(SampledSoftmaxLoss()(user, target, negatives, target_ids, negative_ids,
                                           log_q_t, log_q_n))
    expected = []
    for r in range(3):
        logits = [user[r] @ target[r] - log_q_t[r]]
        logits += [user[r] @ negatives[j] - log_q_n[j] for j in range(5)
                   if negative_ids[j] != target_ids[r]]
        logits = np.array(logits)
        expected.append(np.log(np.exp(logits).sum()) - logits[0])
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_candidate_sampler_draws_by_frequency_and_is_repeatable_at_inference():
    sampler = CandidateSampler(6, n_negatives=20000, seed=0)
    sampler.build((None,))
    sampler.set_distribution(np.array([50, 50, 1, 1, 2, 4]))
    negatives, log_q, target_log_q = sampler(np.array([5, 2]), training=True)
    freq = np.bincount(np.asarray(negatives), minlength=6) / 20000
    np.testing.assert_allclose(freq, [0, 0, 1 / 8, 1 / 8, 2 / 8, 4 / 8], atol=0.02)
    np.testing.assert_allclose(np.asarray(target_log_q), np.log(20000 * np.array([0.5, 0.125])),
                               rtol=1e-5)
    first, _, _ = sampler(np.array([5]))
    second, _, _ = sampler(np.array([5]))
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


# ---------------------------------------------------------------------------- search
def test_brute_force_search_is_exact_and_excludes():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(1000, 8)).astype("float32")
    users = rng.normal(size=(30, 3, 8)).astype("float32")
    mask = np.ones((30, 3), bool)
    mask[:5, 1:] = False
    exclude = np.full((30, 4), -1)
    exclude[:, 0] = np.arange(30)
    pos, scores = BruteForceIndex(items, user_block=7, item_chunk=97).search(
        users, mask, 10, exclude)
    full = np.where(mask[:, :, None], users @ items.T, -np.inf).max(1)
    full[np.arange(30), np.arange(30)] = -np.inf
    expected = np.argsort(-full, axis=1)[:, :10]
    np.testing.assert_array_equal(pos, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-5)


def test_faiss_index_matches_brute_force_when_probing_every_list():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    items = rng.normal(size=(2000, 8)).astype("float32")
    users = rng.normal(size=(20, 2, 8)).astype("float32")
    mask = np.ones((20, 2), bool)
    mask[0, 1] = False
    exclude = np.tile(np.arange(3), (20, 1))
    index = FaissIndex(items, nlist=16, nprobe=16)
    approx, _ = index.search(users, mask, 10, exclude)
    exact, _ = BruteForceIndex(items).search(users, mask, 10, exclude)
    np.testing.assert_array_equal(approx, exact)


# ---------------------------------------------------------------------------- metrics
def test_ranking_metrics():
    y_pred = [["a", "b", "c"], ["c", "d", "e"], ["x", "y", "z"]]
    assert hit_rate_at_k(["b", "e", "q"], y_pred) == pytest.approx(2 / 3)
    assert hit_rate_at_k(["b", "e", "q"], y_pred, k=2) == pytest.approx(1 / 3)
    assert recall_at_k([{"a", "c"}, {"d"}, {"q", "r"}], y_pred, k=2) == pytest.approx(
        (0.5 + 1 + 0) / 3)
    assert ndcg_at_k(["a", "e", "q"], y_pred) == pytest.approx((1 + 1 / np.log2(4)) / 3)
    ideal = ndcg_at_k([{"a", "b"}], [["a", "b", "c"]])
    assert ideal == pytest.approx(1.0)
    with pytest.raises(ValueError, match="inconsistent"):
        hit_rate_at_k(["a"], y_pred)


# ------------------------------------------------------------------------- estimator
def test_pipeline_fit_predict_and_score(data, fitted):
    encoder, E, model = fitted
    assert model.target_ == "item" and model.sequence_ == "hist_item"
    assert set(model.item_labels_) == set(encoder.vocabularies_["item"])
    assert model.item_embeddings_.shape == (len(model.item_labels_), 8)
    top, scores = model.retrieve(E.head(40))
    assert top.shape == (40, 10) and set(top.ravel()) <= set(model.item_labels_)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    hist = data.head(40)[[f"hist_item_{i}" for i in range(1, 7)]].to_numpy()
    for row, seen in zip(top, hist, strict=True):
        assert len(set(row)) == len(row)
        assert not set(row) & set(seen[~pd.isna(seen)])  # exclude_seen
    np.testing.assert_array_equal(model.predict(E.head(40)), top)
    assert model.transform(E.head(3)).shape == (3, 2 * 8)
    assert list(model.get_feature_names_out()[:2]) == ["interest0_0", "interest0_1"]
    interests, mask = model.user_interests(E.head(5))
    assert interests.shape == (5, 2, 8) and mask.dtype == bool
    hr = model.score(E)
    assert hr == hit_rate_at_k(encoder.decode(E["item"].to_numpy(), "item"), model.predict(E))

    # Serving without the target column, from raw rows.
    raw = data.drop(columns=["item"]).head(5)
    np.testing.assert_array_equal(model.predict(encoder.transform(raw)), top[:5])


def test_interests_do_not_depend_on_the_batch(fitted):
    _, E, model = fitted
    together = model.transform(E.head(30))
    alone = np.vstack([model.transform(E.iloc[[i]]) for i in (0, 7, 29)])
    np.testing.assert_allclose(alone, together[[0, 7, 29]], atol=1e-5)
    model.transform(E.tail(50))  # other users in between
    np.testing.assert_array_equal(model.transform(E.head(30)), together)


def test_padding_does_not_change_a_fitted_model(fitted):
    _, E, model = fitted
    short = E[E["hist_item_1"] == 0].head(10)
    assert len(short)
    noisy = short.copy()
    noisy["item"] = 1  # the target does not enter the interests either
    np.testing.assert_array_equal(model.transform(noisy), model.transform(short))
    _, mask = model.user_interests(short)
    lengths = (short.filter(like="hist_item_") != 0).sum(axis=1).to_numpy()
    np.testing.assert_array_equal(mask.sum(1), np.minimum(2, np.floor(np.log2(1 + lengths))))


def test_pickle_and_seed_reproducibility(data, fitted):
    _, E, model = fitted
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(E.head(50)), model.predict(E.head(50)))
    again = clone(model).fit(E)
    np.testing.assert_allclose(again.transform(E.head(20)), model.transform(E.head(20)),
                               atol=1e-6)


def test_partial_fit_trains_one_epoch_per_call(data, fitted):
    # The base's partial_fit serves the retriever too: no labels, one epoch per call.
    encoder, E, _ = fitted
    model = MINDRetriever(**TINY).partial_fit(E)
    first = model.transform(E.head(20))
    assert model.n_iter_ == 1 and len(model.item_embeddings_) == len(model.item_labels_)
    model.partial_fit(E)
    assert model.n_iter_ == 2
    assert not np.allclose(model.transform(E.head(20)), first)
    with pytest.raises(ValueError, match="target column 'item'"):
        model.partial_fit(encoder.transform(data.drop(columns=["item"])))


def test_two_interests_beat_one():
    X = make_multi_interest_sequences(n_users=1500, n_clusters=20, items_per_cluster=10,
                                      history_length=10, events_per_user=4, random_state=0)
    encoder = SequenceEncoder(sequences={"hist_item": "item"})
    train = encoder.fit_transform(X[X.index % 4 != 3].drop(columns="user_id"))
    test = encoder.transform(X[X.index % 4 == 3].drop(columns="user_id"))
    common = dict(embedding_dim=8, hidden_units=(64,), n_negatives=20, epochs=20,
                  learning_rate=1e-2, top_n=20, exclude_seen=False, dynamic_interests=False,
                  random_state=0)
    one = MINDRetriever(n_interests=1, **common).fit(train).score(test)
    two = MINDRetriever(n_interests=2, **common).fit(train).score(test)
    # A random top 20 of 200 items hits 0.10; knowing both clusters hits 1.0.
    assert two > one + 0.05, (one, two)
    assert one > 0.2


def test_grid_search_over_n_interests_with_score(data):
    model = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}),
                          MINDRetriever(**{**TINY, "epochs": 1}))
    search = GridSearchCV(model, {"mindretriever__n_interests": [1, 2]}, cv=2).fit(data)
    assert set(search.cv_results_["param_mindretriever__n_interests"]) == {1, 2}
    assert 0.0 <= search.best_score_ <= 1.0


def test_errors_name_the_problem(data):
    encoder = SequenceEncoder(sequences={"hist_item": "item"})
    E = encoder.fit_transform(data)
    without_target = encoder.transform(data.drop(columns=["item"]))
    with pytest.raises(ValueError, match="'item'"):
        MINDRetriever(**TINY).fit(without_target)
    fitted = MINDRetriever(**TINY).fit(E)
    with pytest.raises(ValueError, match="target column 'item'"):
        fitted.score(without_target)
    two = SequenceEncoder(sequences={"hist_item": "item", "hist_x": "x"})
    frame = data.assign(**{f"hist_x_{i}": data[f"hist_item_{i}"] for i in range(1, 7)},
                        x=data["item"])
    with pytest.raises(ValueError, match="one behaviour sequence"):
        MINDRetriever(**TINY).fit(two.fit_transform(frame))
    with pytest.raises(ValueError, match="n_interests"):
        MINDRetriever(n_interests=0).fit(E)
    with pytest.raises(TypeError, match="DataFrame"):
        MINDRetriever(**TINY).fit(E.to_numpy())


# --------------------------------------------------- top_n: rectangular, typed, finite
def test_top_n_is_capped_at_what_every_row_has(fitted):
    encoder, E, model = fitted
    n_items, history = len(model.item_labels_), 6
    assert model.item_labels_.dtype == np.int64  # integer item ids stay integers
    items, scores = model.retrieve(E.head(40), top_n=10_000)
    # A history holds at most 6 items, so every row has n_items - 6 unseen items.
    assert items.shape == (40, n_items - history)
    assert items.dtype == np.int64 and scores.dtype == np.float32
    assert np.isfinite(scores).all() and np.all(np.diff(scores, axis=1) <= 0)
    seen = encoder.decode(E.head(40).filter(like="hist_item_").to_numpy(), "item")
    for row, row_seen in zip(items, seen, strict=True):
        assert len(set(row)) == len(row) and not set(row) & set(row_seen)

    big = copy.deepcopy(model).set_params(top_n=10_000)
    np.testing.assert_array_equal(big.predict(E.head(40)), items)
    truth = encoder.decode(E["item"].to_numpy(), "item")
    assert big.score(E) == hit_rate_at_k(truth, big.predict(E))
    big.set_params(exclude_seen=False)  # the whole catalogue, in a different order per row
    everything = big.predict(E.head(5))
    assert everything.shape == (5, n_items) and everything.dtype == np.int64
    for row in everything:
        np.testing.assert_array_equal(np.sort(row), np.sort(model.item_labels_))


def test_a_bad_top_n_is_named(fitted):
    _, E, model = fitted
    for bad in (0, -3, 2.5, "3", True):
        with pytest.raises(ValueError, match="top_n"):
            model.retrieve(E.head(3), top_n=bad)
    with pytest.raises(ValueError, match="top_n"):
        copy.deepcopy(model).set_params(top_n=0).predict(E.head(3))
    items = np.eye(4, dtype="float32")
    with pytest.raises(ValueError, match="top_n"):
        BruteForceIndex(items).search(items[:1, None], np.ones((1, 1), bool), 0)


def test_exclude_seen_needs_a_catalogue_longer_than_the_history():
    rng = np.random.default_rng(0)
    letters = np.array(list("abcde"), dtype=object)
    frame = pd.DataFrame(rng.choice(letters, size=(60, 6)),
                         columns=[f"hist_item_{i}" for i in range(1, 6)] + ["item"])
    E = SequenceEncoder(sequences={"hist_item": "item"}).fit_transform(frame)
    model = MINDRetriever(embedding_dim=4, n_interests=2, hidden_units=(), n_negatives=3,
                          epochs=1, top_n=3, random_state=0).fit(E)
    assert model.item_labels_.dtype == object and set(model.item_labels_) == set(letters)
    # Five items, five-item histories: a row may have seen everything.
    for serve in (model.predict, model.retrieve, model.score):
        with pytest.raises(ValueError, match="exclude_seen"):
            serve(E)
    model.set_params(exclude_seen=False, top_n=50)
    top, scores = model.retrieve(E)
    assert top.shape == (60, 5) and top.dtype == object and np.isfinite(scores).all()
    assert all(sorted(row) == list("abcde") for row in top)


def test_faiss_searches_every_list_when_its_probes_come_back_short():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    items = rng.normal(size=(2000, 8)).astype("float32")
    users = rng.normal(size=(20, 2, 8)).astype("float32")
    mask = np.ones((20, 2), bool)
    exclude = np.tile(np.arange(3), (20, 1))
    # One probed list of 40 holds about 50 items: too few for a top 200.
    index = FaissIndex(items, nlist=40, nprobe=1)
    approx, scores = index.search(users, mask, 200, exclude)
    exact, _ = BruteForceIndex(items).search(users, mask, 200, exclude)
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(approx, exact)


# ------------------------------------------------------------- scikit-learn's contract
CHECKED = MINDRetriever(embedding_dim=4, n_interests=2, hidden_units=(), n_negatives=5,
                        epochs=1, top_n=5, random_state=0)
(test_sklearn_generated_checks, test_tags_describe_encoded_frames,
 test_sklearn_checks_that_need_no_data) = contract_tests(CHECKED)


def test_sklearn_contract_on_encoded_frames():
    X = make_multi_interest_sequences(n_users=40, history_length=4, events_per_user=2,
                                      random_state=1)
    E = SequenceEncoder(sequences={"hist_item": "item"}).fit_transform(X)
    serving = ("predict", "transform", "retrieve", "user_interests", "score")
    check_encoded_frame_contract(CHECKED, E, serving)
