import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from sklattn import BSTClassifier, DINClassifier, SequenceEncoder
from sklattn._schema import Schema
from sklattn.datasets import make_interest_sequences
from sklattn.layers import Embedding, PositionEmbedding, TransformerBlock
from sklattn.models.bst import build_bst_graph

SEQS = {"hist_item": "item", "hist_cat": "cat"}
# Width 4 + 4 (item, cat) + 4 (concatenated position) = 12: two heads of 6.
TINY = dict(embedding_dim=4, n_heads=2, hidden_units=(16,), epochs=2, learning_rate=1e-2,
            batch_size=128, dropout=0.0)
ENCODER_HAS_TIMESTAMPS = "timestamps" in SequenceEncoder().get_params()


def _bst(**kw):
    return BSTClassifier(**{**TINY, "random_state": 0, **kw})


@pytest.fixture(scope="module")
def encoded(interest_data):
    X, y, _ = interest_data
    enc = SequenceEncoder(sequences=SEQS, categorical=["user"]).fit(X)
    return enc, enc.transform(X), y


@pytest.fixture(scope="module")
def fitted(encoded):
    _, Xe, y = encoded
    return _bst().fit(Xe, y)


def _valid_counts(Xe):
    return (Xe.filter(like="hist_item_").to_numpy() > 0).sum(1)


def _permute_history(Xe, order):
    """Xe with each row's valid behaviours (item and category together) reordered by
    ``order(n_valid) -> permutation``."""
    out = Xe.copy()
    items = [c for c in Xe.columns if c.startswith("hist_item_")]
    cats = [c for c in Xe.columns if c.startswith("hist_cat_")]
    item_ids, cat_ids = Xe[items].to_numpy().copy(), Xe[cats].to_numpy().copy()
    for i, n in enumerate(_valid_counts(Xe)):
        perm = order(n)
        item_ids[i, -n:] = item_ids[i, -n:][perm]
        cat_ids[i, -n:] = cat_ids[i, -n:][perm]
    out[items], out[cats] = item_ids, cat_ids
    out.attrs = Xe.attrs
    return out


