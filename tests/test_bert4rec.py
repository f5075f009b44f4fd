import copy
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from retriever_contract import check_encoded_frame_contract, contract_tests
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sklattn import BERT4RecRetriever, SequenceEncoder
from sklattn._backend import keras
from sklattn._schema import FIRST_ID
from sklattn.datasets import make_transition_sequences
from sklattn.layers import ClozeMask, MaskToken
from sklattn.metrics import hit_rate_at_k

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
    return encoder, E, BERT4RecRetriever(**TINY).fit(E)


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _ids(batch=400, steps=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(FIRST_ID, 50, size=(batch, steps))
    lengths = rng.integers(0, steps + 1, size=batch)
    ids[np.arange(steps)[None, :] < (steps - lengths)[:, None]] = 0  # left padding
    ids[rng.random((batch, steps)) < 0.05] = 1  # a few unseen items
    return ids.astype("int32")


# ----------------------------------------------------------------------------- layers
def test_cloze_mask_hides_only_items_and_exactly_the_paper_count():
    ids = _ids()
    items = ids >= FIRST_ID
    n = items.sum(1)
    hidden = _np(ClozeMask(0.3, last_item_share=0.0, seed=0)(ids, training=True))
    assert not hidden[~items].any()  # never padding, never the unseen id
    np.testing.assert_array_equal(hidden.sum(1), np.minimum(np.maximum(
        1, np.floor(0.3 * n + 0.5)), n))
    # Every item is hidden about equally often over many draws.
    layer = ClozeMask(0.3, last_item_share=0.0, seed=1)
    counts = sum(_np(layer(ids, training=True)).astype(int) for _ in range(30))
    full = items.all(1)
    share = counts[full].sum(0) / (30 * full.sum())
    assert np.all(np.abs(share - np.floor(0.3 * 12 + 0.5) / 12) < 0.1), share


def test_cloze_mask_hides_only_the_newest_item_in_fine_tuning_rows():
    ids = _ids()
    hidden = _np(ClozeMask(0.3, last_item_share=1.0, seed=0)(ids, training=True))
    newest = np.zeros_like(hidden)
    for r, row in enumerate(ids):
        real = np.flatnonzero(row >= FIRST_ID)
        if len(real):
            newest[r, real[-1]] = True
    np.testing.assert_array_equal(hidden, newest)
    mixed = _np(ClozeMask(0.5, seed=0)(ids, training=True))
    only_newest = (mixed == newest).all(1) & (mixed.sum(1) == 1)
    several = (ids >= FIRST_ID).sum(1) >= 4  # rows whose Cloze draw hides 2 or more
    assert 0.03 < only_newest[several].mean() < 0.16  # 1/11 of the rows


def test_cloze_mask_is_reproducible_with_its_seed():
    ids = _ids()
    a, b, c = (ClozeMask(0.2, seed=s) for s in (7, 7, 8))
    first = [_np(a(ids, training=True)) for _ in range(3)]
    np.testing.assert_array_equal(np.stack(first), np.stack([_np(b(ids, training=True))
                                                             for _ in range(3)]))
    assert not np.array_equal(first[0], first[1])  # a new draw at every step
    assert not np.array_equal(first[0], _np(c(ids, training=True)))
    # Inference draws are fixed: a validation loss is the same every time.
    np.testing.assert_array_equal(_np(a(ids)), _np(c(ids)))


def test_last_item_share_reaches_the_cloze_task(fitted):
    _, E, model = fitted
    assert model._layers["cloze_mask"].last_item_share == 0.5
    every = BERT4RecRetriever(**{**TINY, "epochs": 1, "last_item_share": 1.0}).fit(E)
    assert every._layers["cloze_mask"].last_item_share == 1.0
    with pytest.raises(ValueError, match="last_item_share"):
        BERT4RecRetriever(last_item_share=1.5).fit(E)


def test_mask_token_replaces_hidden_positions():
    vectors = np.arange(24, dtype="float32").reshape(2, 3, 4)
    hidden = np.array([[0, 1, 0], [1, 0, 1]], bool)
    layer = MaskToken()
    out = _np(layer(vectors, hidden))
    np.testing.assert_array_equal(out[~hidden], vectors[~hidden])
    np.testing.assert_array_equal(out[hidden], np.tile(_np(layer.token), (3, 1)))


# ---------------------------------------------------------------- defining properties
def test_masking_never_hides_padding_and_follows_random_state(fitted):
    _, E, model = fitted
    sequence, hidden = model._hidden_positions(E)
    assert sequence.shape == (len(E), 7) and hidden.any(axis=1).all()
    assert not hidden[sequence < FIRST_ID].any()
    np.testing.assert_array_equal(sequence[:, :6], E[HISTORY].to_numpy())
    np.testing.assert_array_equal(sequence[:, 6], E["item"].to_numpy())
    # The training draws follow random_state: the same seed trains the same model,
    # another seed another one.
    again = clone(model).fit(E)
    np.testing.assert_allclose(again.transform(E.head(20)), model.transform(E.head(20)),
                               atol=1e-6)
    other = clone(model).set_params(random_state=1).fit(E)
    assert not np.allclose(other.transform(E.head(20)), model.transform(E.head(20)))


def test_the_user_vector_is_the_output_at_the_appended_mask(fitted):
    _, E, model = fitted
    rows = E.head(20)
    outputs = model._position_outputs(rows)
    assert outputs.shape == (20, 7, 8)
    np.testing.assert_allclose(model.transform(rows), outputs[:, -1], atol=1e-6)
    # Bidirectional: an early position's output depends on later items.
    changed = rows.copy()
    changed["hist_item_6"] = (changed["hist_item_6"] + 5) % 38 + FIRST_ID
    after = model._position_outputs(changed)
    full = (rows["hist_item_1"] != 0).to_numpy()
    assert not np.allclose(after[full, 0], outputs[full, 0], atol=1e-4)


def test_padding_never_changes_an_output(fitted):
    _, E, model = fitted
    short = E[E["hist_item_1"] == 0].head(10)
    assert len(short)
    vectors, top = model.transform(short), model.predict(short)
    noisy = short.copy()
    noisy["item"] = 1  # the target is never read at serving
    np.testing.assert_array_equal(model.transform(noisy), vectors)
    huge = copy.deepcopy(model)
    weights = _np(huge._tables["item"].embeddings).copy()
    weights[0] = 1e4  # the padding id's row
    huge._tables["item"].embeddings.assign(weights)
    np.testing.assert_allclose(huge.transform(short), vectors, atol=1e-5)
    np.testing.assert_array_equal(huge.predict(short), top)
    empty = short.copy()
    empty[HISTORY] = 0  # an empty history still has the [mask]: popularity-like scores
    assert np.isfinite(model.retrieve(empty)[1]).all()


def test_the_output_layer_is_the_item_table(fitted):
    _, E, model = fitted
    table = model._tables["item"]
    n_ids, dim = table.input_dim, table.output_dim
    shaped = [w for w in model.model_.trainable_weights if tuple(w.shape) == (n_ids, dim)]
    assert len(shaped) == 1 and shaped[0] is table.embeddings
    np.testing.assert_array_equal(model.item_embeddings_, _np(table.embeddings)[FIRST_ID:])
    # The [mask] vector is not a catalogue item.
    assert model._layers["mask_token"].token.shape == (dim,)
    tied = copy.deepcopy(model)
    weights = _np(tied._tables["item"].embeddings).copy()
    weights[FIRST_ID:] = 0.0
    tied._tables["item"].embeddings.assign(weights)
    ids = E[tied.schema_.int_columns].to_numpy("int32")[:20]
    loss = _np(tied.model_([ids], training=False))
    _, hidden = tied._hidden_positions(E.head(20))
    # Each hidden item costs log(n_items); the loss divides by the 1 scored position
    # per row (round(0.2 * 7) = 1).
    np.testing.assert_allclose(loss, hidden.sum(1) * np.log(n_ids - FIRST_ID), rtol=1e-5)


@pytest.fixture(scope="module")
def transitions():
    X = make_transition_sequences(n_users=600, n_items=100, history_length=8,
                                  events_per_user=3, noise=0.1, random_state=0)
    X = X.drop(columns="user_id")
    train, test = X[X.index % 3 != 2], X[X.index % 3 == 2]
    encoder = SequenceEncoder(sequences={"hist_item": "item"})
    return encoder.fit_transform(train), encoder.transform(test)


@pytest.mark.parametrize("loss", ["softmax", "sampled", "bce"])
def test_every_loss_trains_and_beats_popularity(transitions, loss):
    train, test = transitions
    model = BERT4RecRetriever(embedding_dim=16, n_blocks=1, epochs=6, learning_rate=5e-3,
                              batch_size=64, loss=loss, n_negatives=20, top_n=10,
                              random_state=0).fit(train)
    losses = model.history_["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.97 * losses[0], losses
    counts = np.bincount(train["item"], minlength=102)[FIRST_ID:]
    popular = np.argsort(-counts)[:10] + FIRST_ID
    popularity = hit_rate_at_k(test["item"].to_numpy(), np.tile(popular, (len(test), 1)))
    # A top 10 of 100 equally popular items hits 0.10 and the transition 0.91. The [mask]
    # position must learn to attend before any item reaches it, which the sampled losses'
    # few negatives make slow: after 6 epochs HR@10 was 0.81 (softmax), 0.37 (bce) and
    # 0.23 (sampled, 20 negatives).
    margin = 0.5 if loss == "softmax" else 0.08
    assert model.score(test) > popularity + margin, (model.score(test), popularity)


# ----------------------------------------------------------------------- estimator
def test_pipeline_fit_predict_and_score(data, fitted):
    encoder, E, model = fitted
    assert model.item_embeddings_.shape == (len(model.item_labels_), 8)
    top, scores = model.retrieve(E.head(40))
    assert top.shape == (40, 10) and top.dtype == np.int64
    assert np.all(np.diff(scores, axis=1) <= 0)
    seen = data.head(40)[HISTORY].to_numpy()
    for row, row_seen in zip(top, seen, strict=True):
        assert len(set(row)) == 10 and not set(row) & set(row_seen[~pd.isna(row_seen)])
    assert model.transform(E.head(3)).shape == (3, 8)
    assert model.get_feature_names_out()[0] == "bert4recretriever0"
    truth = encoder.decode(E["item"].to_numpy(), "item")
    assert model.score(E) == hit_rate_at_k(truth, model.predict(E))
    raw = data.drop(columns=["item"]).head(5)
    np.testing.assert_array_equal(model.predict(encoder.transform(raw)), top[:5])
    with pytest.raises(NotFittedError):
        BERT4RecRetriever().predict(E)


def test_predictions_do_not_depend_on_the_batch(fitted):
    _, E, model = fitted
    together, top = model.transform(E.head(30)), model.predict(E.head(30))
    alone = np.vstack([model.transform(E.iloc[[i]]) for i in (0, 7, 29)])
    np.testing.assert_allclose(alone, together[[0, 7, 29]], atol=1e-5)
    np.testing.assert_array_equal(model.predict(E.head(30).iloc[::-1]), top[::-1])


def test_pickle_and_joblib_round_trip(fitted, tmp_path):
    _, E, model = fitted
    top = model.predict(E.head(50))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(E.head(50)), top)
    joblib.dump(model, tmp_path / "bert4rec.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "bert4rec.joblib").predict(E.head(50)), top)


def test_history_only_rows_train(data, fitted):
    encoder, E, _ = fitted
    history = encoder.transform(data.drop(columns="item"))
    model = BERT4RecRetriever(**TINY).fit(history)
    assert model.predict(history.head(3)).shape == (3, 10)
    sequence, hidden = model._hidden_positions(history)
    np.testing.assert_array_equal(sequence[:, 1:], history[HISTORY].to_numpy())
    assert (sequence[:, 0] == 0).all() and not hidden[:, 0].any()


def test_grid_search_with_score(data):
    model = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}),
                          BERT4RecRetriever(**{**TINY, "epochs": 1}))
    search = GridSearchCV(model, {"bert4recretriever__mask_prob": [0.2, 0.5]}, cv=2,
                          refit=False)
    search.fit(data)
    assert 0.0 <= search.best_score_ <= 1.0


