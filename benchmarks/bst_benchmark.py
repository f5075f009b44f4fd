"""BST on MovieLens-100k: sklattn's BSTClassifier, sklattn's DINClassifier and DeepCTR
0.9.4's BST in the same run.

The task and the encoding are those of ``din_movielens.py`` (see
``_common.movielens_ctr``): every rating is an impression, rating >= 4 a click;
history = the user's previous 20 rated movies and their genres; the latest 20% of
ratings (by time) are the test set (80,000 / 20,000 rows); ``user_id`` is embedded, the
user's gender, age and occupation are categorical columns. The three models train on
the same encoded ids.

Hyper-parameters, the same on every side where the model has them: embedding 8
(every behaviour is item + genre, 16 wide), one transformer block (the paper's best)
with 2 heads (sklattn's default; 4 and 8 scored the same, see ``docs/bst.md``; 2
divides DeepCTR's width 16 and sklattn's 24, item + genre + the concatenated
position), dropout 0.2 (the paper's) in the transformer and the MLP (DeepCTR has one
rate for both, as sklattn), MLP 256-128 with ReLU, Adam with learning rate 3e-3 (better
than 1e-3 for both sklattn models on this split), batch 256, 2 epochs (a third
overfits). DIN uses the protocol of ``din_movielens.py`` (activation unit 80-40, no
dropout) with ReLU in both MLPs and the same optimiser, batch and epochs. sklattn's BST
runs with its defaults otherwise (``position="concat"``, ``pooling="target"``);
DeepCTR's as it is (the history alone in the transformer, DIN's attention pooling; see
``reference/deepctr_bst.py``).

Timing: each model trains one epoch, then (warm start) the remaining epochs, as the
reference scripts do; ``train_samples_per_s`` counts the whole fit (graph building and
tracing included), ``..._after_first_epoch`` only the second part. One-row latency is
p50/p99 of ``predict_proba`` on one encoded row (300 calls after 20 warm-up calls);
batch prediction is the median of 3 timed ``predict_proba`` calls on the 20,000 test
rows.

DeepCTR needs TensorFlow <= 2.15, so it runs in its own environment
(``benchmarks/reference/deepctr_bst.py``; interpreter from ``$DEEPCTR_PYTHON``,
default ``/opt/deepctr-env/bin/python``); without it (or without the script) the
reference is reported as skipped and the rest runs. Every model is trained once per
seed (``--seeds``, default 3: seeds 0, 1, 2); the lines ``"summary"`` give the min,
median and max of each figure over the seeds, and the last line the ratios of the
medians.

Usage: ``python benchmarks/bst_benchmark.py [--seeds 3] [--epochs 2]``
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
    movielens_ctr,
    reference_python,
    require_shared_data,
    timed,
)
from din_movielens import LAYERS as DIN_LAYERS
from din_movielens import SEQUENCES, write_reference_data
from sklearn.metrics import roc_auc_score

from sklattn import BSTClassifier, DINClassifier, SequenceEncoder

BENCHMARK = "bst_movielens"
REFERENCE = Path(__file__).parent / "reference" / "deepctr_bst.py"
#: The figures summarised over the seeds.
FIGURES = (
    "auc", "fit_seconds", "train_samples_per_s", "train_samples_per_s_after_first_epoch",
    "predict_1row_ms_p50", "predict_1row_ms_p99", "batch_predict_rows_per_s",
    "call_1row_ms_p50",  # DeepCTR's direct model call (sklattn's predict_proba is one)
)


def sklattn_run(make, E_train, E_test, y_train, y_test, epochs: int) -> dict:
    """Train ``make(epochs=1)``, then the remaining epochs (warm start); time and score."""
    est = make(epochs=1, warm_start=True)
    _, first = timed(lambda: est.fit(E_train, y_train))
    rest = None
    if epochs > 1:
        est.set_params(epochs=epochs - 1)
        _, rest = timed(lambda: est.fit(E_train, y_train))
    proba = est.predict_proba(E_test)[:, 1]  # also warms the batch path up
    batch = []
    for _ in range(3):
        start = time.perf_counter()
        est.predict_proba(E_test)
        batch.append(time.perf_counter() - start)
    p50, p99 = latency_ms(lambda: est.predict_proba(E_test.iloc[[0]]))
    seconds = first + (rest or 0.0)
    return dict(
        auc=float(roc_auc_score(y_test, proba)),
        fit_seconds=seconds,
        train_samples_per_s=len(E_train) * epochs / seconds,
        train_samples_per_s_after_first_epoch=(
            None if rest is None else len(E_train) * (epochs - 1) / rest
        ),
        predict_1row_ms_p50=p50,
        predict_1row_ms_p99=p99,
        batch_predict_rows_per_s=len(E_test) / float(np.median(batch)),
        xla=bool(est.model_.jit_compile),
    )


def reference_run(python: str, data: Path, args, seed: int) -> dict | None:
    cmd = [
        python, str(REFERENCE), "--data", str(data),
        "--embedding-dim", str(args.embedding_dim),
        "--hidden-units", ",".join(str(u) for u in args.hidden_units),
        "--dnn-activation", "relu", "--n-blocks", str(args.n_blocks),
        "--n-heads", str(args.n_heads), "--dropout", str(args.dropout),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--learning-rate", str(args.learning_rate), "--seed", str(seed),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        log(done.stderr[-3000:])
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": round(float(np.min(values)), 5), "median": round(float(np.median(values)), 5),
            "max": round(float(np.max(values)), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="runs per model: seeds 0..N-1")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--n-blocks", type=int, default=1)
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--hidden-units", type=lambda s: tuple(int(u) for u in s.split(",")),
                        default=(256, 128))
    parser.add_argument("--no-reference", action="store_true", help="skip DeepCTR")
    args = parser.parse_args()
    if not require_shared_data():
        return

    X_train, X_test, y_train, y_test = movielens_ctr()
    encoder = SequenceEncoder(sequences=SEQUENCES, categorical=["user_id"],
                              unseen_warning=None)  # most test users are new: expected
    E_train = encoder.fit_transform(X_train)
    E_test = encoder.transform(X_test)
    common = dict(batch_size=args.batch_size, learning_rate=args.learning_rate,
                  embedding_dim=args.embedding_dim, hidden_units=args.hidden_units,
                  activation="relu")
    models = {
        "sklattn BST": lambda seed, **kw: BSTClassifier(
            n_blocks=args.n_blocks, n_heads=args.n_heads, dropout=args.dropout,
            random_state=seed, **common, **kw),
        "sklattn DIN": lambda seed, **kw: DINClassifier(
            attention_units=DIN_LAYERS["attention_units"], random_state=seed, **common, **kw),
    }
    settings = dict(n_train=len(E_train), n_test=len(E_test), epochs=args.epochs,
                    batch_size=args.batch_size, learning_rate=args.learning_rate,
                    embedding_dim=args.embedding_dim, n_blocks=args.n_blocks,
                    n_heads=args.n_heads, dropout=args.dropout,
                    hidden_units=list(args.hidden_units))
    emit(benchmark=BENCHMARK, metric="settings", **settings)

    python = None if args.no_reference else reference_python(
        "DEEPCTR_PYTHON", "/opt/deepctr-env/bin/python")
    if python is None or not REFERENCE.exists():
        why = "no DeepCTR environment" if python is None else f"{REFERENCE} is absent"
        emit(benchmark=BENCHMARK, library="deepctr", skipped=why)
        python = None

    results: dict[str, list[dict]] = {name: [] for name in [*models, "DeepCTR BST"]}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "movielens_bst.npz"
        if python is not None:
            write_reference_data(data, encoder, E_train, E_test, y_train, y_test)
        for seed in range(args.seeds):
            for name, make in models.items():
                run = sklattn_run(lambda seed=seed, make=make, **kw: make(seed, **kw),
                                  E_train, E_test, y_train, y_test, args.epochs)
                results[name].append(run)
                emit(benchmark=BENCHMARK, library=name, seed=seed, **run)
            if python is not None:
                ref = reference_run(python, data, args, seed)
                if ref is None:
                    emit(benchmark=BENCHMARK, library="DeepCTR BST", seed=seed,
                         skipped="reference run failed")
                else:
                    results["DeepCTR BST"].append(ref)
                    emit(benchmark=BENCHMARK, seed=seed, **{**ref, "library": "DeepCTR BST"})

    medians = {}
    for name, runs in results.items():
        if not runs:
            continue
        summary = {f: spread([r.get(f) for r in runs]) for f in FIGURES}
        summary = {f: s for f, s in summary.items() if s is not None}
        medians[name] = {f: s["median"] for f, s in summary.items()}
        emit(benchmark=BENCHMARK, metric="summary", library=name, seeds=len(runs), **summary)

    bst, din, ref = (medians.get(k) for k in ("sklattn BST", "sklattn DIN", "DeepCTR BST"))
    ratios = dict(bst_auc_minus_din_auc=bst["auc"] - din["auc"])
    if ref is not None:
        ratios.update(
            bst_auc_minus_deepctr_bst_auc=bst["auc"] - ref["auc"],
            train_throughput_ratio_vs_deepctr=(
                bst["train_samples_per_s"] / ref["train_samples_per_s"]),
            train_throughput_ratio_vs_deepctr_after_first_epoch=(
                bst["train_samples_per_s_after_first_epoch"]
                / ref["train_samples_per_s_after_first_epoch"]
                if args.epochs > 1 else None),
            latency_1row_ratio_vs_deepctr_predict=(
                ref["predict_1row_ms_p50"] / bst["predict_1row_ms_p50"]),
            latency_1row_ratio_vs_deepctr_call=(
                ref["call_1row_ms_p50"] / bst["predict_1row_ms_p50"]
                if "call_1row_ms_p50" in ref else None),
        )
    emit(benchmark=BENCHMARK, metric="ratios (medians over seeds)", **ratios)


if __name__ == "__main__":
    main()
