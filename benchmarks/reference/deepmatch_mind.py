"""DeepMatch 0.3.2 MIND on prepared data: the reference run of a sklattn retrieval benchmark.

Trains DeepMatch's MIND (multi-interest network with dynamic routing) on encoded
MovieLens ids -- one row per (history, next movie) event, positives only, a sampled
softmax over the movies -- then retrieves the top ``--top-n`` movies for each test row
by brute force and prints ONE JSON line on stdout (everything else goes to stderr)::

    {"library": "deepmatch", "library_version": "0.3.2", "tensorflow": "2.15.1",
     "model": "MIND", "hit_rate": ..., "hit_rate_exclude_seen": ..., "ndcg": ...,
     "popularity_hit_rate": ..., "fit_seconds": ..., "train_samples_per_s": ...,
     "user_1row_ms_p50": ..., "user_1row_ms_p99": ..., "retrieve_1user_ms_p50": ...,
     "n_train": ..., "n_test": ..., <the parameters>}

Environment
-----------
The DeepCTR environment of ``deepctr_din.py`` (TensorFlow 2.15, Keras 2, DeepCTR 0.9.4)
plus DeepMatch, whose wheel declares no usable dependencies::

    /opt/deepctr-env/bin/pip install deepmatch==0.3.2 --no-deps

By hand::

    /opt/deepctr-env/bin/python benchmarks/reference/deepmatch_mind.py --data data.npz \\
        --embedding-dim 32 --n-interests 4 --pow-p 1 --epochs 20 [--no-dynamic-k]

Input (``--data``)
------------------
The ``.npz`` layout of ``deepctr_din.py`` (written by ``din_movielens.write_reference_data``)
with the history ``hist_movie`` (int32 ``(n, maxlen)``, left-padded with 0, most recent
movie last, vocabulary ``movie``), the target movie ``movie`` and the user columns
(``--user-features``), all categorical (0 = missing, 1 = unknown). ``y_train`` /
``y_test`` are ignored: every row is a positive. The item vocabulary size is
``meta["categorical"]["movie"]``; ids 0 and 1 are not real items, so the candidates
are the ids ``2 .. n_items - 1``. A test target of id 1 (a movie unseen in training)
counts as a miss.

DeepMatch wants right-padded histories with their lengths (input ``hist_len``), as its
examples make them (most recent movie first, padded at the end): the valid ids of each
row are reversed and moved to the left. (MIND's routing does not depend on the order.)

Model
-----
``deepmatch.models.MIND`` with one item feature ``movie`` (``SparseFeat``, dimension
``--embedding-dim``) whose table the history ``hist_movie`` shares
(``VarLenSparseFeat(..., embedding_name="movie", length_name="hist_len")``), every user
column a ``SparseFeat`` of the same dimension, ``k_max=--n-interests``, ``p=--pow-p``,
``dynamic_k``, user DNN ``--hidden-units`` (its last layer must equal the embedding
dimension), DeepMatch's other defaults (``l2_reg_embedding=1e-6``, 3 routing
iterations) and a ``NegativeSampler("frequency", --n-negatives, item_count=<counts of
the training targets>)``; loss ``deepmatch.utils.sampledsoftmaxloss``, legacy Adam.

Retrieval: the user model ``Model(model.user_input, model.user_embedding)`` gives the
interest vectors ``(n, k_max, d)`` (DeepMatch zeroes the interests beyond the user's
``k_user`` when ``dynamic_k``; those are left out of the max here), the item model
``Model(model.item_input, model.item_embedding)`` the vectors of ids ``2 ..
n_items - 1``. Score of an item = max over the user's interests of the dot products
(numpy); ``hit_rate`` = share of test rows whose target is in the top ``--top-n``,
``hit_rate_exclude_seen`` the same with the row's history movies removed from the
candidates, ``ndcg`` = mean of ``1 / log2(rank + 2)`` over hits (rank from 0, one
relevant item; ``ndcg_exclude_seen`` likewise), ``popularity_hit_rate`` the hit rate of
the ``--top-n`` most frequent training targets.

Notes on DeepMatch 0.3.2 with TensorFlow 2.15
---------------------------------------------
* MIND only builds with eager execution disabled (as DeepMatch's examples do): in
  eager mode the functional construction fails ("Could not build a TypeSpec for
  KerasTensor ... tf.compat.v1.squeeze"). The Keras TF1 training loop then needs the
  legacy optimisers (``tf.keras.optimizers.legacy.Adam``), and the models are called
  through ``predict`` only.
* ``import deepmatch`` starts a thread that asks PyPI for newer versions (as
  ``import deepctr`` does); both checks are skipped: DeepCTR's as in ``deepctr_din.py``,
  DeepMatch's by registering the ``deepmatch`` package without running its
  ``__init__`` (which only holds the version and that check).

Timing: ``fit_seconds`` is ``fit(epochs=1)`` plus the ``fit`` of the remaining epochs
(``deepctr_din.fit_timed``). ``user_1row_ms_*`` are p50/p99 of ``user_model.predict``
on one test row over ``--latency-calls`` calls after 20 warm-up calls;
``retrieve_1user_ms_p50`` adds the numpy scoring and top-N of that user.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from deepctr_din import (  # noqa: E402
    fit_rates,
    fit_timed,
    import_deepctr,
    load_data,
    percentiles_ms,
    print_result,
    units,
)

PREDICT_BATCH = 4096
FIRST_ITEM = 2  # ids 0 (padding) and 1 (unknown) are not items


def import_deepmatch():
    """Import deepmatch's modules without its import-time PyPI version check."""
    if "deepmatch" not in sys.modules:
        spec = importlib.util.find_spec("deepmatch")
        package = types.ModuleType("deepmatch")
        package.__path__ = list(spec.submodule_search_locations)
        package.__version__ = importlib.metadata.version("deepmatch")
        sys.modules["deepmatch"] = package
    import deepmatch
    from deepmatch.models import MIND
    from deepmatch.utils import NegativeSampler, sampledsoftmaxloss

    return deepmatch, MIND, NegativeSampler, sampledsoftmaxloss


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz in the layout of deepctr_din.py")
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--n-interests", type=int, default=4, help="k_max")
    parser.add_argument("--pow-p", type=float, default=1.0,
                        help="label-aware attention exponent (>= 100: hard max)")
    parser.add_argument("--dynamic-k", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--user-features", default="user_id,gender,age,occupation",
                        help="comma list of categorical user columns; empty: history only")
    parser.add_argument("--hidden-units", default=None,
                        help="user DNN, default 64,<embedding-dim>")
    parser.add_argument("--n-negatives", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-calls", type=int, default=200)
    args = parser.parse_args(argv)
    if args.hidden_units is None:
        args.hidden_units = f"64,{args.embedding_dim}"
    if units(args.hidden_units)[-1:] != (args.embedding_dim,):
        parser.error("the last of --hidden-units must equal --embedding-dim")
    return args


def right_pad(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded, oldest-first histories -> (most recent first, padded at the end; lengths)."""
    reversed_ = history[:, ::-1]
    order = np.argsort(reversed_ == 0, axis=1, kind="stable")
    padded = np.take_along_axis(reversed_, order, axis=1).astype(np.int32)
    lengths = (history != 0).sum(axis=1).astype(np.int32).reshape(-1, 1)
    return padded, lengths


def model_inputs(X: dict, user_features: list[str]) -> tuple[dict, np.ndarray]:
    """(user inputs of DeepMatch, target ids (n,)) from a split of ``load_data``."""
    history, lengths = right_pad(X["hist_movie"])
    inputs = {name: X[name] for name in user_features}
    inputs.update(hist_movie=history, hist_len=lengths)
    return inputs, X["movie"].ravel()


def interests_per_user(lengths: np.ndarray, k_max: int) -> np.ndarray:
    """DeepMatch's ``adaptive_interest_num``: max(1, min(k_max, log2(1 + len))), floored."""
    k = np.log1p(lengths.ravel().astype(np.float32)) / np.float32(np.log(2.0))
    return np.maximum(1.0, np.minimum(float(k_max), k)).astype(np.int32)


def interest_scores(interests: np.ndarray, k_user: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(n, n_items): max over each row's first ``k_user`` interests of the dot products."""
    scores = np.einsum("nkd,id->nki", interests, items)
    unused = np.arange(interests.shape[1])[None, :] >= k_user[:, None]
    scores[unused] = -np.inf
    return scores.max(axis=1)


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Column indices of the ``n`` best scores of each row, best first."""
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    best = np.take_along_axis(scores, part, axis=1)
    return np.take_along_axis(part, np.argsort(-best, axis=1, kind="stable"), axis=1)


def hit_and_ndcg(top: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Hit rate and NDCG of top-N lists (candidate indices) for one relevant item each."""
    found = top == targets[:, None]
    hit = found.any(axis=1)
    rank = found.argmax(axis=1)
    gains = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return float(hit.mean()), float(gains.mean())


def run(args: argparse.Namespace) -> dict:
    tf.compat.v1.disable_eager_execution()  # DeepMatch's MIND does not build eagerly
    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(args.seed)
    import_deepctr()
    from deepctr.feature_column import SparseFeat, VarLenSparseFeat

    deepmatch, MIND, NegativeSampler, sampledsoftmaxloss = import_deepmatch()
    from tensorflow.keras.models import Model

    meta, X_train, X_test, y_train, _ = load_data(args.data)
    user_features = [f for f in args.user_features.split(",") if f.strip()]
    vocab = meta["categorical"]
    n_items = vocab["movie"]
    maxlen = meta["sequences"]["hist_movie"]["maxlen"]
    dim = args.embedding_dim

    train_inputs, train_targets = model_inputs(X_train, user_features)
    test_inputs, test_targets = model_inputs(X_test, user_features)
    n_train, n_test = len(train_targets), len(test_targets)
    item_count = np.bincount(train_targets, minlength=n_items)

    user_columns = [SparseFeat(name, vocab[name], dim) for name in user_features]
    user_columns.append(VarLenSparseFeat(
        SparseFeat("hist_movie", n_items, dim, embedding_name="movie"),
        maxlen, "mean", "hist_len",
    ))
    item_columns = [SparseFeat("movie", n_items, dim)]
    sampler = NegativeSampler(
        "frequency", num_sampled=args.n_negatives, item_name="movie",
        item_count=item_count.tolist(),
    )
    start = time.perf_counter()
    model = MIND(
        user_columns, item_columns, k_max=args.n_interests, p=args.pow_p,
        dynamic_k=args.dynamic_k, user_dnn_hidden_units=units(args.hidden_units),
        sampler_config=sampler, seed=args.seed,
    )
    model.compile(
        optimizer=tf.keras.optimizers.legacy.Adam(learning_rate=args.learning_rate),
        loss=sampledsoftmaxloss,
    )
    build_seconds = time.perf_counter() - start

    fit_inputs = dict(train_inputs, movie=train_targets.reshape(-1, 1))
    first, rest = fit_timed(model, fit_inputs, y_train, args)

    user_model = Model(inputs=model.user_input, outputs=model.user_embedding)
    item_model = Model(inputs=model.item_input, outputs=model.item_embedding)
    item_ids = np.arange(FIRST_ITEM, n_items, dtype=np.int32)
    items = item_model.predict({"movie": item_ids}, batch_size=PREDICT_BATCH, verbose=0)
    interests = user_model.predict(test_inputs, batch_size=PREDICT_BATCH, verbose=0)
    k_max = interests.shape[1]
    if args.dynamic_k:
        k_user = interests_per_user(test_inputs["hist_len"], k_max)
    else:
        k_user = np.full(n_test, k_max)

    scores = interest_scores(interests, k_user, items)
    candidates = test_targets - FIRST_ITEM  # -1 (unknown target): never found
    hit_rate, ndcg = hit_and_ndcg(top_n(scores, args.top_n), candidates)
    seen = X_test["hist_movie"] - FIRST_ITEM
    rows = np.broadcast_to(np.arange(n_test)[:, None], seen.shape)
    keep = seen >= 0
    scores[rows[keep], seen[keep]] = -np.inf
    hit_seen, ndcg_seen = hit_and_ndcg(top_n(scores, args.top_n), candidates)
    counts = item_count[FIRST_ITEM:]
    popular = np.argsort(-counts, kind="stable")[: args.top_n]
    popularity_hit_rate = float(np.isin(candidates, popular).mean())

    row = {name: values[:1] for name, values in test_inputs.items()}
    k_row = k_user[:1]
    user_p50, user_p99 = percentiles_ms(
        lambda: user_model.predict(row, verbose=0), calls=args.latency_calls
    )

    def retrieve():
        vectors = user_model.predict(row, verbose=0)
        return top_n(interest_scores(vectors, k_row, items), args.top_n) + FIRST_ITEM

    retrieve_p50, retrieve_p99 = percentiles_ms(retrieve, calls=args.latency_calls)

    return {
        "library": "deepmatch",
        "library_version": deepmatch.__version__,
        "tensorflow": tf.__version__,
        "model": "MIND",
        "hit_rate": hit_rate,
        "hit_rate_exclude_seen": hit_seen,
        "ndcg": ndcg,
        "ndcg_exclude_seen": ndcg_seen,
        "popularity_hit_rate": popularity_hit_rate,
        "build_seconds": build_seconds,
        **fit_rates(n_train, args.epochs, first, rest),
        "user_1row_ms_p50": user_p50,
        "user_1row_ms_p99": user_p99,
        "retrieve_1user_ms_p50": retrieve_p50,
        "retrieve_1user_ms_p99": retrieve_p99,
        "n_train": n_train,
        "n_test": n_test,
        "n_items": int(len(item_ids)),
        "test_targets_unknown": int((test_targets < FIRST_ITEM).sum()),
        "mean_interests_test": float(k_user.mean()),
        "embedding_dim": dim,
        "n_interests": args.n_interests,
        "pow_p": args.pow_p,
        "dynamic_k": args.dynamic_k,
        "user_features": user_features,
        "hidden_units": list(units(args.hidden_units)),
        "n_negatives": args.n_negatives,
        "sampler": "frequency",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "top_n": args.top_n,
        "seed": args.seed,
        "eager": bool(tf.executing_eagerly()),
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
    }


def main(argv=None) -> None:
    print_result(run, parse_args(argv))


if __name__ == "__main__":
    main()
