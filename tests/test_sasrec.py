import copy
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from retriever_contract import check_encoded_frame_contract, contract_tests
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sklattn import MINDRetriever, SASRecRetriever, SequenceEncoder
from sklattn._backend import keras
from sklattn._schema import FIRST_ID, Schema
from sklattn.datasets import make_transition_sequences
from sklattn.layers import BinaryNextItemLoss, CatalogueSoftmaxLoss
from sklattn.metrics import hit_rate_at_k
from sklattn.models._sequential import training_sequence

TINY = dict(embedding_dim=8, n_blocks=1, epochs=2, learning_rate=1e-2, top_n=10,
            random_state=0)
HISTORY = [f"hist_item_{i}" for i in range(1, 7)]


@pytest.fixture(scope="module")
def data():
    X = make_transition_sequences(n_users=150, n_items=40, history_length=6,
                                  events_per_user=2, random_state=0)
    X.loc[X.index % 5 == 0, HISTORY[:3]] = np.nan  # short histories: padding matters
    return X.drop(columns="user_id")


@pytest.fixture(scope="module")
def fitted(data):
    encoder = SequenceEncoder(sequences={"hist_item": "item"})
    E = encoder.fit_transform(data)
    return encoder, E, SASRecRetriever(**TINY).fit(E)


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# ----------------------------------------------------------------------------- layers
def test_catalogue_softmax_loss_scores_only_catalogue_items():
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(3, 4, 5)).astype("float32")
    items = rng.normal(size=(9, 5)).astype("float32")
    labels = np.array([[0, 3, 8, 1], [2, 2, 0, 0], [0, 0, 0, 0]])
    loss = _np(CatalogueSoftmaxLoss()(outputs, labels, items))
    logits = outputs @ items[FIRST_ID:].T  # padding and the unseen id are never classes
    expected = np.zeros(3)
    for r, t in zip(*np.nonzero(labels >= FIRST_ID), strict=True):
        row = logits[r, t]
        expected[r] += np.log(np.exp(row).sum()) - row[labels[r, t] - FIRST_ID]
    np.testing.assert_allclose(loss, expected / 4, rtol=1e-5)
    assert loss[2] == 0.0


def test_binary_loss_pays_for_the_positive_and_the_negative():
    rng = np.random.default_rng(1)
    outputs, pos, neg = (rng.normal(size=(2, 3, 4)).astype("float32") for _ in range(3))
    labels = np.array([[5, 0, 7], [1, 9, 9]])  # padding and the unseen id pay nothing
    loss = _np(BinaryNextItemLoss()(outputs, pos, neg, labels))
    s_pos, s_neg = (outputs * pos).sum(-1), (outputs * neg).sum(-1)
    per = np.log1p(np.exp(-s_pos)) + np.log1p(np.exp(s_neg))
    np.testing.assert_allclose(loss, (per * (labels >= FIRST_ID)).sum(1) / 3, rtol=1e-5)


def test_training_sequence_appends_the_target_or_shifts_the_history():
    schema = Schema(sequences={"h": (["h_1", "h_2", "h_3"], "item")},
                    categorical={"item": "item"}, vocabulary_sizes={"item": 10})
    ids = np.array([[0, 4, 5, 6], [4, 5, 6, 0], [0, 0, 7, 1]], dtype="int32")
    out = _np(training_sequence(ids, schema))
    # A missing target (0): the history keeps its newest item at the last position.
    np.testing.assert_array_equal(out, [[0, 4, 5, 6], [0, 4, 5, 6], [0, 0, 7, 1]])
    no_target = Schema(sequences={"h": (["h_1", "h_2", "h_3"], "item")},
                       vocabulary_sizes={"item": 10})
    np.testing.assert_array_equal(_np(training_sequence(ids[:, :3], no_target)),
                                  [[0, 0, 4, 5], [0, 4, 5, 6], [0, 0, 0, 7]])


# ---------------------------------------------------------------- defining properties
def test_an_output_never_depends_on_later_positions(fitted):
    _, E, model = fitted
    rows = E[E["hist_item_1"] != 0].head(20)
    before = model._position_outputs(rows)
    for t in (1, 3):
        changed = rows.copy()
        later = HISTORY[t + 1:]
        changed[later] = (changed[later].to_numpy() + 7) % 38 + FIRST_ID
        after = model._position_outputs(changed)
        np.testing.assert_allclose(after[:, : t + 1], before[:, : t + 1], atol=1e-6)
        assert not np.allclose(after[:, -1], before[:, -1], atol=1e-3)
    # The user vector is the output at the newest position.
    np.testing.assert_allclose(model.transform(rows), before[:, -1], atol=1e-6)


