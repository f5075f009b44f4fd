"""SASRec and BERT4Rec next-item retrieval on MovieLens-100k under full ranking.

Protocol (RecBole's leave-one-out, so that RecBole runs on exactly the same split):
every rating is a positive event, ordered by time per user (ties by file order); each
user's last event is the test item and the second last the validation item; every
earlier event with at least one previous movie is a training row (its previous
``--maxlen`` movies as history, the event's movie as target: RecBole's prefix
augmentation). Metrics over the 943 test rows, ranking the whole catalogue with the
catalogue: HR@10, NDCG@10, HR@50, NDCG@50, as RecBole computes them (its full ranking
of a sequential model does not mask the items already seen), and with sklattn's
``exclude_seen=True`` (suffix ``_exclude_seen``: no user rates a movie twice in
MovieLens-100k, so a history item is never the answer).

In one run, JSON lines for: popularity; sklattn's ``MINDRetriever`` (its README
settings); ``SASRecRetriever`` and ``BERT4RecRetriever`` (their defaults, SASRec with
``train_positions="last"`` because each training row is one event, trained for
``--epochs`` at most with early stopping on the validation rows' NDCG@10, patience
``--patience``, RecBole's rule); RecBole's SASRec and BERT4Rec in their own PyTorch environment
(``reference/recbole_sequential.py``; interpreter ``$RECBOLE_PYTHON``, default
``/opt/recbole-env/bin/python``) with the same sizes (embedding 64, 2 blocks, 2 heads,
history 50, full softmax, Adam 1e-3, batch 256, early stopping on validation NDCG@10
with patience 10). Each model's line holds the training time to convergence (epochs
run, best epoch, seconds) and the training throughput (training sequences per second
of training alone). The last lines hold the differences and ratios against RecBole
and MIND.

Usage: ``python benchmarks/sequential_benchmark.py [--epochs 200] [--models ...]``
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    SHARED_DATA,
    emit,
    latency_ms,
    log,
    reference_python,
    require_shared_data,
    timed,
)

from sklattn import SequenceEncoder
from sklattn.datasets import load_movielens, make_history_table
from sklattn.metrics import hit_rate_at_k, ndcg_at_k

SCRIPT = Path(__file__).parent / "reference" / "recbole_sequential.py"
CUTOFFS = (10, 50)


def split(maxlen: int):
    """(train, valid, test) raw frames and the ordered event log for RecBole."""
    data = load_movielens(SHARED_DATA / "ml-100k")
    ratings = data.ratings.rename(columns={"item_id": "movie"})[["user_id", "movie", "timestamp"]]
    table = make_history_table(ratings, item_col="movie", maxlen=maxlen, prefix="hist_movie")
    # make_history_table orders by (time, file order); rank within the user = that order.
    table["rank"] = table.groupby("user_id").cumcount()
    last = table.groupby("user_id")["rank"].transform("max")
    test = table[table["rank"] == last]
    valid = table[table["rank"] == last - 1]
    train = table[(table["rank"] < last - 1) & table[f"hist_movie_{maxlen}"].notna()]
    log_frame = table[["user_id", "movie", "rank"]].rename(
        columns={"movie": "item_id", "rank": "timestamp"})
    keep = [c for c in table.columns if c.startswith("hist_movie_")] + ["movie"]
    return (train[keep].reset_index(drop=True), valid[keep].reset_index(drop=True),
            test[keep].reset_index(drop=True), log_frame)


def metrics(targets: np.ndarray, top: np.ndarray) -> dict:
    out = {}
    for k in CUTOFFS:
        out[f"hit@{k}"] = hit_rate_at_k(targets, top, k)
        out[f"ndcg@{k}"] = ndcg_at_k(targets, top, k)
    return out


def fit_ours(name: str, model, E_train, E_valid, E_test, targets, valid_targets, task,
             args) -> dict:
    """Train epoch by epoch (warm start), stop when the validation rows' NDCG@10 has not
    improved for ``--patience`` epochs (RecBole's rule), score the best epoch's model."""
    model.set_params(epochs=1, warm_start=True, validation_fraction=None,
                     exclude_seen=True, top_n=max(CUTOFFS))
    best, best_epoch, bad, seconds, to_best, best_model = -1.0, 0, 0, 0.0, 0.0, None
    epoch = 0
    for epoch in range(1, args.epochs + 1):
        _, took = timed(lambda: model.fit(E_train))
        seconds += took
        score = ndcg_at_k(valid_targets, model.predict(E_valid), 10)
        if score > best:
            best, best_epoch, bad, to_best = score, epoch, 0, seconds
            best_model = pickle.loads(pickle.dumps(model))
        else:
            bad += 1
            if bad >= args.patience:
                break
    top = best_model.predict(E_test)
    best_model.set_params(exclude_seen=False)
    with_seen = metrics(targets, best_model.predict(E_test))
    best_model.set_params(exclude_seen=True)
    one = E_test.iloc[[0]]
    p50, p99 = latency_ms(lambda: best_model.predict(one), n_calls=200)
    row = dict(**task, library="sklattn", model=name, **with_seen,
               **{f"{m}_exclude_seen": v for m, v in metrics(targets, top).items()},
               valid_ndcg10=best, epochs_run=epoch, best_epoch=best_epoch,
               fit_seconds=seconds, seconds_to_best_epoch=to_best,
               train_sequences_per_s=len(E_train) * epoch / seconds,
               retrieve_1user_ms_p50=p50, retrieve_1user_ms_p99=p99)
    emit(**row)
    return row


def reference(python: str, inter: Path, model: str, args, epochs: int | None = None,
              patience: int | None = None) -> dict | None:
    cmd = [python, str(SCRIPT), "--inter", str(inter), "--model", model,
           "--max-len", str(args.maxlen), "--embedding-dim", "64", "--n-blocks", "2",
           "--n-heads", "2", "--loss", "CE", "--epochs", str(epochs or args.epochs),
           "--stopping-step", str(patience or args.patience), "--batch-size", "256",
           "--learning-rate", "0.001",
           "--seed", "0", "--device", "cpu", "--threads", str(args.threads)]
    log(" ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        log(done.stderr[-3000:])
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def throughput(name: str, make, E_train, python, events, args) -> None:
    """``--speed-repeats`` alternating measurements of ``--speed-epochs`` training epochs
    of sklattn's model and RecBole's: training sequences per second of each, the ratio
    of each pair, and their median and range (the machine's speed drifts between runs,
    so only pairs taken side by side are compared)."""
    task = dict(benchmark="sequential_throughput", task="movielens-100k",
                n_train=len(E_train), maxlen=args.maxlen, epochs=args.speed_epochs)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        inter = Path(tmp) / "ml-100k.inter"
        events.to_csv(inter, sep="\t", index=False)
        for repeat in range(args.speed_repeats):
            model = make().set_params(epochs=args.speed_epochs, validation_fraction=None)
            _, seconds = timed(lambda model=model: model.fit(E_train))
            ours = len(E_train) * args.speed_epochs / seconds
            ref = reference(python, inter, name, args, epochs=args.speed_epochs,
                            patience=args.speed_epochs + 1)
            peer = ref["train_sequences_per_s"] if ref else float("nan")
            ratios.append(ours / peer)
            emit(**task, model=name, repeat=repeat, sklattn_sequences_per_s=ours,
                 recbole_sequences_per_s=peer, ratio=ratios[-1])
    emit(**task, model=name, metric="throughput_ratio", median=float(np.median(ratios)),
         low=float(np.min(ratios)), high=float(np.max(ratios)), repeats=len(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help="at most")
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--maxlen", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="RecBole's torch threads")
    parser.add_argument(
        "--models", default="popularity,mind,sasrec,bert4rec,recbole",
        help="comma-separated; 'recbole' runs both peers, 'recbole_sasrec' or "
             "'recbole_bert4rec' one of them")
    parser.add_argument("--speed-repeats", type=int, default=0,
                        help="only measure training throughput against RecBole, this "
                             "many alternating times (of the models in --models)")
    parser.add_argument("--speed-epochs", type=int, default=1)
    args = parser.parse_args()
    wanted = set(args.models.split(","))
    if not require_shared_data():
        return
    start = time.perf_counter()
    train, valid, test, events = split(args.maxlen)
    encoder = SequenceEncoder(sequences={"hist_movie": "movie"})
    E_train = encoder.fit_transform(train)
    E_valid, E_test = encoder.transform(valid), encoder.transform(test)
    # Targets as original movie ids, like predict's output (item_labels_).
    targets = test["movie"].to_numpy()
    valid_targets = valid["movie"].to_numpy()
    task = dict(benchmark="sequential", task="movielens-100k", n_train=len(E_train),
                n_test=len(E_test), maxlen=args.maxlen, max_epochs=args.epochs)
    rows: dict[str, dict] = {}

    if args.speed_repeats:
        python = reference_python("RECBOLE_PYTHON", "/opt/recbole-env/bin/python")
        from sklattn import BERT4RecRetriever, SASRecRetriever

        makers = {"sasrec": ("SASRec", lambda: SASRecRetriever(train_positions="last",
                                                               random_state=0)),
                  "bert4rec": ("BERT4Rec", lambda: BERT4RecRetriever(random_state=0))}
        for key, (name, make) in makers.items():
            if key in wanted and python is not None:
                throughput(name, make, E_train, python, events, args)
        return

    if "popularity" in wanted:
        counts = np.bincount(E_train["movie"], minlength=encoder.schema_.vocabulary_sizes["movie"])
        order = encoder.decode(np.argsort(-counts[2:], kind="stable") + 2, "movie")
        seen = test[[f"hist_movie_{i}" for i in range(1, args.maxlen + 1)]].to_numpy()
        top = np.array([[i for i in order if i not in set(s)][: max(CUTOFFS)] for s in seen])
        plain = np.tile(order[: max(CUTOFFS)], (len(test), 1))
        rows["popularity"] = dict(
            **task, model="popularity", **metrics(targets, plain),
            **{f"{m}_exclude_seen": v for m, v in metrics(targets, top).items()})
        emit(**rows["popularity"])

    from sklattn import BERT4RecRetriever, MINDRetriever, SASRecRetriever

    candidates = {
        "mind": lambda: MINDRetriever(embedding_dim=32, n_interests=4, hidden_units=(64,),
                                      n_negatives=10, random_state=0),
        # One row per event: only the newest position trains (see the docstring).
        "sasrec": lambda: SASRecRetriever(train_positions="last", random_state=0),
        "bert4rec": lambda: BERT4RecRetriever(random_state=0),
    }
    for key, make in candidates.items():
        if key in wanted:
            model = make()
            rows[key] = fit_ours(type(model).__name__, model, E_train, E_valid, E_test,
                                 targets, valid_targets, task, args)

    python = reference_python("RECBOLE_PYTHON", "/opt/recbole-env/bin/python")
    peers = [name for name in ("SASRec", "BERT4Rec")
             if {"recbole", f"recbole_{name.lower()}"} & wanted]
    if peers and python is None:
        emit(**task, library="recbole", skipped="no RecBole environment")
    elif peers:
        with tempfile.TemporaryDirectory() as tmp:
            inter = Path(tmp) / "ml-100k.inter"
            events.to_csv(inter, sep="\t", index=False)
            for name in peers:
                ref = reference(python, inter, name, args)
                if ref is None:
                    emit(**task, library="recbole", model=name, skipped="reference run failed")
                    continue
                rows[f"recbole_{name.lower()}"] = ref
                emit(**{**task, **ref})

    for ours, peer in (("sasrec", "recbole_sasrec"), ("bert4rec", "recbole_bert4rec")):
        if ours in rows and peer in rows:
            a, b = rows[ours], rows[peer]
            emit(**task, metric="ratios", model=ours, against="recbole",
                 **{f"{m}_difference": a[m] - b[m] for m in
                    ("hit@10", "ndcg@10", "hit@50", "ndcg@50")},
                 train_throughput_ratio=a["train_sequences_per_s"] / b["train_sequences_per_s"],
                 # Training alone on both sides (RecBole's fit_seconds adds its
                 # per-epoch validation passes; ours never includes them).
                 train_seconds_ratio=b["train_seconds"] / a["fit_seconds"])
    for ours in ("sasrec", "bert4rec"):
        if ours in rows and "mind" in rows:
            emit(**task, metric="ratios", model=ours, against="mind",
                 **{f"{m}_difference": rows[ours][m] - rows["mind"][m]
                    for m in ("hit@10", "ndcg@10", "hit@50", "ndcg@50")})
    log(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
