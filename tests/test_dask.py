"""Dask-ML's Incremental trains an sklattn model block by block through partial_fit."""

import numpy as np
import pytest
from click_logs import SEQUENCES, string_click_log
from sklearn.metrics import roc_auc_score

from sklattn import DINClassifier, SequenceEncoder

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")


def test_incremental_on_a_local_cluster_learns_through_partial_fit():
    log = string_click_log(5000, 0)
    features = [c for c in log.columns if c != "label"]
    encoder = SequenceEncoder(sequences=SEQUENCES).fit(log[features])
    ddf = dd.from_pandas(log.iloc[:3000], npartitions=4)
    # Each partition is encoded where it is computed; the schema rides in its attrs.
    X = ddf[features].map_partitions(encoder.transform)
    model = DINClassifier(embedding_dim=4, hidden_units=(16,), attention_units=(8,),
                          activation="relu", batch_size=128, learning_rate=1e-2,
                          random_state=0)
    # A worker process: the estimator and the encoded blocks travel pickled.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        incremental = wrappers.Incremental(model, random_state=0)
        incremental.fit(X, ddf["label"], classes=[0, 1])
        for _ in range(2):  # more passes over the blocks
            incremental.partial_fit(X, ddf["label"], classes=[0, 1])
    fitted = incremental.estimator_
    assert fitted.n_iter_ == 3 * 4  # one epoch per block and pass
    test = log.iloc[3000:]
    proba = fitted.predict_proba(encoder.transform(test[features]))[:, 1]
    assert np.isfinite(proba).all()
    assert roc_auc_score(test["label"], proba) > 0.6
