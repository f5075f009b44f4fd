"""SequenceEncoder(hash_buckets=...): vocabularies hashed into buckets, never counted."""

import numpy as np
import pandas as pd
import pytest
from click_logs import SEQUENCES, string_click_log
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from sklattn import DINClassifier, SequenceEncoder
from sklattn.preprocessing import FIRST_ID, PAD_ID


def test_ids_are_stable_buckets_of_the_values_text():
    X = pd.DataFrame({"item": ["item-1", "349", None, ""],
                      "hist_1": pd.Series([349, 349.0, None, 7], dtype=object)})
    encoder = SequenceEncoder(sequences={"hist_": "item"}, hash_buckets=1000)
    out = encoder.fit_transform(X)
    # Pinned: the same ids in every process and on every platform.
    assert out["item"].tolist() == [831, 756, PAD_ID, PAD_ID]
    assert out["hist__1"].tolist()[:2] == [756, 756]  # 349, 349.0 and "349": one bucket
    assert encoder.schema_.vocabulary_sizes["item"] == 1000 + FIRST_ID
    np.testing.assert_array_equal(encoder.vocabularies_["item"], np.arange(1000))
    assert encoder.decode([831], "item").tolist() == [829]  # the bucket number
    # Nothing is unseen: a new value gets a bucket too, and no warning.
    new = pd.DataFrame({"item": [f"new-{k}" for k in range(200)], "hist_1": [None] * 200})
    assert (encoder.transform(new)["item"] >= FIRST_ID).all()


def test_the_collision_share_follows_the_documented_formula():
    n, m = 20_000, 65_536
    values = np.array([f"item-{k}" for k in range(n)], dtype=object)
    X = pd.DataFrame({"item": values, "hist_1": values})
    ids = SequenceEncoder(sequences={"hist_": "item"}, hash_buckets=m).fit_transform(X)["item"]
    per_bucket = np.bincount(ids, minlength=m + FIRST_ID)
    share = (per_bucket[ids] > 1).mean()  # values that share their bucket with another
    expected = 1 - (1 - 1 / m) ** (n - 1)
    assert abs(share - expected) < 0.01, (share, expected)


def test_hashing_is_per_vocabulary_and_the_same_in_chunks_and_streams():
    log = string_click_log(1000, 0).drop(columns="label")
    encoder = SequenceEncoder(sequences=SEQUENCES, hash_buckets={"item": 4096})
    whole = encoder.fit_transform(log)
    assert encoder.schema_.vocabulary_sizes["item"] == 4096 + FIRST_ID
    assert encoder.schema_.vocabulary_sizes["cat"] < 20  # counted as usual
    chunked = SequenceEncoder(sequences=SEQUENCES, hash_buckets={"item": 4096})
    for start in range(0, 1000, 300):
        chunked.partial_fit(log.iloc[start : start + 300])
    pd.testing.assert_frame_equal(chunked.transform(log), whole)
    streamed = SequenceEncoder(sequences=SEQUENCES, hash_buckets={"item": 4096})
    streamed.fit([log.iloc[:500], log.iloc[500:]])
    pd.testing.assert_frame_equal(streamed.transform(log), whole)
    with pytest.raises(ValueError, match=r"hash_buckets names \['movie'\]"):
        SequenceEncoder(sequences=SEQUENCES, hash_buckets={"movie": 10}).fit(log)
    with pytest.raises(ValueError, match="positive integers"):
        SequenceEncoder(sequences=SEQUENCES, hash_buckets={"item": 0}).fit(log)


def test_din_learns_with_a_hashed_catalogue():
    log = string_click_log(5000, 0)
    features = [c for c in log.columns if c != "label"]
    train, test = log.iloc[:3000], log.iloc[3000:]
    model = make_pipeline(
        SequenceEncoder(sequences=SEQUENCES, hash_buckets={"item": 1024}),
        DINClassifier(embedding_dim=4, hidden_units=(16,), attention_units=(8,),
                      activation="relu", batch_size=128, learning_rate=1e-2, epochs=3,
                      random_state=0),
    )
    model.fit(train[features], train["label"])
    assert roc_auc_score(test["label"], model.predict_proba(test[features])[:, 1]) > 0.6


@pytest.mark.parametrize("history", [
    pd.Series([7.0, 1.5, 1e20], dtype=object), pd.Series([7.0, 1.5, 1e20]),
])
def test_a_value_gets_its_bucket_whatever_the_rest_of_the_batch(history):
    small = pd.DataFrame({"item": pd.array([7, None, 349], dtype="Int64"), "hist_1": history})
    encoder = SequenceEncoder(sequences={"hist_": "item"}, hash_buckets=1000).fit(small)
    one = encoder.transform(small)  # a small frame: the cells as objects
    many = encoder.transform(pd.concat([small] * 2000, ignore_index=True)).iloc[:3]
    pd.testing.assert_frame_equal(one, many, check_index_type=False)
    assert one["item"].tolist()[:2] == [one["hist__1"][0], PAD_ID]  # 7 and 7.0; <NA>
    assert one["hist__1"][2] == encoder.transform(
        pd.DataFrame({"item": [None], "hist_1": ["100000000000000000000"]}))["hist__1"][0]
