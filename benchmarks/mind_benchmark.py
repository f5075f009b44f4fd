"""MIND retrieval: MovieLens-100k hit rate against DeepMatch, and top-N search latency.

Two tasks, JSON lines:

* ``movielens``: MovieLens-100k leave-last-out (``_common.movielens_retrieval``: every
  rating a positive event; each user's last event is the test row, every earlier event
  with a history a training row; history = the previous 20 movies; user profile =
  user id, gender, age, occupation). sklattn's ``MINDRetriever``, a popularity
  baseline and DeepMatch 0.3.2's MIND on the same encoded ids in its own TensorFlow 2.15
  environment (``reference/deepmatch_mind.py``; interpreter ``$DEEPCTR_PYTHON``,
  default ``/opt/deepctr-env/bin/python``). Both: embedding 32, 4 interests, dynamic
  interest number, p = 1, profile MLP (64,) then 32, ``--n-negatives`` frequency
  negatives, Adam 1e-3, batch 256, ``--epochs`` 20. Hit rate, recall and NDCG at 50,
  with and without the history's movies excluded, training samples/s and one-row
  latencies. The last line holds the ratios.
* ``search``: the top-50 search itself, for 1 and for 10,000 users (4 interests of
  dimension 32) over synthetic catalogues of 10,000 and 1,000,000 items: sklattn's
  exact blocked search, a plain numpy product + ``argpartition``, and the approximate
  faiss index (``pip install "sklattn[ann]"``, ``sqrt(n_items)`` lists, ``--nprobe`` of
  them probed) with its recall of the exact top 50. The items and interests are
  isotropic Gaussian vectors: no cluster structure, the hardest case for an inverted
  file, so the recall figures are a lower bound for learned embeddings.

Usage: ``python benchmarks/mind_benchmark.py [--task both] [--epochs 20]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    emit,
    latency_ms,
    log,
    movielens_retrieval,
    reference_python,
    require_shared_data,
    timed,
)
from din_movielens import write_reference_data

from sklattn import MINDRetriever, SequenceEncoder
from sklattn.metrics import hit_rate_at_k, ndcg_at_k
from sklattn.models._search import BruteForceIndex, FaissIndex

SCRIPT = Path(__file__).parent / "reference" / "deepmatch_mind.py"
USER_COLUMNS = ["user_id", "gender", "age", "occupation"]


def reference(python: str, data: Path, args) -> dict | None:
    cmd = [
        python, str(SCRIPT), "--data", str(data), "--embedding-dim", "32",
        "--n-interests", "4", "--pow-p", "1", "--epochs", str(args.epochs),
        "--n-negatives", str(args.n_negatives), "--batch-size", "256",
        "--learning-rate", "0.001", "--top-n", "50", "--seed", "0",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        log(done.stderr[-3000:])
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def movielens(args, python: str | None) -> None:
    if not require_shared_data():
        return
    train, test = movielens_retrieval()
    encoder = SequenceEncoder(sequences={"hist_movie": "movie"}, categorical=["user_id", "age"])
    E_train = encoder.fit_transform(train)
    E_test = encoder.transform(test)
    task = dict(benchmark="mind", task="movielens", n_train=len(E_train), n_test=len(E_test),
                epochs=args.epochs, n_negatives=args.n_negatives)

    counts = np.bincount(E_train["movie"], minlength=encoder.schema_.vocabulary_sizes["movie"])
    counts[:2] = 0
    popular = np.argsort(-counts, kind="stable")[:50]
    emit(**task, model="popularity", hit_rate=hit_rate_at_k(E_test["movie"].to_numpy(),
                                                            np.tile(popular, (len(E_test), 1))))

    model = MINDRetriever(
        embedding_dim=32, n_interests=4, pow_p=1.0, hidden_units=(64,),
        n_negatives=args.n_negatives, epochs=args.epochs, batch_size=256,
        learning_rate=1e-3, top_n=50, random_state=0,
    )
    _, seconds = timed(lambda: model.fit(E_train))
    targets = encoder.decode(E_test["movie"].to_numpy(), "movie")
    ours = dict(fit_seconds=seconds, train_samples_per_s=len(E_train) * args.epochs / seconds)
    for exclude in (False, True):
        model.set_params(exclude_seen=exclude)
        top = model.predict(E_test)
        suffix = "_exclude_seen" if exclude else ""
        ours["hit_rate" + suffix] = hit_rate_at_k(targets, top)
        ours["ndcg" + suffix] = ndcg_at_k(targets, top)
    one = E_test.iloc[[0]]
    ours["user_1row_ms_p50"], ours["user_1row_ms_p99"] = latency_ms(
        lambda: model.transform(one), n_calls=200)
    ours["retrieve_1user_ms_p50"], ours["retrieve_1user_ms_p99"] = latency_ms(
        lambda: model.predict(one), n_calls=200)
    emit(**task, library="sklattn", model="MINDRetriever", **ours)

    if python is None:
        emit(**task, library="deepmatch", skipped="no DeepMatch environment")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "movielens_mind.npz"
        zeros = np.zeros(len(E_train)), np.zeros(len(E_test))
        write_reference_data(data, encoder, E_train, E_test, *zeros)
        ref = reference(python, data, args)
    if ref is None:
        emit(**task, library="deepmatch", skipped="reference run failed")
        return
    emit(**{**task, **ref})
    emit(
        **task, metric="ratios",
        hit_rate_difference=ours["hit_rate"] - ref["hit_rate"],
        hit_rate_exclude_seen_difference=ours["hit_rate_exclude_seen"]
        - ref["hit_rate_exclude_seen"],
        train_throughput_ratio=ours["train_samples_per_s"] / ref["train_samples_per_s"],
        retrieve_1user_latency_ratio=ref["retrieve_1user_ms_p50"]
        / ours["retrieve_1user_ms_p50"],
    )


def search(args) -> None:
    rng = np.random.default_rng(0)
    dim, k = 32, 4
    users = rng.normal(size=(10_000, k, dim)).astype(np.float32)
    mask = np.ones((10_000, k), dtype=bool)
    for n_items in (10_000, 1_000_000):
        search_catalogue(args, users, mask, rng.normal(size=(n_items, dim)).astype(np.float32))


def search_catalogue(args, users, mask, items) -> None:
    n_items, dim = items.shape
    k, top_n = users.shape[1], 50
    task = dict(benchmark="mind", task="search", n_items=n_items, dim=dim, n_interests=k,
                top_n=top_n)
    brute = BruteForceIndex(items)

    def numpy_top(u, items=items):
        scores = (u.reshape(-1, dim) @ items.T).reshape(len(u), k, -1).max(axis=1)
        part = np.argpartition(-scores, top_n - 1, axis=1)[:, :top_n]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        return np.take_along_axis(part, order, 1)

    p50, p99 = latency_ms(lambda: brute.search(users[:1], mask[:1], top_n), n_calls=50,
                          warmup=3)
    n_many = len(users) if n_items <= 10_000 else args.many_users
    (exact, _), seconds = timed(lambda: brute.search(users[:n_many], mask[:n_many], top_n))
    emit(**task, method="sklattn brute force", one_user_ms_p50=p50, one_user_ms_p99=p99,
         n_users=n_many, users_per_s=n_many / seconds)
    n_np = min(n_many, 1000 if n_items <= 10_000 else 100)  # the product is n_np x n_items
    _, np_seconds = timed(lambda: numpy_top(users[:n_np]))
    p50_np, _ = latency_ms(lambda: numpy_top(users[:1]), n_calls=50, warmup=3)
    emit(**task, method="numpy product + argpartition", one_user_ms_p50=p50_np,
         n_users=n_np, users_per_s=n_np / np_seconds)
    try:
        index, build = timed(lambda: FaissIndex(items))
    except ImportError:
        emit(**task, method="faiss IVF", skipped="faiss is not installed")
        return
    for nprobe in (int(v) for v in args.nprobe.split(",")):
        index.index.nprobe = min(nprobe, index.nlist)
        p50_f, p99_f = latency_ms(lambda: index.search(users[:1], mask[:1], top_n),
                                  n_calls=50, warmup=3)
        (approx, _), f_seconds = timed(
            lambda: index.search(users[:n_many], mask[:n_many], top_n))
        recall = np.mean([len(np.intersect1d(a, b)) / top_n
                          for a, b in zip(approx, exact, strict=True)])
        emit(**task, method="faiss IVF", nlist=index.nlist, nprobe=index.index.nprobe,
             build_seconds=build, one_user_ms_p50=p50_f, one_user_ms_p99=p99_f,
             n_users=n_many, users_per_s=n_many / f_seconds, recall_of_exact_top=recall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["movielens", "search", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--n-negatives", type=int, default=10)
    parser.add_argument("--many-users", type=int, default=10_000,
                        help="users of the batch search over the 1M-item catalogue")
    parser.add_argument("--nprobe", default="8,32,128",
                        help="comma-separated numbers of inverted lists probed by faiss")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.task in ("movielens", "both"):
        movielens(args, reference_python("DEEPCTR_PYTHON", "/opt/deepctr-env/bin/python"))
    if args.task in ("search", "both"):
        search(args)
    log(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
