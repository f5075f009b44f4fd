"""fit and predict on streams: Parquet folders, lists and functions of DataFrame chunks."""

import pickle

import numpy as np
import pandas as pd
import pytest
from click_logs import SEQUENCES, string_click_log
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from sklattn import DINClassifier, PRMReranker, SASRecRetriever, SequenceEncoder
from sklattn.datasets import DataStream

pytest.importorskip("pyarrow")


def _din(**params) -> DINClassifier:
    return DINClassifier(**{
        "embedding_dim": 4, "hidden_units": (16,), "attention_units": (8,),
        "activation": "relu", "batch_size": 128, "learning_rate": 1e-2, "epochs": 3,
        "random_state": 0, **params,
    })


@pytest.fixture(scope="module")
def log():
    return string_click_log(5000, 0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, log):
    path = tmp_path_factory.mktemp("clicks")
    train = log.iloc[:3000]
    for k, rows in enumerate(np.array_split(np.arange(len(train)), 3)):
        train.iloc[rows].to_parquet(path / f"part-{k}.parquet", index=False,
                                    row_group_size=400)
    return path


def test_a_pipeline_trains_on_a_parquet_folder_like_in_memory(folder, log):
    train, test = log.iloc[:3000], log.iloc[3000:]
    features = [c for c in log.columns if c != "label"]
    streamed = make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din())
    streamed.fit(DataStream(folder, chunk_rows=300, shuffle_buffer=4096), y="label")
    memory = make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din())
    memory.fit(train[features], train["label"])
    # Everything counted over the data is the same; only the batches' order differs.
    for vocab, values in memory[0].vocabularies_.items():
        assert list(streamed[0].vocabularies_[vocab]) == list(values)
    assert streamed[-1].schema_ == memory[-1].schema_
    np.testing.assert_array_equal(streamed[-1].classes_, memory[-1].classes_)
    for vocab, table in memory[-1]._tables.items():
        np.testing.assert_array_equal(
            np.asarray(streamed[-1]._tables[vocab].frequency), np.asarray(table.frequency)
        )
    assert streamed[-1].n_iter_ == memory[-1].n_iter_ == 3
    # Both learn, equally well within the noise of the batch order.
    auc_stream = roc_auc_score(
        test["label"], streamed.predict_proba(test[features])[:, 1]
    )
    auc_memory = roc_auc_score(test["label"], memory.predict_proba(test[features])[:, 1])
    assert auc_stream > 0.6 and auc_memory > 0.6
    assert abs(auc_stream - auc_memory) < 0.05


def test_predict_proba_on_a_stream_yields_each_chunk_in_order(folder, log):
    train = log.iloc[:3000]
    features = [c for c in log.columns if c != "label"]
    model = make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din(epochs=1))
    model.fit(folder, y="label")
    chunks = list(model.predict_proba(DataStream(folder, chunk_rows=250)))
    # Row groups of 400 rows (1,000 per file) read 250 rows at a time.
    assert [len(c) for c in chunks] == [250, 150, 250, 150, 200] * 3
    np.testing.assert_allclose(
        np.concatenate(chunks), model.predict_proba(train[features]), rtol=1e-6, atol=1e-7
    )
    labels = np.concatenate(list(model.predict(folder)))
    np.testing.assert_array_equal(labels, model.predict(train[features]))
    # The label column of the files is passed through by the encoder and ignored.
    assert model[-1]._stream_label == "label"


def test_same_seed_same_model_and_pickles(folder, log):
    features = [c for c in log.columns if c != "label"]
    test = log.iloc[3000:3500][features]
    runs = [
        make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din(epochs=2)).fit(
            DataStream(folder, chunk_rows=300, shuffle_buffer=500), y="label"
        )
        for _ in range(2)
    ]
    first = runs[0].predict_proba(test)
    np.testing.assert_array_equal(first, runs[1].predict_proba(test))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(runs[0])).predict_proba(test), first)


def test_memory_is_bounded_by_the_shuffle_buffer_and_a_chunk(folder):
    model = make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din(epochs=1, batch_size=32))
    model.fit(DataStream(folder, chunk_rows=50, shuffle_buffer=200), y="label")
    # Rows held in the buffer: never more than the buffer plus one chunk.
    assert 200 <= model[-1]._stream_rows_held <= 200 + 50
    unshuffled = make_pipeline(SequenceEncoder(sequences=SEQUENCES),
                               _din(epochs=1, batch_size=32))
    unshuffled.fit(DataStream(folder, chunk_rows=50, shuffle_buffer=0), y="label")
    assert unshuffled[-1]._stream_rows_held <= 32 + 50


def test_vocabularies_from_a_stream_equal_those_of_the_whole_frame(log):
    features = log.drop(columns="label")
    whole = SequenceEncoder(sequences=SEQUENCES, min_frequency=3).fit(features)
    chunks = [features.iloc[i : i + 700] for i in range(0, len(features), 700)]
    for source in (chunks, lambda: iter(chunks), iter(chunks)):
        streamed = SequenceEncoder(sequences=SEQUENCES, min_frequency=3).fit(source)
        for vocab, values in whole.vocabularies_.items():
            assert list(streamed.vocabularies_[vocab]) == list(values)
        np.testing.assert_allclose(streamed.numeric_mean_, whole.numeric_mean_)