def test_reversing_a_history_changes_the_user_vector(fitted):
    _, E, model = fitted
    rows = E[E["hist_item_1"] != 0].head(20)
    reversed_ = rows.copy()
    reversed_[HISTORY] = rows[HISTORY].to_numpy()[:, ::-1]
    gap = np.abs(model.transform(reversed_) - model.transform(rows)).max(axis=1)
    assert (gap > 1e-2).all()


def test_padding_never_changes_an_output(fitted):
    _, E, model = fitted
    short = E[E["hist_item_1"] == 0].head(10)
    assert len(short)
    vectors, top = model.transform(short), model.predict(short)
    noisy = short.copy()
    noisy["item"] = 1  # the target is never read at serving
    np.testing.assert_array_equal(model.transform(noisy), vectors)
    huge = copy.deepcopy(model)
    table = huge._tables["item"]
    weights = _np(table.embeddings).copy()
    weights[0] = 1e4  # the padding id's row
    table.embeddings.assign(weights)
    np.testing.assert_allclose(huge.transform(short), vectors, atol=1e-5)
    np.testing.assert_array_equal(huge.predict(short), top)
    # An empty history is served too (the learned output norm's offset: finite scores).
    empty = short.copy()
    empty[HISTORY] = 0
    assert np.isfinite(model.retrieve(empty)[1]).all()


def test_the_output_layer_is_the_item_table(fitted):
    _, E, model = fitted
    table = model._tables["item"]
    n_ids, dim = table.input_dim, table.output_dim
    shaped = [w for w in model.model_.trainable_weights if tuple(w.shape) == (n_ids, dim)]
    assert len(shaped) == 1 and shaped[0] is table.embeddings
    np.testing.assert_array_equal(model.item_embeddings_, _np(table.embeddings)[FIRST_ID:])
    tied = copy.deepcopy(model)
    weights = _np(tied._tables["item"].embeddings).copy()
    weights[FIRST_ID:] = 0.0  # every catalogue item scores 0 at every position
    tied._tables["item"].embeddings.assign(weights)
    ids = E[tied.schema_.int_columns].to_numpy("int32")[:20]
    loss = _np(tied.model_([ids], training=False))
    sequence = np.column_stack([ids[:, :6], ids[:, 6]])
    labelled = ((sequence[:, :-1] != 0) & (sequence[:, 1:] >= FIRST_ID)).sum(1)
    n_items = n_ids - FIRST_ID
    np.testing.assert_allclose(loss, labelled * np.log(n_items) / 6, rtol=1e-5)


def test_last_position_training_is_the_serving_task(fitted):
    """With ``train_positions="last"`` a row's loss is the full softmax loss of its
    target against the served user vector (the newest position's output), and no
    other position's."""
    _, E, model = fitted
    last = clone(model).set_params(train_positions="last", epochs=1).fit(E.head(8))
    last.model_.set_weights(model.model_.get_weights())
    rows = E[E["item"] >= FIRST_ID].head(20)
    ids = rows[model.schema_.int_columns].to_numpy("int32")
    loss = _np(last.model_([ids], training=False))
    users = model.transform(rows)
    items = _np(model._tables["item"].embeddings)[FIRST_ID:]
    logits = users @ items.T
    picked = logits[np.arange(len(rows)), rows["item"].to_numpy() - FIRST_ID]
    top = logits.max(axis=1)
    expected = top + np.log(np.exp(logits - top[:, None]).sum(axis=1)) - picked
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    # "all" pays for every labelled position: more than the newest one's share.
    everything = _np(model.model_([ids], training=False))
    assert (everything * 6 > loss).all()


@pytest.fixture(scope="module")
def transitions():
    X = make_transition_sequences(n_users=600, n_items=100, history_length=8,
                                  events_per_user=3, noise=0.1, random_state=0)
    X = X.drop(columns="user_id")
    train, test = X[X.index % 3 != 2], X[X.index % 3 == 2]
    encoder = SequenceEncoder(sequences={"hist_item": "item"})
    return encoder.fit_transform(train), encoder.transform(test)


def test_sasrec_learns_the_transition_where_mind_and_popularity_cannot(transitions):
    train, test = transitions
    common = dict(embedding_dim=16, epochs=8, learning_rate=1e-2, top_n=10, random_state=0)
    sasrec = SASRecRetriever(n_blocks=1, **common).fit(train).score(test)
    mind = MINDRetriever(n_interests=2, n_negatives=20, **common).fit(train).score(test)
    counts = np.bincount(train["item"], minlength=102)[FIRST_ID:]
    popular = np.argsort(-counts)[:10] + FIRST_ID
    popularity = hit_rate_at_k(test["item"].to_numpy(), np.tile(popular, (len(test), 1)))
    # The best retriever hits 0.9 + 0.1 * 10 / 100 = 0.91; every item is equally popular.
    assert sasrec > 0.8, sasrec
    assert sasrec > mind + 0.3 and sasrec > popularity + 0.5, (sasrec, mind, popularity)


