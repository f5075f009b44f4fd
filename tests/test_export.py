"""sklattn.export: a fitted Pipeline's SavedModel serves raw rows as the Pipeline does.

Every artefact is loaded in one fresh Python process that refuses to import sklattn,
and its signatures are called on raw rows that hold unseen ids, empty histories and
NaN numbers: the probabilities must equal ``predict_proba``'s to 1e-6.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklattn import (
    AFMClassifier,
    BERT4RecRetriever,
    BSTClassifier,
    DIENClassifier,
    DINClassifier,
    MINDRetriever,
    NFMClassifier,
    PRMReranker,
    SASRecRetriever,
    SequenceEncoder,
    SumPoolingClassifier,
    export,
    serving_inputs,
)
from sklattn.datasets import make_interest_sequences

SMALL = dict(epochs=1, batch_size=64, random_state=0)
RANKERS = {
    "din": lambda: DINClassifier(attention_units=(8,), hidden_units=(8,), **SMALL),
    "base": lambda: SumPoolingClassifier(hidden_units=(8,), **SMALL),
    "dien": lambda: DIENClassifier(hidden_units=(8,), **SMALL),
    "bst": lambda: BSTClassifier(hidden_units=(8,), **SMALL),
    "afm": lambda: AFMClassifier(**SMALL),
    "nfm": lambda: NFMClassifier(hidden_units=(8,), **SMALL),
}

ENCODER = dict(sequences={"hist_item": "item", "hist_cat": "cat"}, categorical=["user"])

#: Loads every artefact without sklattn and calls its signatures on saved inputs.
LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "sklattn":
                raise ImportError("this process must not import sklattn")

    sys.meta_path.insert(0, Refuse())
    import tensorflow as tf

    for folder, inputs, outputs, signatures in json.loads(sys.argv[1]):
        loaded = tf.saved_model.load(folder)
        data = {k: tf.constant(v) for k, v in np.load(inputs).items()}
        found = {}
        for name in signatures:
            for key, value in loaded.signatures[name](**data).items():
                value = value.numpy()
                if value.dtype == object:  # text comes back as bytes
                    value = np.array([v.decode() for v in value.ravel()]).reshape(value.shape)
                found[name + "/" + key] = value
        np.savez(outputs, **found)
    print("sklattn" in sys.modules)
""")


def _raw_rows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_interest_sequences(n, maxlen=5, n_items=60, n_categories=8, random_state=seed)
    X["item"] = "i" + X["item"].astype(str)  # string ids next to integer ones
    hist = [c for c in X.columns if c.startswith("hist_item_")]
    X[hist] = X[hist].apply(lambda s: ("i" + s.astype("string")).astype(object))
    X.loc[X.index[::7], "user_activity"] = np.nan
    return X, y


