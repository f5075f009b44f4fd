"""Retrieval -> ranking -> re-ranking on MovieLens-100k: SASRec, then DIN, then PRM.

Protocol. Every rating is an event; each user's events are ordered by time (ties by
file order) and cut, from the end, into windows of ``--window`` events: window 0 is the
**test window**, windows ``1 .. --rerank-windows`` train the re-ranker, the next
``--ranker-windows`` windows train the ranker, and every earlier event trains the
retriever. A *request* is a (user, window) pair: its history is the user's events
before the window (the last 50 as ``hist_movie_1..50``), its relevant movies the
window's (a request needs at least one earlier event). Each stage thus learns from
the lists the stage before it produced on later data, as in a live system, and no
stage scores rows it was trained on.

1. **Retrieval**: ``SASRecRetriever(train_positions="last")`` on the early events (one
   row per event with its previous 50 movies) proposes the top ``--candidates`` movies
   of each request, every movie the user rated before excluded.
2. **Ranking**: ``DINClassifier`` on the ranker windows' candidate lists (a click = the
   movie is in the window), with the user's history, gender, age and occupation and
   the retrieval score; its order is the initial ranking.
3. **Re-ranking**: ``PRMReranker`` on the re-ranker windows' lists, initial rank from
   the ranker, item features: the movie and its retrieval score; without and with the
   personalised vector (the ranker's logit as a column: PRM's
   ``personalization`` takes a classifier fitted by the same encoder as PRM's; this
   ranker has its own encoder, so its logit goes in as a number).

Metrics over the test requests (one per user), per stage, with the stage's order of
the candidates: recall@k = relevant movies in the top k / relevant movies in the window
(so the retrieval's recall@``--candidates`` caps every later stage), NDCG@k with binary
gains and the ideal DCG of the window's relevant movies. Timings per stage: training
seconds; the batch call for all test users; the p50 of one user's call (the user's raw
row or 50 raw rows through the fitted Pipeline) and of the three stages together.

Usage: ``python benchmarks/pipeline_movielens.py [--retriever-epochs 10]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _common import SHARED_DATA, emit, latency_ms, log, require_shared_data, timed
from sklearn.pipeline import make_pipeline

from sklattn import DINClassifier, PRMReranker, SASRecRetriever, SequenceEncoder
from sklattn.datasets import load_movielens, make_history_table

USER_COLUMNS = ["gender", "age", "occupation"]
MAXLEN = 50
HISTORY = [f"hist_movie_{i}" for i in range(1, MAXLEN + 1)]
RANKER_COLUMNS = [*USER_COLUMNS, *HISTORY, "movie", "retrieval_score"]


def build(window: int, n_windows: int):
    """(events table with a window number, request rows, relevant movies per request)."""
    data = load_movielens(SHARED_DATA / "ml-100k")
    ratings = data.ratings.rename(columns={"item_id": "movie"})[["user_id", "movie", "timestamp"]]
    table = make_history_table(ratings, item_col="movie", maxlen=MAXLEN, prefix="hist_movie")
    table = table.merge(data.users[["user_id", *USER_COLUMNS]], on="user_id", how="left")
    position = table.groupby("user_id").cumcount()
    from_end = table.groupby("user_id")["movie"].transform("size") - 1 - position
    # 0 = the test window, 1..n_windows = the training lists', beyond = the early events.
    table["window"] = np.minimum(from_end // window, n_windows + 1)
    table["position"] = position
    hist = HISTORY
    in_window = table["window"] <= n_windows
    # A request = the first event of a window: its history columns are the events before.
    first = in_window & ~table.duplicated(["user_id", "window"])
    requests = table[first & table[hist[-1]].notna()]
    requests = requests[["user_id", "window", "position", *USER_COLUMNS, *hist]]
    requests = requests.sort_values(["window", "user_id"], ascending=[False, True])
    requests = requests.reset_index(drop=True)
    requests.insert(0, "request_id", np.arange(len(requests)))
    relevant = table[in_window].groupby(["user_id", "window"])["movie"].agg(frozenset)
    seen_by_user = table.sort_values("position").groupby("user_id")["movie"].agg(list)
    return table, requests, relevant, seen_by_user


def candidates(retriever, requests, seen_by_user, n: int) -> pd.DataFrame:
    """``n`` retrieved movies per request, every earlier movie of the user excluded."""
    # exclude_seen covers the last maxlen movies; longer histories need a wider search.
    longest = int(requests["position"].max())
    encoded = retriever[0].transform(requests[HISTORY])
    movies, scores = retriever[-1].retrieve(encoded, top_n=n + longest)
    rows = []
    pairs = zip(requests["user_id"], requests["position"], strict=True)
    for i, (user, position) in enumerate(pairs):
        seen = set(seen_by_user[user][:position])
        keep = [j for j, m in enumerate(movies[i]) if m not in seen][:n]
        rows.append((np.full(len(keep), i), movies[i][keep], scores[i][keep]))
    at, movie, score = (np.concatenate(parts) for parts in zip(*rows, strict=True))
    frame = requests.iloc[at].reset_index(drop=True)
    frame["movie"] = movie
    frame["retrieval_score"] = score
    return frame


def with_ranker(frame: pd.DataFrame, ranker) -> pd.DataFrame:
    """The ranker's logit per row; rows sorted by request, then by the logit, with the
    initial rank it gives (1 = top)."""
    frame = frame.copy()
    frame["ranker_logit"] = ranker.decision_function(frame[RANKER_COLUMNS])
    order = np.lexsort((-frame["ranker_logit"].to_numpy(), frame["request_id"].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    request = frame["request_id"].to_numpy()
    first = np.r_[0, np.flatnonzero(request[1:] != request[:-1]) + 1]
    lengths = np.diff(np.r_[first, len(request)])
    frame["initial_rank"] = np.arange(len(request)) - np.repeat(first, lengths) + 1
    return frame


def labels(frame: pd.DataFrame, relevant) -> np.ndarray:
    keys = zip(frame["user_id"], frame["window"], frame["movie"], strict=True)
    return np.fromiter((m in relevant[(u, w)] for u, w, m in keys), bool, len(frame))


def stage_metrics(frame: pd.DataFrame, score: np.ndarray, relevant, ks) -> dict:
    """Recall@k and NDCG@k of each request's candidates in ``score`` order."""
    hit = labels(frame, relevant)
    order = np.lexsort((-np.asarray(score), frame["request_id"].to_numpy()))
    request = frame["request_id"].to_numpy()[order]
    first = np.r_[0, np.flatnonzero(request[1:] != request[:-1]) + 1]
    out = {}
    totals = np.array([len(relevant[(u, w)]) for u, w in
                       zip(frame["user_id"].to_numpy()[order][first],
                           frame["window"].to_numpy()[order][first], strict=True)])
    for k in ks:
        recall, ndcg = [], []
        for i, start in enumerate(first):
            end = first[i + 1] if i + 1 < len(first) else len(order)
            top = hit[order[start:end]][:k]
            discount = 1.0 / np.log2(np.arange(2, len(top) + 2))
            ideal = (1.0 / np.log2(np.arange(2, min(k, totals[i]) + 2))).sum()
            recall.append(top.sum() / totals[i])
            ndcg.append(float(top @ discount) / ideal)
        out[f"recall@{k}"] = float(np.mean(recall))
        out[f"ndcg@{k}"] = float(np.mean(ndcg))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--rerank-windows", type=int, default=2)
    parser.add_argument("--ranker-windows", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--retriever-epochs", type=int, default=10)
    parser.add_argument("--ranker-epochs", type=int, default=5)
    parser.add_argument("--reranker-epochs", type=int, default=20)
    args = parser.parse_args()
    if not require_shared_data():
        return
    start = time.perf_counter()
    last_list = args.rerank_windows + args.ranker_windows
    table, requests, relevant, seen_by_user = build(args.window, last_list)
    hist = HISTORY
    early = table[(table["window"] > last_list) & table[hist[-1]].notna()]
    split = {"test": requests["window"] == 0,
             "reranker": requests["window"].between(1, args.rerank_windows),
             "ranker": requests["window"] > args.rerank_windows}
    task = dict(benchmark="pipeline", task="movielens-100k", window=args.window,
                n_early_events=len(early), n_candidates=args.candidates,
                **{f"n_{name}_lists": int(mask.sum()) for name, mask in split.items()})
    ks = (10, args.candidates)

    # 1. Retrieval, trained on the early events.
    retriever = make_pipeline(
        SequenceEncoder(sequences={"hist_movie": "movie"}),
        SASRecRetriever(train_positions="last", epochs=args.retriever_epochs,
                        random_state=0),
    )
    _, retriever_fit = timed(lambda: retriever.fit(early[[*hist, "movie"]]))
    emit(**task, stage="retrieval", model="SASRecRetriever", fit_seconds=retriever_fit,
         epochs=args.retriever_epochs)
    lists, all_users = {}, {}
    for name, mask in split.items():
        req = requests[mask].reset_index(drop=True)
        lists[name], took = timed(
            lambda req=req: candidates(retriever, req, seen_by_user, args.candidates))
        if name == "test":
            all_users["retrieval"] = took

    # 2. Ranking, trained on the ranker windows' candidates (a click = in the window).
    ranker = make_pipeline(
        SequenceEncoder(sequences={"hist_movie": "movie"}, categorical=USER_COLUMNS),
        DINClassifier(epochs=args.ranker_epochs, random_state=0),
    )
    y_ranker = labels(lists["ranker"], relevant).astype(np.int64)
    _, ranker_fit = timed(lambda: ranker.fit(lists["ranker"][RANKER_COLUMNS], y_ranker))
    emit(**task, stage="ranking", model="DINClassifier", fit_seconds=ranker_fit,
         n_rows=len(y_ranker), clicks=int(y_ranker.sum()), epochs=args.ranker_epochs)
    for name in ("reranker", "test"):
        lists[name], took = timed(lambda name=name: with_ranker(lists[name], ranker))
        if name == "test":
            all_users["ranking"] = took

    # 3. Re-ranking, without and with the personalised vector.
    train, test = lists["reranker"], lists["test"]
    y_train = labels(train, relevant).astype(np.int64)
    # PRM reads the list's items; the user enters through the PV only (as in the paper).
    base = ["request_id", "initial_rank", "movie", "retrieval_score"]
    rerankers = {}
    for variant, columns in (("without_pv", base), ("with_pv", [*base, "ranker_logit"])):
        model = make_pipeline(
            SequenceEncoder(categorical=["movie"], group="request_id", rank="initial_rank"),
            PRMReranker(epochs=args.reranker_epochs, random_state=0),
        )
        _, fit_seconds = timed(lambda model=model, columns=columns:
                               model.fit(train[columns], y_train))
        scores, took = timed(lambda model=model, columns=columns:
                             model.decision_function(test[columns]))
        rerankers[variant] = (model, columns, scores)
        all_users[f"reranking_{variant}"] = took
        emit(**task, stage="reranking", model="PRMReranker", variant=variant,
             fit_seconds=fit_seconds,
             train_lists_per_s=task["n_reranker_lists"] * args.reranker_epochs / fit_seconds,
             clicks_per_list=float(y_train.sum() / task["n_reranker_lists"]))

    stages = {"retrieval": test["retrieval_score"].to_numpy(),
              "ranking": test["ranker_logit"].to_numpy(),
              **{f"reranking_{v}": s for v, (_, _, s) in rerankers.items()}}
    for stage, score in stages.items():
        emit(**task, stage=stage, split="test", **stage_metrics(test, score, relevant, ks),
             all_users_seconds=all_users[stage])

    # One user: a raw request row through all three stages.
    one = requests[split["test"]].iloc[[0]]
    one_list = test[test["request_id"] == one["request_id"].iloc[0]]
    model, columns, _ = rerankers["with_pv"]
    one_user = {
        "retrieval": lambda: candidates(retriever, one, seen_by_user, args.candidates),
        "ranking": lambda: with_ranker(one_list.drop(columns=["ranker_logit"]), ranker),
        "reranking": lambda: model.predict(one_list[columns]),
        "all_stages": lambda: model.predict(with_ranker(
            candidates(retriever, one, seen_by_user, args.candidates), ranker)[columns]),
    }
    for stage, fn in one_user.items():
        p50, p99 = latency_ms(fn, n_calls=100, warmup=5)
        emit(**task, stage=stage, one_user_ms_p50=p50, one_user_ms_p99=p99)
    log(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