def test_last_position_training_learns_from_one_row_per_event(transitions):
    """Rows of one event each (history, next item): predicting only the newest item
    learns the transition too."""
    train, test = transitions
    model = SASRecRetriever(embedding_dim=16, n_blocks=1, epochs=8, learning_rate=1e-2,
                            train_positions="last", top_n=10, random_state=0).fit(train)
    assert model.score(test) > 0.8


@pytest.mark.parametrize("loss", ["softmax", "sampled", "bce"])
def test_every_loss_trains(transitions, loss):
    train, test = transitions
    model = SASRecRetriever(embedding_dim=16, n_blocks=1, epochs=4, learning_rate=1e-2,
                            loss=loss, n_negatives=20, top_n=10, random_state=0).fit(train)
    losses = model.history_["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0], losses
    assert model.score(test) > 0.5


def test_negatives_are_catalogue_items_drawn_as_asked(fitted):
    _, E, model = fitted
    sampled = SASRecRetriever(**{**TINY, "loss": "sampled", "epochs": 1}).fit(E)
    p = _np(sampled._layers["candidate_sampler"].probabilities)
    assert p[:FIRST_ID].sum() == 0 and p[FIRST_ID:].min() > 0  # every item occurs
    counts = np.bincount(E.filter(like="item").to_numpy().ravel(), minlength=len(p))
    counts[:FIRST_ID] = 0
    np.testing.assert_allclose(p, counts / counts.sum(), rtol=1e-5)
    uniform = SASRecRetriever(**{**TINY, "loss": "bce", "epochs": 1}).fit(E)
    q = _np(uniform._layers["negative_sampler"].probabilities)
    np.testing.assert_allclose(q[FIRST_ID:], 1 / (len(q) - FIRST_ID), rtol=1e-5)
    assert q[:FIRST_ID].sum() == 0


# ----------------------------------------------------------------------- estimator
def test_pipeline_fit_predict_and_score(data, fitted):
    encoder, E, model = fitted
    assert model.target_ == "item" and model.sequence_ == "hist_item"
    assert model.item_embeddings_.shape == (len(model.item_labels_), 8)
    top, scores = model.retrieve(E.head(40))
    assert top.shape == (40, 10) and top.dtype == np.int64
    assert np.all(np.diff(scores, axis=1) <= 0)
    seen = data.head(40)[HISTORY].to_numpy()
    for row, row_seen in zip(top, seen, strict=True):
        assert len(set(row)) == 10 and not set(row) & set(row_seen[~pd.isna(row_seen)])
    vectors = model.transform(E.head(40))
    assert vectors.shape == (40, 8) and vectors.dtype == np.float32
    # Scores are inner products of the user vector with the item table.
    row_of = {label: i for i, label in enumerate(model.item_labels_)}
    rows = np.vectorize(row_of.get)(top)
    np.testing.assert_allclose(
        scores, np.take_along_axis(vectors @ model.item_embeddings_.T, rows, 1), rtol=1e-4)
    assert list(model.get_feature_names_out()[:2]) == ["sasrecretriever0", "sasrecretriever1"]
    truth = encoder.decode(E["item"].to_numpy(), "item")
    assert model.score(E) == hit_rate_at_k(truth, model.predict(E))
    raw = data.drop(columns=["item"]).head(5)  # serving without the target column
    np.testing.assert_array_equal(model.predict(encoder.transform(raw)), top[:5])


def test_faiss_index_probing_every_list_is_exact(fitted):
    pytest.importorskip("faiss")
    _, E, model = fitted
    approx = copy.deepcopy(model).set_params(index="faiss",
                                             index_options={"nlist": 4, "nprobe": 4})
    np.testing.assert_array_equal(approx.predict(E.head(30)), model.predict(E.head(30)))


def test_predictions_do_not_depend_on_the_batch(fitted):
    _, E, model = fitted
    together, top = model.transform(E.head(30)), model.predict(E.head(30))
    alone = np.vstack([model.transform(E.iloc[[i]]) for i in (0, 7, 29)])
    np.testing.assert_allclose(alone, together[[0, 7, 29]], atol=1e-5)
    np.testing.assert_array_equal(model.predict(E.iloc[[7]])[0], top[7])
    np.testing.assert_array_equal(model.predict(E.head(30).iloc[::-1]), top[::-1])


def test_pickle_joblib_and_seed_reproducibility(fitted, tmp_path):
    _, E, model = fitted
    top = model.predict(E.head(50))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(E.head(50)), top)
    joblib.dump(model, tmp_path / "sasrec.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "sasrec.joblib").predict(E.head(50)),
                                  top)
    again = clone(model).fit(E)
    np.testing.assert_allclose(again.transform(E.head(20)), model.transform(E.head(20)),
                               atol=1e-6)
    np.testing.assert_array_equal(again.predict(E.head(50)), top)