def _hard_rows(X: pd.DataFrame) -> pd.DataFrame:
    """Rows a server meets: unseen ids, empty histories, NaN numbers, unseen users."""
    rows = X.head(60).copy()
    hist = [c for c in X.columns if c.startswith("hist_")]
    rows.loc[rows.index[0], hist] = None  # an empty history
    rows.loc[rows.index[1], "item"] = "never-seen"
    rows.loc[rows.index[2], "cat"] = "zzz"
    # A gap in one sequence of a full history: the encoder keeps the position (the other
    # sequence has an event there), so item and category stay aligned.
    full = rows.index[rows[hist].notna().all(axis=1)][0]
    rows.loc[full, ["hist_item_1", "hist_item_3"]] = ["i99999", None]
    # Holes in every sequence: the encoder moves the events right, in order.
    full = rows.index[rows[hist].notna().all(axis=1)]
    rows.loc[full[1], ["hist_item_2", "hist_cat_2"]] = None
    rows.loc[full[2], ["hist_item_4", "hist_item_5", "hist_cat_4", "hist_cat_5"]] = None
    rows.loc[rows.index[4:8], "user_activity"] = np.nan
    rows.loc[rows.index[8], "user"] = 10**9
    return rows


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Every case exported, then served by one fresh process: name -> (expected, found)."""
    root = tmp_path_factory.mktemp("export")
    X, y = _raw_rows(600, 0)
    rows = _hard_rows(X)
    encoder = ENCODER
    cases = {}
    for name, make in RANKERS.items():
        pipe = make_pipeline(SequenceEncoder(**encoder), make()).fit(X, y)
        cases[name] = (pipe, rows, pipe.predict_proba(rows)[:, 1], ["serving_default"])

    # The encoder's other paths: list-valued histories read most recent first, a maxlen
    # that truncates, a rare value, a hashed vocabulary, NaN filled with the mean.
    L = X.copy()
    for seq in ("hist_item", "hist_cat"):
        cols = [f"{seq}_{i}" for i in range(1, 6)]
        L[seq] = [[v for v in row if isinstance(v, str)][::-1] for row in L[cols].to_numpy()]
        L = L.drop(columns=cols)
    L.at[L.index[-1], "hist_item"] = ["i_rare"]  # seen once: below min_frequency
    listed = make_pipeline(
        SequenceEncoder(**encoder, most_recent="first", maxlen=3, min_frequency=3,
                        hash_buckets={"cat": 13}, scale_numeric=False),
        DINClassifier(attention_units=(8,), hidden_units=(8,), **SMALL),
    ).fit(L, y)
    list_rows = L.head(24).copy()
    list_rows.at[list_rows.index[0], "hist_item"] = []
    list_rows.at[list_rows.index[0], "hist_cat"] = []
    list_rows.at[list_rows.index[1], "hist_item"] = ["i3", "never-seen", "i5", "i1"]
    list_rows.at[list_rows.index[6], "hist_item"] = ["i3", None, "i_rare", "i5"]
    list_rows.at[list_rows.index[6], "hist_cat"] = ["c01", None, "c02", "c03"]
    list_rows.loc[list_rows.index[2:5], "user_activity"] = np.nan
    list_rows.loc[list_rows.index[5], "cat"] = "zzz"
    cases["lists"] = (listed, list_rows, listed.predict_proba(list_rows)[:, 1],
                      ["serving_default"])

    # A model fitted on encoded columns, exported alone.
    pipe = cases["din"][0]
    encoded = pipe[0].transform(rows)
    cases["encoded"] = (pipe[-1], encoded, pipe[-1].predict_proba(encoded)[:, 1],
                        ["serving_default"])

    # Retrievers: user vectors and the exact top-N.
    R, _ = _raw_rows(800, 1)
    retrieval = dict(sequences={"hist_item": "item"}, categorical=["user"])
    R = R.drop(columns=[c for c in R.columns if c.startswith("hist_cat")] + ["cat"])
    for name, model in {
        "mind": MINDRetriever(embedding_dim=8, epochs=1, index="faiss", top_n=7,
                              random_state=0),
        "sasrec": SASRecRetriever(embedding_dim=8, epochs=1, top_n=7, random_state=0),
        "bert4rec": BERT4RecRetriever(embedding_dim=8, epochs=1, top_n=7, random_state=0),
    }.items():
        pipe = make_pipeline(SequenceEncoder(**retrieval), model).fit(R)
        cases[name] = (pipe, R.head(20).drop(columns=["item"]), None,
                       ["serving_default", "top_n"])

    jobs, out = [], {}
    for name, (model, raw, _, signatures) in cases.items():
        folder = export(model, root / name)
        np.savez(root / f"{name}-in.npz", **serving_inputs(model, raw))
        jobs.append([str(folder), str(root / f"{name}-in.npz"), str(root / f"{name}-out.npz"),
                     signatures])
    done = subprocess.run([sys.executable, "-c", LOADER, json.dumps(jobs)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"  # sklattn never imported
    for name, (model, raw, expected, _) in cases.items():
        out[name] = (model, raw, expected, dict(np.load(root / f"{name}-out.npz")), root / name)
    return out


@pytest.mark.parametrize("name", [*RANKERS, "lists", "encoded"])
def test_exported_ranker_serves_the_pipelines_probabilities(served, name):
    _, _, expected, found, _ = served[name]
    np.testing.assert_allclose(found["serving_default/probability"], expected, rtol=0, atol=1e-6)
    assert found["serving_default/probability"].dtype == np.float64


def test_exported_ranker_describes_its_inputs(served):
    pipe, rows, _, _, folder = served["din"]
    meta = json.loads((folder / "sklattn_export.json").read_text())
    inputs = meta["signatures"]["serving_default"]["inputs"]
    assert set(inputs) == set(serving_inputs(pipe, rows))
    assert "hist_item_1" in inputs and "item" in inputs and "user_activity" in inputs
    assert inputs["item"]["dtype"] == "string" and inputs["user_activity"]["dtype"] == "float64"
    assert meta["classes"] == [0, 1] and meta["model"] == "DINClassifier"


@pytest.mark.parametrize("name", ["mind", "sasrec", "bert4rec"])
def test_exported_retriever_serves_user_vectors_and_top_n(served, name):
    pipe, raw, _, found, folder = served[name]
    model = pipe[-1]
    encoded = pipe[0].transform(raw)
    vectors, mask = model._encode(encoded)
    np.testing.assert_allclose(found["serving_default/user_vectors"], vectors, atol=1e-5)
    np.testing.assert_array_equal(found["serving_default/mask"], mask)
    # The exact top-N of the artefact is brute force's.
    index = model.index
    try:
        items, scores = model.set_params(index="brute").retrieve(encoded)
    finally:
        model.set_params(index=index)
    np.testing.assert_array_equal(found["top_n/items"], items.astype(found["top_n/items"].dtype))
    np.testing.assert_allclose(found["top_n/scores"], scores, atol=1e-5)
    labels = json.loads((folder / "items" / "labels.json").read_text())
    assert labels == model.item_labels_.tolist()
    np.testing.assert_array_equal(np.load(folder / "items" / "embeddings.npy"),
                                  model.item_embeddings_)


def test_mind_export_writes_its_faiss_index(served):
    faiss = pytest.importorskip("faiss")
    pipe, _, _, _, folder = served["mind"]
    index = faiss.read_index(str(folder / "items" / "index.faiss"))
    assert index.ntotal == len(pipe[-1].item_labels_)


def test_exported_numbers_fail_loudly_where_transform_raises(tmp_path):
    from sklattn._backend import tf

    X, y = _raw_rows(300, 4)
    X["user_activity"] = X["user_activity"].fillna(0.0)
    pipe = make_pipeline(SequenceEncoder(**ENCODER, numeric_nan="error"),
                         DINClassifier(**SMALL)).fit(X, y)
    serve = tf.saved_model.load(str(export(pipe, tmp_path / "m"))).signatures["serving_default"]
    rows = X.head(3).copy()
    inputs = serving_inputs(pipe, rows)
    assert serve(**{k: tf.constant(v) for k, v in inputs.items()})["probability"].shape == (3,)
    for bad, message in ((np.nan, "NaN in numeric columns"), (np.inf, "Infinite values")):
        inputs["user_activity"] = np.array([0.5, bad, 1.0])
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"{message}.*user_activity"):
            serve(**{k: tf.constant(v) for k, v in inputs.items()})


def test_serving_hash_matches_the_encoder():
    from sklattn._backend import tf
    from sklattn._export import _siphash_ids

    # tests/test_hashing.py pins these two ids of the encoder (1,000 buckets).
    ids = _siphash_ids(tf.constant(["item-1", "349", ""]), 1000).numpy()
    assert ids.tolist() == [831, 756, 0]
    values = np.array([f"v{i}" for i in range(500)] + [str(i) for i in range(500)]
                      + ["a long value of more than one SipHash block " * k for k in (1, 3)]
                      + ["naïve café", "物品-42", "x" * 7, "y" * 8, "z" * 9], dtype=object)
    encoder = SequenceEncoder(hash_buckets=7919).fit(pd.DataFrame({"v": values}))
    expected = encoder.transform(pd.DataFrame({"v": values}))["v"].to_numpy()
    np.testing.assert_array_equal(_siphash_ids(tf.constant(values.astype(str)), 7919).numpy(),
                                  expected)


# --------------------------------------------------------------------------- ONNX
def test_onnx_export_of_rankers_and_retrievers(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    X, y = _raw_rows(400, 3)
    rows = _hard_rows(X)
    for name in ("din", "dien"):
        pipe = make_pipeline(SequenceEncoder(**ENCODER), RANKERS[name]()).fit(X, y)
        folder = export(pipe, tmp_path / name, format="onnx")
        session = ort.InferenceSession(str(folder / "model.onnx"))
        probability, logit = session.run(["probability", "logit"],
                                         serving_inputs(pipe, rows, format="onnx"))
        # float32 sigmoid against predict_proba's float64 one
        np.testing.assert_allclose(probability, pipe.predict_proba(rows)[:, 1], atol=1e-6)
        np.testing.assert_allclose(logit, pipe.decision_function(rows), atol=1e-5)
        meta = json.loads((folder / "sklattn_export.json").read_text())
        ids = meta["signatures"]["model.onnx"]["inputs"]["ids"]
        assert ids["columns"] == pipe[-1].schema_.int_columns
        spec = json.loads((folder / "encoder.json").read_text())
        assert spec["sequences"]["hist_item"]["width"] == 5
    R = X.drop(columns=[c for c in X.columns if c.startswith("hist_cat")] + ["cat"])
    mind = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}),
                         MINDRetriever(embedding_dim=8, epochs=1, random_state=0)).fit(R)
    folder = export(mind, tmp_path / "mind", format="onnx")
    vectors, mask = ort.InferenceSession(str(folder / "model.onnx")).run(
        ["user_vectors", "mask"], serving_inputs(mind, R.head(30), format="onnx"))
    expected, expected_mask = mind[-1]._encode(mind[0].transform(R.head(30)))
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_array_equal(mask, expected_mask)
    assert (folder / "items" / "embeddings.npy").exists()
    bert = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}),
                         BERT4RecRetriever(embedding_dim=8, epochs=1, random_state=0)).fit(R)
    with pytest.raises(ValueError, match="BERT4RecRetriever's graph does not convert to ONNX: "
                       r"onnxruntime refuses the converted file \(no ONNX operator for Erfc\)"):
        export(bert, tmp_path / "bert", format="onnx")
    assert not (tmp_path / "bert" / "model.onnx").exists()


# ----------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def small():
    X, y = _raw_rows(200, 2)
    return X, y


def test_export_refuses_an_unfitted_pipeline(small, tmp_path):
    pipe = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}), DINClassifier())
    with pytest.raises(NotFittedError, match="'sequenceencoder'.*not fitted"):
        export(pipe, tmp_path / "m")
    pipe[0].fit(small[0])
    with pytest.raises(NotFittedError, match="'dinclassifier' \\(DINClassifier\\) is not fitted"):
        export(pipe, tmp_path / "m")


def test_export_refuses_an_unsupported_step(small, tmp_path):
    X, y = small
    pipe = make_pipeline(StandardScaler(), DINClassifier(**SMALL))
    with pytest.raises(ValueError, match="step 'standardscaler' \\(StandardScaler\\)"):
        export(pipe, tmp_path / "m")
    with pytest.raises(ValueError, match="last step; 'standardscaler' is a StandardScaler"):
        export(make_pipeline(StandardScaler()), tmp_path / "m")


def test_export_refuses_what_it_cannot_reproduce(small, tmp_path):
    X, y = small
    timed = X.assign(now=1e6, **{f"hist_time_{i}": 1e6 - 100.0 * i for i in range(1, 6)})
    gaps = make_pipeline(
        SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"},
                        timestamps={"hist_item": ("hist_time", "now")}),
        DINClassifier(**SMALL),
    ).fit(timed, y)
    with pytest.raises(ValueError, match="does not support time gaps"):
        export(gaps, tmp_path / "gaps")
    floats = X.assign(item=X["item"].str[1:].astype(float) + 0.5)
    pipe = make_pipeline(SequenceEncoder(sequences={"hist_cat": "cat"}, categorical=["item"]),
                         DINClassifier(**SMALL)).fit(floats, y)
    with pytest.raises(ValueError, match="vocabulary 'item', whose values are float"):
        export(pipe, tmp_path / "floats")
    with pytest.raises(ValueError, match="format must be one of"):
        export(pipe, tmp_path / "m", format="pmml")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export(pipe, tmp_path / "full")
    # A refused export leaves the artefact it would have replaced as it was.
    with pytest.raises(ValueError, match="vocabulary 'item'"):
        export(pipe, tmp_path / "full", overwrite=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert (tmp_path / "full" / "x").exists()
    if importlib.util.find_spec("tf2onnx") and importlib.util.find_spec("onnxruntime"):
        # The ONNX file takes encoded matrices: what the graph cannot encode is no obstacle.
        folder = export(gaps, tmp_path / "gaps-onnx", format="onnx")
        meta = json.loads((folder / "sklattn_export.json").read_text())
        assert "does not support time gaps" in meta["encoder"]
        assert not (folder / "encoder.json").exists()


def test_serving_inputs_names_what_is_wrong(small):
    X, y = small
    pipe = make_pipeline(SequenceEncoder(**ENCODER), DINClassifier(**SMALL)).fit(X, y)
    with pytest.raises(ValueError, match=r"missing columns the exported model takes: \['item'\]"):
        serving_inputs(pipe, X.drop(columns=["item"]))
    with pytest.raises(ValueError, match="format must be one of"):
        serving_inputs(pipe, X, format="json")
    L = X.assign(hist=[["i1", "i2"]] * len(X))
    listed = make_pipeline(SequenceEncoder(sequences={"hist": "item"}, drop=list(X.filter(
        like="hist_"))), DINClassifier(**SMALL)).fit(L, y)
    with pytest.raises(TypeError, match="Column 'hist' holds lists; got the text 'i1'"):
        serving_inputs(listed, L.assign(hist="i1"))


def test_export_refuses_list_wise_models_and_bad_names(small, tmp_path):
    X, y = small
    lists = X.assign(request=np.arange(len(X)) // 5)
    prm = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}, group="request"),
                        PRMReranker(epochs=1, random_state=0)).fit(lists, y)
    with pytest.raises(ValueError, match="export supports row-wise models; PRMReranker"):
        export(prm, tmp_path / "prm")
    spaced = X.rename(columns={"user_activity": "user activity"})
    pipe = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}),
                         DINClassifier(**SMALL)).fit(spaced, y)
    with pytest.raises(ValueError, match="Column 'user activity' cannot name an input"):
        export(pipe, tmp_path / "spaced")
