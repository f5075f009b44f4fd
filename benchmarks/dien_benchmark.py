"""DIEN against DIN and the sum-pooling Base Model, and against DeepCTR 0.9.4's DIEN.

Two tasks, JSON lines for each model (test AUC, training samples/s, one-row latency):

* ``synthetic``: ``make_interest_sequences`` with ``recency_decay=0.6`` (a click depends
  on the recency-weighted share of the history in the candidate's category, so the
  order of behaviours matters), with the optimal AUC of the true probabilities;
  embedding 8, 5 epochs at learning rate 3e-3.
* ``movielens``: MovieLens-100k as in ``din_movielens.py`` (rating >= 4 = click, the
  previous 20 movies and genres as history, latest 20% by time as test set). DeepCTR's
  DIEN runs on the same encoded ids in its own TensorFlow 2.12 graph-mode environment
  (``reference/deepctr_dien.py``; interpreter ``$DEEPCTR_DIEN_PYTHON``, default
  ``/opt/deepctr-tf212/bin/python``). Both use embedding 16 per feature, GRUs as wide as
  the behaviour (item + genre = 32), MLP 256-128 with ReLU, Adam 1e-3, batch 256 and
  auxiliary loss weight 1 with uniform negatives. DeepCTR builds the auxiliary loss only
  for AUGRU. The last line holds the ratios.

Usage: ``python benchmarks/dien_benchmark.py [--task both] [--epochs 2]
[--gru-types AUGRU,AGRU,AIGRU,GRU]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from _common import (
    emit,
    latency_ms,
    log,
    movielens_ctr,
    reference_python,
    require_shared_data,
    timed,
)
from din_movielens import SEQUENCES as MOVIELENS_SEQUENCES
from din_movielens import write_reference_data
from sklearn.metrics import roc_auc_score

from sklattn import DIENClassifier, DINClassifier, SequenceEncoder, SumPoolingClassifier
from sklattn.datasets import make_interest_sequences


def models(args, embedding_dim: int, epochs: int, learning_rate: float) -> dict:
    common = dict(
        embedding_dim=embedding_dim, hidden_units=(256, 128), activation="relu",
        epochs=epochs, batch_size=args.batch_size, learning_rate=learning_rate,
        random_state=0,
    )
    out = {
        f"DIEN-{g}": DIENClassifier(gru_type=g, **common) for g in args.gru_types.split(",")
    }
    out["DIN"] = DINClassifier(attention_units=(80, 40), **common)
    out["SumPooling"] = SumPoolingClassifier(**common)
    return out


def evaluate(name, est, E_train, y_train, E_test, y_test, task: str, **extra) -> dict:
    _, seconds = timed(lambda: est.fit(E_train, y_train))
    auc = roc_auc_score(y_test, est.predict_proba(E_test)[:, 1])
    p50, _ = latency_ms(lambda: est.predict_proba(E_test.iloc[[0]]), n_calls=100)
    record = dict(
        benchmark="dien", task=task, library="sklattn", model=name, auc=auc,
        fit_seconds=seconds, train_samples_per_s=len(E_train) * est.epochs / seconds,
        predict_1row_ms_p50=p50, **extra,
    )
    emit(**record)
    return record


def synthetic(args) -> None:
    X, y, p = make_interest_sequences(
        args.n_samples, recency_decay=0.6, return_proba=True, random_state=0
    )
    X = X.drop(columns="user")
    n_train = int(0.75 * len(X))
    encoder = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"})
    E_train = encoder.fit_transform(X.iloc[:n_train])
    E_test = encoder.transform(X.iloc[n_train:])
    optimum = roc_auc_score(y[n_train:], p[n_train:])
    for name, est in models(args, 8, args.synthetic_epochs, 3e-3).items():
        evaluate(name, est, E_train, y[:n_train], E_test, y[n_train:], "synthetic",
                 optimal_auc=optimum)


def movielens(args) -> None:
    if not require_shared_data():
        return
    X_train, X_test, y_train, y_test = movielens_ctr()
    encoder = SequenceEncoder(sequences=MOVIELENS_SEQUENCES, categorical=["user_id"])
    E_train = encoder.fit_transform(X_train)
    E_test = encoder.transform(X_test)
    ours = {
        name: evaluate(name, est, E_train, y_train, E_test, y_test, "movielens")
        for name, est in models(args, 16, args.epochs, args.learning_rate).items()
    }

    python = reference_python("DEEPCTR_DIEN_PYTHON", "/opt/deepctr-tf212/bin/python")
    if python is None:
        emit(benchmark="dien", task="movielens", library="deepctr", skipped="no environment")
        return
    script = Path(__file__).parent / "reference" / "deepctr_dien.py"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "movielens.npz"
        write_reference_data(data, encoder, E_train, E_test, y_train, y_test)
        for gru_type in args.gru_types.split(","):
            cmd = [
                python, str(script), "--data", str(data), "--gru-type", gru_type,
                "--embedding-dim", "16", "--hidden-units", "256,128",
                "--dnn-activation", "relu", "--epochs", str(args.epochs),
                "--batch-size", str(args.batch_size), "--learning-rate",
                str(args.learning_rate), "--seed", "0",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                log(done.stderr[-3000:])
                emit(benchmark="dien", task="movielens", library="deepctr", skipped="failed")
                continue
            ref = json.loads(done.stdout.strip().splitlines()[-1])
            emit(benchmark="dien", task="movielens", **ref)
            mine = ours[f"DIEN-{gru_type}"]
            emit(
                benchmark="dien", task="movielens", metric="ratios", gru_type=gru_type,
                auc_difference=mine["auc"] - ref["auc"],
                train_throughput_ratio=mine["train_samples_per_s"] / ref["train_samples_per_s"],
                latency_1row_ratio=ref["predict_1row_ms_p50"] / mine["predict_1row_ms_p50"],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["synthetic", "movielens", "both"], default="both")
    parser.add_argument("--n-samples", type=int, default=40000)
    parser.add_argument("--synthetic-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--gru-types", default="AUGRU")
    args = parser.parse_args()
    if args.task in ("synthetic", "both"):
        synthetic(args)
    if args.task in ("movielens", "both"):
        movielens(args)


if __name__ == "__main__":
    main()