def test_is_a_classifier_with_probabilities(fitted, encoded):
    _, Xe, y = encoded
    assert is_classifier(fitted)
    proba = fitted.predict_proba(Xe)
    assert proba.shape == (len(Xe), 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert roc_auc_score(y, proba[:, 1]) > 0.6
    assert set(fitted.predict(Xe)) <= {0, 1}


def test_padding_never_changes_predictions(fitted, encoded):
    _, Xe, _ = encoded
    Xe = Xe[_valid_counts(Xe) <= 5].head(300)
    before = fitted.predict_proba(Xe)
    # Padding (id 0) shares its table row with nothing real, and the positions before
    # the longest history of these rows hold no behaviour: overwrite both with noise.
    noise = np.random.default_rng(0)
    est = pickle.loads(pickle.dumps(fitted))
    longest = int(_valid_counts(Xe).max())
    steps = len([c for c in Xe.columns if c.startswith("hist_item_")])
    assert longest < steps and len(Xe) > 100
    for layer in est.model_.layers:
        if isinstance(layer, Embedding):
            table = layer.embeddings.numpy()
            table[0] = noise.normal(0, 10, table.shape[1])
            layer.embeddings.assign(table)
        elif isinstance(layer, PositionEmbedding):
            table = layer.embeddings.numpy()
            table[: steps - longest] = noise.normal(0, 10, table[: steps - longest].shape)
            layer.embeddings.assign(table)
    est._make_predict_fn()
    assert (Xe[["item", "cat"]].to_numpy() > 0).all()
    np.testing.assert_allclose(est.predict_proba(Xe), before, rtol=1e-5, atol=1e-6)


def test_predictions_do_not_depend_on_the_batch(fitted, encoded):
    _, Xe, _ = encoded
    Xe = Xe.head(300)
    full = fitted.predict_proba(Xe)[:, 1]
    alone = np.array([fitted.predict_proba(Xe.iloc[[i]])[0, 1] for i in range(0, 300, 37)])
    np.testing.assert_allclose(alone, full[::37], rtol=1e-5)
    shuffled = fitted.predict_proba(Xe.iloc[::-1])[:, 1][::-1]
    np.testing.assert_allclose(shuffled, full, rtol=1e-5)


@pytest.mark.parametrize("position", ["concat", "add", None])
@pytest.mark.parametrize("pooling", ["concat", "target", "mean"])
def test_position_and_pooling_variants(encoded, position, pooling):
    """Every variant trains; with positions, reversing a history changes the output;
    without, self-attention sees a set, and a pooling that ignores the slots' order
    (target, mean) makes the output invariant to permuting the behaviours."""
    _, Xe, y = encoded
    est = _bst(position=position, pooling=pooling, epochs=1).fit(Xe.iloc[:1000], y[:1000])
    rows = Xe[_valid_counts(Xe) >= 3].head(40)
    before = est.decision_function(rows)
    assert np.isfinite(before).all()
    rng = np.random.default_rng(0)
    reversed_ = est.decision_function(_permute_history(rows, lambda n: np.arange(n)[::-1]))
    shuffled = est.decision_function(_permute_history(rows, rng.permutation))
    if position is None and pooling != "concat":
        np.testing.assert_allclose(reversed_, before, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(shuffled, before, rtol=1e-4, atol=1e-5)
    else:
        assert np.abs(reversed_ - before).max() > 1e-4
    width = 12 if position == "concat" else 8
    blocks = [layer for layer in est.model_.layers if isinstance(layer, TransformerBlock)]
    assert [b.dim for b in blocks] == [width]
    assert any(isinstance(layer, PositionEmbedding) for layer in est.model_.layers) == (
        position is not None
    )


def test_attention_weights_frame(fitted, encoded):
    _, Xe, _ = encoded
    head = Xe.head(5)
    w = fitted.attention_weights(head)
    assert list(w.columns) == ["row", "sequence", "position", "item", "weight"]
    assert len(w) == int(_valid_counts(head).sum()) and (w["item"] > 0).all()
    assert set(w["sequence"]) == {"hist_item"}
    # Softmax weights of the candidate's query: the behaviours' share is below 1 (the
    # rest is the candidate's weight on itself) and above 0.
    totals = w.groupby("row")["weight"].sum()
    assert ((totals > 0) & (totals < 1)).all() and (w["weight"] >= 0).all()
    other = head.assign(item=head["item"].iloc[::-1].to_numpy())
    assert not np.allclose(fitted.attention_weights(other)["weight"], w["weight"])


def test_several_blocks_and_heads(encoded):
    _, Xe, y = encoded
    est = _bst(n_blocks=2, n_heads=4, epochs=1).fit(Xe, y)
    blocks = [layer for layer in est.model_.layers if isinstance(layer, TransformerBlock)]
    assert [(b.n_heads, b.activation) for b in blocks] == [(4, "leaky_relu")] * 2
    assert np.isfinite(est.attention_weights(Xe.head(3))["weight"]).all()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_last_only_is_the_last_row_of_the_full_block(causal, norm_first):
    """BST's "target" pooling computes only the candidate's row of the last block."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 8)).astype("float32")
    valid = np.ones((4, 6), bool)
    valid[0, :3] = False
    block = TransformerBlock(n_heads=2, causal=causal, norm_first=norm_first, dropout=0.0)
    full, w_full = block(x, valid, return_attention=True)
    last, w_last = block(x, valid, return_attention=True, last_only=True)
    assert tuple(last.shape) == (4, 1, 8) and tuple(w_last.shape) == (4, 2, 1, 6)
    np.testing.assert_allclose(np.asarray(last), np.asarray(full)[:, -1:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(w_last), np.asarray(w_full)[:, :, -1:], rtol=1e-5,
                               atol=1e-7)


def _gap_schema(steps: int = 5) -> Schema:
    items = [f"hist_item_{t}" for t in range(1, steps + 1)]
    gaps = [f"hist_item_gap_{t}" for t in range(1, steps + 1)]
    return Schema(
        sequences={"hist_item": (items, "item"), "hist_item_gap": (gaps, "time_gap")},
        categorical={"item": "item", "time_gap": "time_gap", "user": "user"},
        vocabulary_sizes={"item": 30, "time_gap": 12, "user": 6},
        time_gaps={"hist_item_gap": "hist_item"},
    )


@pytest.mark.skipif(not hasattr(Schema(), "time_gaps"), reason="Schema has no time_gaps yet")
def test_time_gaps_are_the_position_not_a_feature():
    schema = _gap_schema()
    graph = build_bst_graph(schema, embedding_dim=4, n_heads=2, dropout=0.0)
    layers = graph.model.layers
    assert not any(isinstance(layer, PositionEmbedding) for layer in layers)
    assert any(layer.name == "time_gap_position_hist_item" for layer in layers)
    # Width = the item (4) + its position (4): the gap is no behaviour feature.
    assert [b.dim for b in layers if isinstance(b, TransformerBlock)] == [8]
    rng = np.random.default_rng(0)
    n = 16
    ids = np.zeros((n, len(schema.int_columns)), np.int32)
    col = {c: i for i, c in enumerate(schema.int_columns)}
    items = [col[c] for c in schema.sequences["hist_item"][0]]
    gaps = [col[c] for c in schema.sequences["hist_item_gap"][0]]
    ids[:, items[2:]] = rng.integers(2, 30, (n, 3))  # 3 behaviours, 2 padded steps
    ids[:, gaps[2:]] = rng.integers(3, 12, (n, 3))
    ids[:, col["item"]] = rng.integers(2, 30, n)
    ids[:, col["time_gap"]] = 2  # the zero-gap bucket
    ids[:, col["user"]] = rng.integers(2, 6, n)
    out = np.asarray(graph.model([ids], training=False))
    other = ids.copy()
    other[:, gaps[2:]] = rng.integers(3, 12, (n, 3))  # only the gaps change
    assert np.abs(np.asarray(graph.model([other], training=False)) - out).max() > 1e-6
    # A gap where there is no behaviour is padding, whatever it holds.
    garbage = ids.copy()
    garbage[:, gaps[:2]] = rng.integers(3, 12, (n, 2))
    np.testing.assert_allclose(np.asarray(graph.model([garbage], training=False)), out,
                               rtol=1e-6, atol=1e-7)
    # Without positions the gaps are not used at all.
    graph_none = build_bst_graph(schema, embedding_dim=4, n_heads=2, position=None)
    assert not [layer for layer in graph_none.model.layers if "position" in layer.name]
    np.testing.assert_array_equal(np.asarray(graph_none.model([other], training=False)),
                                  np.asarray(graph_none.model([ids], training=False)))


@pytest.mark.skipif(not ENCODER_HAS_TIMESTAMPS, reason="SequenceEncoder has no timestamps yet")
def test_time_gaps_through_the_encoder():
    X, y = make_interest_sequences(3000, maxlen=8, time_decay=86400.0, random_state=0)
    encoder = SequenceEncoder(sequences=SEQS, timestamps={"hist_item": ("hist_time", "time")})
    model = make_pipeline(encoder, _bst(epochs=1)).fit(X, y)
    schema = model[-1].schema_
    assert schema.time_gaps
    layers = model[-1].model_.layers
    assert not any(isinstance(layer, PositionEmbedding) for layer in layers)
    assert [b.dim for b in layers if isinstance(b, TransformerBlock)] == [12]
    Xe = model[0].transform(X.head(50))
    before = model[-1].decision_function(Xe)
    gap = next(iter(schema.time_gaps))
    cols = schema.sequences[gap][0]
    shifted = Xe.copy()
    values = shifted[cols].to_numpy()
    shifted[cols] = np.where(values > 1, np.maximum(values - 3, 2), values)
    shifted.attrs = Xe.attrs
    assert np.abs(model[-1].decision_function(shifted) - before).max() > 1e-5


def test_bst_beats_din_when_recency_matters():
    """Clicks follow the most recent behaviours (recency_decay=0.5): DIN's attention sees
    a set and cannot tell recent from old; BST's positions can. Test AUC with these
    settings, data and model seeds 0 / 1 / 2: BST 0.813 / 0.810 / 0.829, DIN 0.692 /
    0.717 / 0.717, optimum 0.907 / 0.898 / 0.902."""
    X, y, p = make_interest_sequences(
        20000, maxlen=10, recency_decay=0.5, return_proba=True, random_state=0
    )
    train, test = slice(0, 15000), slice(15000, None)
    settings = dict(embedding_dim=8, hidden_units=(32,), epochs=3, learning_rate=3e-3,
                    batch_size=128, activation="relu", random_state=0)
    aucs = {}
    for est in (BSTClassifier(dropout=0.0, **settings),
                DINClassifier(attention_units=(16,), **settings)):
        model = make_pipeline(SequenceEncoder(sequences=SEQS, categorical=[]), est)
        model.fit(X[train].drop(columns="user"), y[train])
        proba = model.predict_proba(X[test].drop(columns="user"))[:, 1]
        aucs[type(est).__name__] = roc_auc_score(y[test], proba)
    optimum = roc_auc_score(y[test], p[test])
    assert aucs["BSTClassifier"] > aucs["DINClassifier"] + 0.05, aucs
    assert aucs["BSTClassifier"] <= optimum + 0.01


def test_grid_search_in_a_pipeline(interest_data):
    X, y, _ = interest_data
    X, y = X.iloc[:1000], y[:1000]
    pipe = make_pipeline(SequenceEncoder(sequences=SEQS), _bst(epochs=1))
    search = GridSearchCV(
        pipe, {"bstclassifier__pooling": ["concat", "target"]}, cv=StratifiedKFold(2),
        scoring="roc_auc",
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.predict_proba(X.head(3)).shape == (3, 2)


def test_same_seed_same_predictions_and_pickle(encoded, fitted, tmp_path):
    _, Xe, y = encoded
    pa = fitted.predict_proba(Xe)
    np.testing.assert_array_equal(_bst().fit(Xe, y).predict_proba(Xe), pa)
    assert not np.allclose(_bst(random_state=1).fit(Xe, y).predict_proba(Xe), pa)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict_proba(Xe), pa)
    joblib.dump(fitted, tmp_path / "bst.joblib")
    loaded = joblib.load(tmp_path / "bst.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(Xe), pa)
    pd.testing.assert_frame_equal(loaded.attention_weights(Xe.head(4)),
                                  fitted.attention_weights(Xe.head(4)))
    assert clone(fitted).get_params() == fitted.get_params()
    assert not hasattr(clone(fitted), "model_")


def test_life_cycle_options(encoded):
    """Early stopping, warm start, partial_fit and XLA work as for every model."""
    _, Xe, y = encoded
    est = _bst(epochs=20, validation_fraction=0.2, n_iter_no_change=1, learning_rate=0.05)
    est.fit(Xe, y)
    assert "val_loss" in est.history_ and est.n_iter_ < 20
    warm = _bst(epochs=1, warm_start=True).fit(Xe, y)
    first, model = warm.predict_proba(Xe), warm.model_
    warm.fit(Xe, y)
    assert warm.model_ is model and warm.n_iter_ == 2
    assert not np.allclose(first, warm.predict_proba(Xe))
    pf = _bst()
    pf.partial_fit(Xe[:1000], y[:1000], classes=[0, 1])
    pf.partial_fit(Xe[1000:], y[1000:])
    assert pf.n_iter_ == 2 and np.isfinite(pf.predict_proba(Xe)).all()
    xla = _bst(epochs=1, jit_compile=True).fit(Xe.iloc[:512], y[:512])
    assert xla.model_.jit_compile and np.isfinite(xla.predict_proba(Xe.head(5))).all()
    assert not _bst()._use_xla(10**7)  # "auto": XLA trains BST slower on a CPU


def test_errors_name_the_parameter_or_column(encoded, fitted, interest_data):
    enc, Xe, y = encoded
    X, _, _ = interest_data
    with pytest.raises(ValueError, match="pooling"):
        _bst(pooling="max").fit(Xe, y)
    with pytest.raises(ValueError, match="position"):
        _bst(position="sinusoid").fit(Xe, y)
    with pytest.raises(ValueError, match="n_blocks"):
        _bst(n_blocks=0).fit(Xe, y)
    odd = _bst(n_heads=5)
    with pytest.raises(ValueError, match=r"width 12 .*embedding_dim=4.*n_heads=5"):
        odd.fit(Xe, y)
    assert not hasattr(odd, "schema_")  # raised before anything was fitted
    # Integer ids named by hand, without the candidate columns: nothing to append.
    ids = pd.DataFrame(Xe.drop(columns=["item", "cat"]).to_numpy(),
                       columns=Xe.columns.drop(["item", "cat"])).astype({"user": int})
    with pytest.raises(ValueError, match="candidate column.*'hist_item' needs column 'item'"):
        _bst(sequences=SEQS, categorical=["user"]).fit(ids, y)
    # Through the encoder, the missing candidates are named as for DIN.
    no_candidate = SequenceEncoder(sequences=SEQS).fit_transform(X.drop(columns=["item", "cat"]))
    with pytest.raises(ValueError, match=r"candidate columns \['item', 'cat'\] are missing"):
        _bst().fit(no_candidate, y)
    pipe = make_pipeline(SequenceEncoder(sequences=SEQS), _bst(epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match="candidate columns \\['item'\\]"):
        pipe.predict(X.drop(columns=["item"]))
    with pytest.raises(ValueError, match="hist_item_3"):
        fitted.predict(Xe.drop(columns=["hist_item_3"]))
    with pytest.raises(ValueError, match="user_activity"):
        fitted.predict(Xe.assign(user_activity=np.nan))
    with pytest.raises(ValueError, match="not numeric"):
        _bst().fit(X, y)  # raw strings without an encoder


def test_pre_encoded_frame_and_numeric_only_input(encoded):
    _, Xe, y = encoded
    raw = pd.DataFrame(Xe.to_numpy(), columns=Xe.columns)  # no schema attached
    raw[Xe.columns[:-1]] = raw[Xe.columns[:-1]].astype(int)
    est = _bst(sequences=SEQS, categorical=["user"], epochs=1).fit(raw, y)
    assert np.isfinite(est.predict_proba(raw.head(3).assign(item=10**6))).all()
    # No sequence at all: the MLP alone (scikit-learn's checks feed such data).
    numeric = _bst(epochs=1).fit(Xe[["user_activity"]].to_numpy(), y)
    assert numeric.predict_proba(Xe[["user_activity"]].to_numpy()[:3]).shape == (3, 2)
