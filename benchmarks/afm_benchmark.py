"""AFM and NFM: MovieLens-100k against DeepCTR 0.9.4, and the cost of pairs at 10-100 fields.

Two tasks, JSON lines:

* ``movielens``: MovieLens-100k as a click-through task (rating >= 4 = click, the latest
  20% of ratings by time as test set, see ``_common.movielens_ctr``). Fields: user,
  movie, genre, gender, age, occupation, zip code and, unless ``--no-history``, the
  previous 20 movies and their genres (each history one field: the mean of its
  embeddings, sharing the candidate's table). sklattn's AFM and NFM, a one-hot
  logistic regression, and DeepCTR's AFM and NFM on the same encoded ids in their own
  TensorFlow 2.15 environment (``reference/deepctr_fm.py``; interpreter
  ``$DEEPCTR_PYTHON``, default ``/opt/deepctr-env/bin/python``). Embedding 8, attention
  factor 8, NFM MLP (64,), Adam, batch 256, ``--epochs`` 3. The last lines hold the ratios.
* ``fields``: :func:`sklattn.datasets.make_field_interactions` with 10, 30 and 100
  fields (45, 435 and 4950 pairs): training samples/s in the first epoch (tracing
  included) and in a second one, one-row latency, for sklattn's AFM and NFM, the same
  AFM graph fitted through raw Keras, and DeepCTR's AFM (which builds its pairs with a
  Python loop over ``itertools.combinations``).

Usage: ``python benchmarks/afm_benchmark.py [--task both] [--epochs 3] [--no-history]
[--plot docs/afm_importances.png]``
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
from din_movielens import write_reference_data
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from sklattn import AFMClassifier, NFMClassifier, SequenceEncoder
from sklattn._backend import keras
from sklattn._data import to_arrays
from sklattn.datasets import make_field_interactions
from sklattn.models.afm import build_fm_graph

TABULAR = ["user_id", "item_id", "genre", "gender", "age", "occupation", "zip_code"]
HISTORY = {"hist_item_id": "item_id", "hist_genre": "genre"}
SCRIPT = Path(__file__).parent / "reference" / "deepctr_fm.py"


def reference(python: str | None, data: Path, model: str, args, **extra) -> dict | None:
    if python is None:
        return None
    cmd = [
        python, str(SCRIPT), "--data", str(data), "--model", model,
        "--embedding-dim", "8", "--attention-factor", "8", "--hidden-units", "64",
        "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
        "--seed", "0",
    ]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        log(done.stderr[-3000:])
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def movielens(args, python: str | None) -> None:
    if not require_shared_data():
        return
    X_train, X_test, y_train, y_test = movielens_ctr(
        user_columns=("gender", "age", "occupation", "zip_code")
    )
    history = not args.no_history
    if not history:
        X_train, X_test = X_train[TABULAR], X_test[TABULAR]
    encoder = SequenceEncoder(sequences=HISTORY if history else None,
                              categorical=["user_id", "item_id", "age"])
    E_train = encoder.fit_transform(X_train)
    E_test = encoder.transform(X_test)
    task = dict(benchmark="afm", task="movielens", history=history, n_train=len(E_train),
                n_test=len(E_test), epochs=args.epochs)

    onehot = OneHotEncoder(handle_unknown="ignore").fit(X_train[TABULAR].astype(str))
    lr, seconds = timed(lambda: LogisticRegression(max_iter=1000, C=0.1).fit(
        onehot.transform(X_train[TABULAR].astype(str)), y_train))
    test_onehot = onehot.transform(X_test[TABULAR].astype(str))
    auc = roc_auc_score(y_test, lr.predict_proba(test_onehot)[:, 1])
    emit(**task, library="scikit-learn", model="one-hot LogisticRegression", auc=auc,
         fit_seconds=seconds)

    common = dict(embedding_dim=8, epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, random_state=0)
    ours = {}
    for name, est in (
        ("AFM", AFMClassifier(attention_factor=8, **common)),
        ("NFM", NFMClassifier(hidden_units=(64,), **common)),
    ):
        _, seconds = timed(lambda est=est: est.fit(E_train, y_train))
        p50, _ = latency_ms(lambda est=est: est.predict_proba(E_test.iloc[[0]]), n_calls=200)
        ours[name] = dict(
            auc=roc_auc_score(y_test, est.predict_proba(E_test)[:, 1]), fit_seconds=seconds,
            train_samples_per_s=len(E_train) * args.epochs / seconds, predict_1row_ms_p50=p50,
        )
        emit(**task, library="sklattn", model=name, **ours[name])
        if name == "AFM":
            importances = est.interaction_importances(E_test)
            emit(**task, library="sklattn", model="AFM", top_pairs=[
                [a, b, round(float(w), 4)]
                for a, b, w in importances.head(5).itertuples(index=False)])
            if args.plot:
                save_heat_map(importances, args.plot)

    if python is None:
        emit(**task, library="deepctr", skipped="no DeepCTR environment")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "movielens_fm.npz"
        write_reference_data(data, encoder, E_train, E_test, y_train, y_test)
        for name in ("AFM", "NFM"):
            ref = reference(python, data, name, args, epochs=args.epochs)
            if ref is None:
                emit(**task, library="deepctr", model=name, skipped="reference run failed")
                continue
            emit(**{**task, **ref})
            emit(
                **task, metric="ratios", model=name,
                auc_difference=ours[name]["auc"] - ref["auc"],
                train_throughput_ratio=ours[name]["train_samples_per_s"]
                / ref["train_samples_per_s"],
                latency_1row_ratio=ref["predict_1row_ms_p50"] / ours[name]["predict_1row_ms_p50"],
            )


def save_heat_map(importances, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from sklattn.plotting import plot_interaction_importances

    ax = plot_interaction_importances(importances)
    ax.set_title("AFM on MovieLens-100k: mean attention weight of each field pair")
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=110)
    log(f"saved {path}")


def raw_keras_throughput(schema, ids: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Samples/s of the second epoch of the same AFM graph compiled and fitted by hand."""
    keras.utils.set_random_seed(0)
    model = build_fm_graph(schema, interaction="attention", embedding_dim=8,
                           attention_factor=8).model
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  steps_per_execution=16)
    model.fit([ids], y, batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit([ids], y, batch_size=batch_size, epochs=1, verbose=0)
    return len(y) / (time.perf_counter() - start)


def two_epochs(est, E_train, y_train, E_test) -> dict:
    """Throughput of a first epoch (tracing included) and of a second, warm-started one
    (same compiled step), and the one-row latency."""
    n = len(E_train)
    _, first = timed(lambda: est.fit(E_train, y_train))
    _, second = timed(lambda: est.fit(E_train, y_train))
    p50, _ = latency_ms(lambda: est.predict_proba(E_test.iloc[[0]]), n_calls=100)
    return dict(train_samples_per_s_first_epoch=n / first, train_samples_per_s=n / second,
                predict_1row_ms_p50=p50)


def fields(args, python: str | None) -> None:
    for n_fields in (10, 30, 100):
        X, y = make_field_interactions(args.n_samples + 2000, n_fields=n_fields,
                                       n_categories=50, random_state=0)
        n = args.n_samples
        encoder = SequenceEncoder()
        E_train, E_test = encoder.fit_transform(X.iloc[:n]), encoder.transform(X.iloc[n:])
        task = dict(benchmark="afm", task="fields", n_fields=n_fields,
                    n_pairs=n_fields * (n_fields - 1) // 2, n_train=n)
        ours = {}
        for name, est in (
            ("AFM", AFMClassifier(embedding_dim=8, attention_factor=8, epochs=1,
                                  batch_size=args.batch_size, random_state=0,
                                  warm_start=True)),
            ("NFM", NFMClassifier(embedding_dim=8, hidden_units=(64,), epochs=1,
                                  batch_size=args.batch_size, random_state=0,
                                  warm_start=True)),
        ):
            ours[name] = two_epochs(est, E_train, y[:n], E_test)
            emit(**task, library="sklattn", model=name, **ours[name])
        ids, _ = to_arrays(est, E_train)
        raw = raw_keras_throughput(est.schema_, ids, y[:n].astype("float32"), args.batch_size)
        emit(**task, library="raw Keras (same AFM graph)", train_samples_per_s=raw,
             wrapper_throughput_ratio=ours["AFM"]["train_samples_per_s"] / raw)
        if python is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "fields.npz"
            write_reference_data(data, encoder, E_train, E_test, y[:n], y[n:])
            ref = reference(python, data, "AFM", args, epochs=2, latency_calls=50)
        if ref is None:
            emit(**task, library="deepctr", model="AFM", skipped="reference run failed")
            continue
        ref.pop("auc", None)  # one epoch on random-ish data: not a quality comparison
        emit(**{**task, **ref})
        emit(
            **task, metric="ratios", model="AFM",
            train_throughput_ratio=ours["AFM"]["train_samples_per_s"]
            / ref["train_samples_per_s_after_first_epoch"],
            first_epoch_throughput_ratio=ours["AFM"]["train_samples_per_s_first_epoch"]
            / (n / (ref["fit_seconds"] - n / ref["train_samples_per_s_after_first_epoch"])),
            latency_1row_ratio=ref["predict_1row_ms_p50"] / ours["AFM"]["predict_1row_ms_p50"],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["movielens", "fields", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--no-history", action="store_true",
                        help="MovieLens with the tabular fields only")
    parser.add_argument("--plot", metavar="PNG",
                        help="save the heat map of AFM's MovieLens importances here")
    args = parser.parse_args()
    python = reference_python("DEEPCTR_PYTHON", "/opt/deepctr-env/bin/python")
    if args.task in ("movielens", "both"):
        movielens(args, python)
    if args.task in ("fields", "both"):
        fields(args, python)


if __name__ == "__main__":
    main()