def test_functions_and_lists_of_chunks_train_but_an_iterator_is_refused(log):
    frames = [log.iloc[i : i + 500] for i in range(0, 2000, 500)]
    encoder = SequenceEncoder(sequences=SEQUENCES).fit(pd.concat(frames).drop(columns="label"))
    for source in (frames, lambda: iter(frames)):
        model = make_pipeline(encoder, _din(epochs=1))
        model.fit(source, y="label")
        assert model[-1].n_iter_ == 1
    with pytest.raises(ValueError, match="an iterator can be read only once"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din()).fit(iter(frames), y="label")


def test_validation_holds_out_whole_parts_and_stops_early(folder):
    model = make_pipeline(
        SequenceEncoder(sequences=SEQUENCES),
        _din(epochs=30, validation_fraction=0.25, n_iter_no_change=1, learning_rate=5e-2),
    )
    model.fit(DataStream(folder, chunk_rows=400), y="label")
    history = model[-1].history_
    assert "val_loss" in history and len(history["val_loss"]) < 30
    with pytest.raises(ValueError, match="has only one"):
        frame = string_click_log(300, 1)
        make_pipeline(SequenceEncoder(sequences=SEQUENCES),
                      _din(validation_fraction=0.2)).fit([frame], y="label")


def test_stream_errors_name_the_file_column_or_parameter(folder, tmp_path, log):
    bad = tmp_path / "bad"
    bad.mkdir()
    log.iloc[:100].to_parquet(bad / "a.parquet", index=False)
    log.iloc[:100].drop(columns="cat").to_parquet(bad / "b.parquet", index=False)
    with pytest.raises(ValueError, match=r"b\.parquet.*lacks the columns \['cat'\]"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din()).fit(bad, y="label")
    (bad / "b.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"b\.parquet.*not a readable Parquet file"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din()).fit(bad, y="label")
    log.iloc[:0].to_parquet(bad / "b.parquet", index=False)
    with pytest.raises(ValueError, match=r"b\.parquet.*holds no rows"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din()).fit(bad, y="label")
    with pytest.raises(ValueError, match="label column 'clicked' is not in the stream"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din()).fit(folder, y="clicked")
    with pytest.raises(ValueError, match="requires y"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din()).fit(folder)
    with pytest.raises(ValueError, match=r"y = X.pop\('label'\)"):
        _din().fit(log, "label")
    with pytest.raises(TypeError, match="sample_weight must be the name"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din()).fit(
            folder, y="label", dinclassifier__sample_weight=np.ones(3000)
        )
    with pytest.raises(ValueError, match="shuffle_buffer must be an integer"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din()).fit(
            DataStream(folder, shuffle_buffer=-1), y="label"
        )
    # A chunk whose values the model cannot read: the error names where it came from.
    broken = [log.iloc[:200], log.iloc[200:400]]
    encoder = SequenceEncoder(sequences=SEQUENCES).fit(log.drop(columns="label"))
    encoded = [encoder.transform(f.drop(columns="label")).assign(label=f["label"].to_numpy())
               for f in broken]
    encoded[1]["hist_item_8"] = -3
    with pytest.raises(ValueError, match="In chunk 1 of the list: Id columns"):
        _din().fit(encoded, y="label")


def test_sample_weight_column_and_balanced_classes(folder, log):
    weighted = log.iloc[:2000].assign(w=np.r_[np.zeros(1000), np.ones(1000)])
    frames = [weighted.iloc[i : i + 500] for i in range(0, 2000, 500)]
    model = make_pipeline(SequenceEncoder(sequences=SEQUENCES),
                          _din(epochs=1, class_weight="balanced"))
    model.fit(DataStream(frames, weight="w"), y="label")
    assert model[-1].n_iter_ == 1
    assert "w" not in model[0].feature_names_in_  # a weight, never a feature
    # The balanced weights come from every row's label, not one chunk's.
    counts = np.bincount(weighted["label"])
    stream = model[0].transform(DataStream(frames, weight="w", label="label"))
    chunk = next(stream.read())[2]
    w = model[-1]._sample_weights(np.ones(len(chunk)), chunk["label"].to_numpy(float),
                                  dict(enumerate(counts.astype(float))))
    expected = len(weighted) / (2 * counts[chunk["label"].to_numpy()])
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert len(list(model.predict_proba(DataStream(frames, weight="w")))) == 4


def test_list_wise_models_refuse_streams_and_retrievers_accept_them():
    from sklattn.datasets import make_transition_sequences

    X = make_transition_sequences(n_users=300, n_items=30, history_length=6,
                                  events_per_user=2, random_state=0).drop(columns="user_id")
    encoder = SequenceEncoder(sequences={"hist_item": "item"}).fit(X)
    chunks = [encoder.transform(X.iloc[i : i + 200]) for i in range(0, 600, 200)]
    retriever = SASRecRetriever(embedding_dim=8, epochs=1, random_state=0).fit(chunks)
    assert retriever.item_embeddings_.shape[1] == 8
    with pytest.raises(TypeError, match="PRMReranker trains on whole requests"):
        PRMReranker(epochs=1).fit(chunks, y="label")


def test_progress_bar(folder, capsys):
    SequenceEncoder(sequences=SEQUENCES).fit(DataStream(folder, label="label", progress=True))
    err = capsys.readouterr().err
    assert "3,000/3,000 rows" in err


def test_warm_start_and_partial_fit_read_streams(folder):
    encoded = SequenceEncoder(sequences=SEQUENCES).fit_transform(
        DataStream(folder, chunk_rows=500), y="label"
    )
    model = _din(epochs=1, warm_start=True).fit(encoded)
    model.fit(encoded)
    assert model.n_iter_ == 2
    partial = _din().partial_fit(encoded, "label", classes=[0, 1])
    partial.partial_fit(encoded, "label")
    assert partial.n_iter_ == 2


def test_a_failed_fit_leaves_no_fitted_state_and_bad_labels_are_named(log):
    frames = [log.iloc[i : i + 500] for i in range(0, 1500, 500)]
    frames[2] = frames[2].assign(label=2)
    model = make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din(epochs=1))
    with pytest.raises(ValueError, match="label column 'label' holds more than 2 values"):
        model.fit(frames, y="label")
    assert not hasattr(model[-1], "model_") and not hasattr(model[-1], "classes_")
    with pytest.raises(ValueError, match="has only one"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES),
                      _din(validation_fraction=0.2, class_weight="balanced")).fit(
            frames[:1], y="label")
    # A stream that gives other rows when read again is an error, not a silent epoch.
    calls = []

    def shrinking():
        calls.append(1)
        return iter(frames[: 3 - len(calls)] if len(calls) > 1 else frames[:2])

    with pytest.raises(ValueError, match="same rows each time"):
        make_pipeline(SequenceEncoder(sequences=SEQUENCES).fit(log.drop(columns="label")),
                      _din(epochs=1)).fit(shrinking, y="label")