def test_errors_name_the_problem(data, fitted):
    _, E, _ = fitted
    for bad, match in [({"mask_prob": 0.0}, "'mask_prob'"), ({"mask_prob": 1.5}, "'mask_prob'"),
                       ({"loss": "hinge"}, "'loss'"), ({"n_heads": 3}, "n_heads=3")]:
        with pytest.raises(ValueError, match=match):
            BERT4RecRetriever(**{**TINY, **bad}).fit(E)
    two = SequenceEncoder(sequences={"hist_item": "item", "hist_x": "x"})
    frame = data.assign(**{f"hist_x_{i}": data[f"hist_item_{i}"] for i in range(1, 7)},
                        x=data["item"])
    with pytest.raises(ValueError, match="2 sequences"):
        BERT4RecRetriever(**TINY).fit(two.fit_transform(frame))
    with pytest.raises(TypeError, match="DataFrame"):
        BERT4RecRetriever(**TINY).fit(E.to_numpy())
    with pytest.raises(ValueError, match="ClozeMask|mask_prob"):
        ClozeMask(0.0)


# ------------------------------------------------------------- scikit-learn's contract
CHECKED = BERT4RecRetriever(embedding_dim=4, n_blocks=1, epochs=1, top_n=5, random_state=0)
(test_sklearn_generated_checks, test_tags_describe_encoded_frames,
 test_sklearn_checks_that_need_no_data) = contract_tests(CHECKED)


def test_sklearn_contract_on_encoded_frames():
    X = make_transition_sequences(n_users=40, n_items=20, history_length=4,
                                  events_per_user=2, random_state=1)
    E = SequenceEncoder(sequences={"hist_item": "item"}).fit_transform(X)
    check_encoded_frame_contract(CHECKED, E, ("predict", "transform", "retrieve", "score"))
