"""Chunked Parquet reading, and the two partial_fit passes it feeds."""

import numpy as np
import pandas as pd
import pytest
from click_logs import SEQUENCES, string_click_log
from sklearn.metrics import roc_auc_score

from sklattn import DINClassifier, SequenceEncoder
from sklattn.datasets import iter_parquet

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("clicks")
    log = string_click_log(5000, 0).iloc[:3000]  # the rest is the test rows (same items and users)
    for k, rows in enumerate(np.array_split(np.arange(len(log)), 3)):
        log.iloc[rows].to_parquet(path / f"part-{k}.parquet", index=False)
    return path, log


def test_chunks_are_bounded_and_cover_every_row_in_order(folder):
    path, log = folder
    chunks = list(iter_parquet(path, batch_rows=400))
    assert max(len(c) for c in chunks) <= 400
    assert sum(len(c) for c in chunks) == len(log)
    whole = pd.concat(chunks, ignore_index=True)
    assert list(whole.columns) == list(log.columns)
    assert whole["item"].tolist() == log["item"].tolist()
    only = next(iter_parquet(path / "part-1.parquet", columns=["item", "label"]))
    assert list(only.columns) == ["item", "label"]


def test_two_passes_of_partial_fit_learn_from_parquet(folder):
    path, log = folder
    features = [c for c in log.columns if c != "label"]
    encoder = SequenceEncoder(sequences=SEQUENCES)
    for chunk in iter_parquet(path, batch_rows=500, columns=features):
        encoder.partial_fit(chunk)
    whole = SequenceEncoder(sequences=SEQUENCES).fit(log[features])
    for vocab, values in whole.vocabularies_.items():
        assert list(encoder.vocabularies_[vocab]) == list(values)
    model = DINClassifier(embedding_dim=4, hidden_units=(16,), attention_units=(8,),
                          activation="relu", batch_size=128, learning_rate=1e-2,
                          random_state=0)
    for _ in range(4):  # epochs: one pass over the chunks each
        for chunk in iter_parquet(path, batch_rows=500):
            model.partial_fit(encoder.transform(chunk[features]), chunk["label"],
                              classes=[0, 1])
    test = string_click_log(5000, 0).iloc[3000:]
    proba = model.predict_proba(encoder.transform(test[features]))[:, 1]
    assert np.isfinite(proba).all()
    assert roc_auc_score(test["label"], proba) > 0.6


def test_a_list_column_reads_as_a_list_valued_sequence(tmp_path):
    frame = pd.DataFrame({"hist": [["a", "b"], [], ["b"]], "item": ["b", "a", "c"]})
    frame.to_parquet(tmp_path / "lists.parquet")
    chunk = next(iter_parquet(tmp_path / "lists.parquet"))
    out = SequenceEncoder(sequences={"hist": "item"}).fit_transform(chunk)
    expected = SequenceEncoder(sequences={"hist": "item"}).fit_transform(frame)
    pd.testing.assert_frame_equal(out, expected)


def test_bad_files_are_errors_naming_them(tmp_path, folder):
    path, log = folder
    bad = tmp_path / "bad"
    bad.mkdir()
    log.iloc[:10].to_parquet(bad / "a.parquet")
    log.iloc[:10].drop(columns="cat").to_parquet(bad / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet' lacks the columns \['cat'\]"):
        list(iter_parquet(bad))
    (bad / "b.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=r"b\.parquet' is not a readable Parquet file"):
        list(iter_parquet(bad))
    log.iloc[:0].to_parquet(bad / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet' holds no rows"):
        list(iter_parquet(bad))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No \\*.parquet file under the folder"):
        list(iter_parquet(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="none.parquet"):
        list(iter_parquet(tmp_path / "none.parquet"))
    with pytest.raises(ValueError, match="batch_rows"):
        list(iter_parquet(path, batch_rows=0))


def test_rows_are_numbered_across_chunks_and_hidden_files_skipped(folder, tmp_path):
    path, log = folder
    chunks = list(iter_parquet(path, batch_rows=700))
    assert pd.concat(chunks).index.tolist() == list(range(len(log)))
    copy = tmp_path / "copy"
    (copy / "_temporary").mkdir(parents=True)
    log.iloc[:5].to_parquet(copy / "part-0.parquet")
    log.iloc[5:9].to_parquet(copy / "_temporary" / "part-1.parquet")
    log.iloc[5:9].to_parquet(copy / ".part-2.parquet")
    assert sum(len(c) for c in iter_parquet(copy)) == 5


def test_a_partitioned_dataset_keeps_its_partition_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    table = pa.table({"item": ["a", "b", "c", "d"], "day": [1, 1, 2, 2]})
    pq.write_to_dataset(table, tmp_path / "hive", partition_cols=["day"])
    dataset = ds.dataset(tmp_path / "hive", format="parquet", partitioning="hive")
    frame = pd.concat(iter_parquet(dataset, batch_rows=1))
    assert sorted(frame.columns) == ["day", "item"]
    assert sorted(zip(frame["item"], frame["day"].astype(int), strict=True)) == [
        ("a", 1), ("b", 1), ("c", 2), ("d", 2)
    ]