def test_history_only_rows_train(data, fitted):
    encoder, E, _ = fitted
    # The encoder pads the target column that X lacks: the rows train on their history.
    history = encoder.transform(data.drop(columns="item"))
    model = SASRecRetriever(**TINY).fit(history)
    assert model.predict(history.head(3)).shape == (3, 10)
    assert 0.0 <= model.score(E) <= 1.0
    with pytest.raises(ValueError, match="target column 'item'"):
        model.score(history)
    # Pre-encoded ids without a target column at all.
    ids = pd.DataFrame(E[HISTORY].to_numpy(), columns=HISTORY)
    plain = SASRecRetriever(sequences={"hist_item": "item"}, **TINY).fit(ids)
    assert plain.target_ is None and plain.predict(ids.head(3)).shape == (3, 10)
    np.testing.assert_array_equal(plain.item_labels_,
                                  np.arange(FIRST_ID, ids.to_numpy().max() + 1))


def test_grid_search_with_score(data):
    model = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}),
                          SASRecRetriever(**{**TINY, "epochs": 1}))
    search = GridSearchCV(model, {"sasrecretriever__n_blocks": [1, 2]}, cv=2, refit=False)
    search.fit(data)
    assert set(search.cv_results_["param_sasrecretriever__n_blocks"]) == {1, 2}
    assert 0.0 <= search.best_score_ <= 1.0


def test_errors_name_the_problem(data, fitted):
    _, E, _ = fitted
    with pytest.raises(ValueError, match="one behaviour sequence, but X has none"):
        SASRecRetriever(**TINY).fit(pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 0.1]}))
    two = SequenceEncoder(sequences={"hist_item": "item", "hist_x": "x"})
    frame = data.assign(**{f"hist_x_{i}": data[f"hist_item_{i}"] for i in range(1, 7)},
                        x=data["item"])
    with pytest.raises(ValueError, match="2 sequences"):
        SASRecRetriever(**TINY).fit(two.fit_transform(frame))
    one = SequenceEncoder(sequences={"hist_item": "item"}).fit_transform(
        data[["hist_item_6"]])
    with pytest.raises(ValueError, match="at least two events"):
        SASRecRetriever(**TINY).fit(one)
    for bad, match in [({"loss": "hinge"}, "'loss'"), ({"n_heads": 3}, "n_heads=3"),
                       ({"dropout": 1.0}, "'dropout'"), ({"n_blocks": 0}, "'n_blocks'"),
                       ({"negative_sampling": "popular"}, "'negative_sampling'")]:
        with pytest.raises(ValueError, match=match):
            SASRecRetriever(**{**TINY, **bad}).fit(E)
    with pytest.raises(TypeError, match="DataFrame"):
        SASRecRetriever(**TINY).fit(E.to_numpy())


def test_exclude_seen_needs_a_catalogue_longer_than_the_history():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.choice(np.array(list("abcde"), dtype=object), size=(60, 6)),
                         columns=[*HISTORY[:5], "item"])
    E = SequenceEncoder(sequences={"hist_item": "item"}).fit_transform(frame)
    model = SASRecRetriever(embedding_dim=4, epochs=1, top_n=3, random_state=0).fit(E)
    with pytest.raises(ValueError, match="exclude_seen"):
        model.predict(E)
    top = model.set_params(exclude_seen=False, top_n=50).predict(E)
    assert top.shape == (60, 5) and all(sorted(row) == list("abcde") for row in top)


# ------------------------------------------------------------- scikit-learn's contract
CHECKED = SASRecRetriever(embedding_dim=4, n_blocks=1, epochs=1, top_n=5, random_state=0)
(test_sklearn_generated_checks, test_tags_describe_encoded_frames,
 test_sklearn_checks_that_need_no_data) = contract_tests(CHECKED)


def test_sklearn_contract_on_encoded_frames():
    X = make_transition_sequences(n_users=40, n_items=20, history_length=4,
                                  events_per_user=2, random_state=1)
    E = SequenceEncoder(sequences={"hist_item": "item"}).fit_transform(X)
    check_encoded_frame_contract(CHECKED, E, ("predict", "transform", "retrieve", "score"))
