"""PRM re-ranking on synthetic lists whose optimum is known (``make_reranking_lists``).

The requests of ``make_reranking_lists(--requests, random_state=0)`` are split by
request: the last ``--test-requests`` are the test set, the rest train. On the test
requests, NDCG@5 and NDCG@10 with the true click probabilities as gains (1 = the
optimum, the order by those probabilities) of:

* ``initial``: the upstream pointwise ranker's order (``initial_rank``);
* ``pointwise_ceiling``: the order by the true pointwise relevance ``r`` (the best any
  model that scores each item on its own can do; the same requests generated with
  ``duplicate_decay=1``, whose probabilities are ``r``);
* ``din``: ``DINClassifier`` re-scoring each row (attention over the user's history,
  the item, its category, the initial score), trained on the clicks;
* ``prm``: ``PRMReranker`` over each list's items (id, category, initial score) and
  their initial ranks; it never sees the user;
* ``prm_pv``: the same plus the personalised vector, the DIN's logit of each row as a
  column (in-sample on the training rows, as a ranker's logged scores would be).

Clicks carry a position bias (``position_bias``, examination ``(1 / rank) ** 0.5`` by
default); ``--ipw`` weights each training click by the inverse of its examination
probability for both models (``sample_weight``: unbiased learning to rank with known
propensities).

Also: training seconds and lists (requests) per second, and the p50/p99 latency of
re-ranking one request (its raw rows through the fitted Pipeline).

Usage: ``python benchmarks/reranking_benchmark.py [--requests 40000] [--ipw]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import emit, latency_ms, log, timed
from sklearn.pipeline import make_pipeline

from sklattn import DINClassifier, PRMReranker, SequenceEncoder
from sklattn.datasets import make_reranking_lists
from sklattn.metrics import listwise_ndcg_score

CUTOFFS = (5, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40000)
    parser.add_argument("--test-requests", type=int, default=2000)
    parser.add_argument("--position-bias", type=float, default=0.5)
    parser.add_argument("--duplicate-decay", type=float, default=None,
                        help="default: make_reranking_lists'")
    parser.add_argument("--ipw", action="store_true",
                        help="weight clicks by 1 / examination probability")
    parser.add_argument("--epochs", type=int, default=None, help="PRM's; default its own")
    parser.add_argument("--din-epochs", type=int, default=3)
    parser.add_argument("--models", default="initial,pointwise_ceiling,din,prm,prm_pv")
    args = parser.parse_args()
    wanted = args.models.split(",")
    start = time.perf_counter()
    data_kw = dict(position_bias=args.position_bias)
    if args.duplicate_decay is not None:
        data_kw["duplicate_decay"] = args.duplicate_decay
    X, y, p = make_reranking_lists(args.requests, random_state=0, **data_kw)
    _, _, relevance = make_reranking_lists(args.requests, random_state=0,
                                           **{**data_kw, "duplicate_decay": 1.0})
    groups = X["request_id"].to_numpy()
    test = groups >= args.requests - args.test_requests
    train = ~test
    X = X.drop(columns="user_id")  # the history stands for the user
    weights = (X["initial_rank"].to_numpy() ** args.position_bias if args.ipw
               else np.ones(len(X)))
    task = dict(benchmark="reranking", task="make_reranking_lists", **data_kw,
                ipw=args.ipw, n_train_requests=int(args.requests - args.test_requests),
                n_test_requests=args.test_requests, n_test_rows=int(test.sum()))

    def report(model: str, scores: np.ndarray, **extra) -> None:
        ndcg = {f"ndcg@{k}": listwise_ndcg_score(p[test], scores, groups[test], k=k)
                for k in CUTOFFS}
        emit(**task, model=model, **ndcg, **extra)

    if "initial" in wanted:
        report("initial", -X.loc[test, "initial_rank"].to_numpy())
    if "pointwise_ceiling" in wanted:
        report("pointwise_ceiling", relevance[test])

    def encoder(**lists) -> SequenceEncoder:
        return SequenceEncoder(sequences={"hist_item": "item"}, categorical=["category"],
                               **lists)

    # DIN re-scores each row on its own: the user's history (attention), the item, its
    # category and the initial score.
    pointwise = [c for c in X.columns if c not in ("request_id", "initial_rank")]
    din = make_pipeline(
        SequenceEncoder(sequences={"hist_item": "item"}, categorical=["category"]),
        DINClassifier(epochs=args.din_epochs, random_state=0),
    )
    if {"din", "prm_pv"} & set(wanted):
        _, seconds = timed(lambda: din.fit(X.loc[train, pointwise], y[train],
                                           dinclassifier__sample_weight=weights[train]))
        X["din_logit"] = din.decision_function(X[pointwise])
        if "din" in wanted:
            report("din", X.loc[test, "din_logit"].to_numpy(), fit_seconds=seconds)

    # PRM reads the items of the list (id, category, initial score, initial rank); the
    # PV is the DIN's logit of the row, a column (the user enters only through it).
    items = ["request_id", "item", "category", "initial_score", "initial_rank"]
    prm_settings = {} if args.epochs is None else {"epochs": args.epochs}
    for name, columns in (("prm", items), ("prm_pv", [*items, "din_logit"])):
        if name not in wanted:
            continue
        model = make_pipeline(
            SequenceEncoder(categorical=["item", "category"], group="request_id",
                            rank="initial_rank"),
            PRMReranker(random_state=0, **prm_settings),
        )
        _, seconds = timed(lambda model=model, columns=columns: model.fit(
            X.loc[train, columns], y[train], prmreranker__sample_weight=weights[train]))
        prm = model[-1]
        one = X.loc[groups == groups[test][0], columns]
        p50, p99 = latency_ms(lambda model=model, one=one: model.predict(one), n_calls=200)
        report(name, model.decision_function(X.loc[test, columns]), fit_seconds=seconds,
               epochs=prm.n_iter_,
               train_lists_per_s=task["n_train_requests"] * prm.n_iter_ / seconds,
               rerank_1request_ms_p50=p50, rerank_1request_ms_p99=p99,
               request_length=len(one))
    log(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