def test_empty_chunks_are_skipped_in_fit_and_kept_in_prediction(log):
    frames = [log.iloc[:400], log.iloc[:0], log.iloc[400:800]]
    model = make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din(epochs=1))
    model.fit(frames, y="label")
    assert [len(p) for p in model.predict_proba(frames)] == [400, 0, 400]


def test_polars_chunks_and_the_global_pandas_output_setting(log):
    import sklearn

    pl = pytest.importorskip("polars")
    frames = [pl.from_pandas(log.iloc[i : i + 500]) for i in range(0, 1500, 500)]
    with sklearn.config_context(transform_output="pandas"):
        model = make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din(epochs=1))
        model.fit(frames, y="label")
        assert sum(len(p) for p in model.predict_proba(frames)) == 1500
    encoder = SequenceEncoder(sequences=SEQUENCES).set_output(transform="polars")
    encoded = [encoder.fit(log.drop(columns="label")).transform(f.drop("label"))
               for f in frames]
    # The encoder's polars output carries its schema into the stream's chunks.
    din = _din(epochs=1).fit(encoder.set_output(transform="default").transform(
        log.drop(columns="label")), log["label"])
    streamed = np.concatenate([p[:, 1] for p in din.predict_proba(encoded)])
    np.testing.assert_allclose(
        streamed, din.predict_proba(encoder.transform(log.iloc[:1500].drop(columns="label")))[:, 1],
        rtol=1e-6, atol=1e-7,
    )


def test_a_cached_stream_trains_like_an_uncached_one_and_cleans_up(folder, log, tmp_path):
    features = [c for c in log.columns if c != "label"]
    test = log.iloc[3000:3500][features]
    plain = make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din(epochs=2))
    plain.fit(DataStream(folder, chunk_rows=300, shuffle_buffer=500), y="label")
    cached = make_pipeline(SequenceEncoder(sequences=SEQUENCES), _din(epochs=2))
    cached.fit(DataStream(folder, chunk_rows=300, shuffle_buffer=500, cache=tmp_path),
               y="label")
    # The same rows in the same order: the epochs read the cache instead of the files.
    np.testing.assert_array_equal(cached.predict_proba(test), plain.predict_proba(test))
    assert list(tmp_path.iterdir()) == []  # the cache is removed after fit
    # With a cache, a generator is read once and the epochs come from disk.
    frames = [log.iloc[i : i + 500] for i in range(0, 1500, 500)]
    encoder = SequenceEncoder(sequences=SEQUENCES).fit(log.drop(columns="label"))
    model = _din(epochs=2, class_weight="balanced")
    model.fit(encoder.transform(DataStream(iter(frames), cache=True, label="label")))
    assert model.n_iter_ == 2
    with pytest.raises(ValueError, match="cache folder .* does not exist"):
        model.fit(encoder.transform(DataStream(frames, cache=str(tmp_path / "none"),
                                               label="label")),
                  y="label")
