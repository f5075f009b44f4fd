"""The sum-pooling Base Model on long histories: ``pooling="sum"`` against ``"mean"``.

Three tasks, JSON lines, ``--seeds`` each:

* ``long``: 1,000 rows whose histories hold 2,000 events each (ids drawn uniformly from
  500 items), a click being likelier the more often the candidate occurs in the history
  (the data of ``tests/test_din.py``); embedding 4, MLP (64,), learning rate 0.03,
  3 epochs. Training log loss and AUC, the share of rows with ``|logit| > 15`` and
  whether the fit warned.
* ``synthetic``: :func:`sklattn.datasets.make_interest_sequences` (30,000 rows, histories
  of up to 20 events, 2/3 for training), default parameters: test AUC.
* ``movielens``: MovieLens-100k as in ``din_movielens.py`` (previous 20 movies and their
  genres), default parameters: test AUC.

Usage: ``python benchmarks/sum_pooling_saturation.py [--task all] [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from _common import emit, movielens_ctr, require_shared_data, timed
from sklearn.metrics import log_loss, roc_auc_score

from sklattn import SequenceEncoder, SumPoolingClassifier
from sklattn.datasets import make_interest_sequences, make_long_histories


def long_task(args) -> None:
    small = dict(embedding_dim=4, hidden_units=(64,), epochs=3, learning_rate=0.03)
    for seed in args.seeds:
        X, y = make_long_histories(random_state=seed)
        for pooling in ("sum", "mean"):
            est = SumPoolingClassifier(sequences={"hist": "item"}, pooling=pooling,
                                       random_state=seed, **small)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _, seconds = timed(lambda est=est, X=X, y=y: est.fit(X, y))
            logits = est.decision_function(X)
            emit(benchmark="sum_pooling", task="long", pooling=pooling, seed=seed,
                 train_log_loss=log_loss(y, est.predict_proba(X)),
                 train_auc=roc_auc_score(y, logits),
                 share_saturated=float(np.mean(np.abs(logits) > 15)),
                 warned=any(issubclass(w.category, UserWarning) for w in caught),
                 fit_seconds=seconds)


def compare(task: str, E_train, E_test, y_train, y_test, seeds) -> None:
    for pooling in ("sum", "mean"):
        aucs = []
        for seed in seeds:
            est = SumPoolingClassifier(pooling=pooling, random_state=seed)
            _, seconds = timed(lambda est=est: est.fit(E_train, y_train))
            aucs.append(roc_auc_score(y_test, est.decision_function(E_test)))
            emit(benchmark="sum_pooling", task=task, pooling=pooling, seed=seed, auc=aucs[-1],
                 fit_seconds=seconds)
        emit(benchmark="sum_pooling", task=task, pooling=pooling, seeds=seeds,
             auc_mean=float(np.mean(aucs)), auc_min=float(np.min(aucs)),
             auc_max=float(np.max(aucs)))


def synthetic_task(args) -> None:
    X, y = make_interest_sequences(30000, random_state=0)
    X = X.drop(columns="user")
    n = 2 * len(X) // 3
    encoder = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"})
    compare("synthetic", encoder.fit_transform(X[:n]), encoder.transform(X[n:]), y[:n], y[n:],
            args.seeds)


def movielens_task(args) -> None:
    if not require_shared_data():
        return
    X_train, X_test, y_train, y_test = movielens_ctr()
    encoder = SequenceEncoder(sequences={"hist_item_id": "item_id", "hist_genre": "genre"},
                              categorical=["user_id", "item_id", "age"])
    compare("movielens", encoder.fit_transform(X_train), encoder.transform(X_test), y_train,
            y_test, args.seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["long", "synthetic", "movielens", "all"],
                        default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    for name, run in (("long", long_task), ("synthetic", synthetic_task),
                      ("movielens", movielens_task)):
        if args.task in (name, "all"):
            run(args)


if __name__ == "__main__":
    main()
