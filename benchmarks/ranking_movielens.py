"""Every ranking model against DeepCTR 0.9.4 on MovieLens-100k: AUC over seeds, throughput.

The click-through task of ``_common.movielens_ctr`` (rating >= 4 = click, the previous
20 movies and their genres as history, the latest 20% of ratings by time as test set).
DIN, the sum-pooling base model and DIEN see the user, the candidate movie and genre
and the two histories (as in ``din_movielens.py``); AFM and NFM see the user's
profile too, every column one field (as in ``afm_benchmark.py``).

Protocol: embedding 16 and 3 epochs in both libraries, batch 256, the same MLP
sizes; everything else at each library's own defaults, as a new user gets them
(sklattn's estimator defaults; DeepCTR's function defaults, e.g. ``l2_reg_embedding``,
embedding initialisation, DIN's ReLU MLP with a Dice attention unit, DIEN's MLP
attention; DIEN with AUGRU and negative sampling in both). For each model and seed
the two libraries train one after the other, so each pair shares the machine's state.

For DIN the summary also holds the bare step's throughput (``_floor.py``: the same
matrix shapes without embeddings, masking, Adam or loss) and sklattn's steady
throughput as a share of it.

Throughput: ``fit`` = training samples/s of the whole 3-epoch fit from a fresh model
(tracing and compilation included, as every ``GridSearchCV`` candidate pays it);
``steady`` = samples/s of a further epoch (sklattn: a warm-started ``fit`` of one
epoch; DeepCTR: its epochs 2-3).

DeepCTR runs in its own environments (``reference/deepctr_din.py``,
``reference/deepctr_fm.py``: ``$DEEPCTR_PYTHON``, default ``/opt/deepctr-env``;
``reference/deepctr_dien.py``: ``$DEEPCTR_DIEN_PYTHON``, default
``/opt/deepctr-tf212``); a missing one is reported as skipped. Prints one JSON line
per run and a summary line per model (AUC mean and range over the seeds, the
throughput ratios of the pairs).

Usage: ``python benchmarks/ranking_movielens.py [--models din,base,dien,afm,nfm]
[--seeds 0,1,2] [--epochs 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from _common import (
    emit,
    log,
    movielens_ctr,
    reference_python,
    require_shared_data,
    timed,
)
from _floor import din_step_floor
from din_movielens import write_reference_data
from sklearn.metrics import roc_auc_score

from sklattn import (
    AFMClassifier,
    DIENClassifier,
    DINClassifier,
    NFMClassifier,
    SequenceEncoder,
    SumPoolingClassifier,
)

HISTORY = {"hist_item_id": "item_id", "hist_genre": "genre"}
REFERENCE = Path(__file__).parent / "reference"
ESTIMATORS = {
    "din": DINClassifier,
    "base": SumPoolingClassifier,
    "dien": DIENClassifier,
    "afm": AFMClassifier,
    "nfm": NFMClassifier,
}


def tasks() -> dict:
    """Encoded data of the two column sets: ``"history"`` (DIN, base, DIEN) and ``"fields"``
    (AFM, NFM)."""
    out = {}
    X_train, X_test, y_train, y_test = movielens_ctr()
    encoder = SequenceEncoder(sequences=HISTORY, categorical=["user_id"])
    out["history"] = (encoder, encoder.fit_transform(X_train), encoder.transform(X_test),
                      y_train, y_test)
    X_train, X_test, y_train, y_test = movielens_ctr(
        user_columns=("gender", "age", "occupation", "zip_code")
    )
    encoder = SequenceEncoder(sequences=HISTORY, categorical=["user_id", "item_id", "age"])
    out["fields"] = (encoder, encoder.fit_transform(X_train), encoder.transform(X_test),
                     y_train, y_test)
    return out


def reference_command(model: str, data: Path, seed: int, est, args) -> list[str] | None:
    """The DeepCTR run of ``model`` with DeepCTR's defaults and ``est``'s MLP sizes."""
    common = ["--data", str(data), "--embedding-dim", str(args.embedding_dim),
              "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
              "--learning-rate", "0.001", "--seed", str(seed)]
    units = ",".join(str(u) for u in getattr(est, "hidden_units", ()))
    if model in ("din", "base"):
        python = reference_python("DEEPCTR_PYTHON", "/opt/deepctr-env/bin/python")
        extra = ["--model", "DIN" if model == "din" else "BASE", "--hidden-units", units,
                 "--dnn-activation", "relu", "--l2-reg-embedding", "1e-6"]
        if model == "din":
            extra += ["--attention-units", "80,40", "--att-activation", "dice"]
        script = "deepctr_din.py"
    elif model == "dien":
        python = reference_python("DEEPCTR_DIEN_PYTHON", "/opt/deepctr-tf212/bin/python")
        extra = ["--gru-type", "AUGRU", "--negsampling", "--alpha", "1.0",
                 "--hidden-units", units, "--attention-units", "64,16",
                 "--dnn-activation", "relu", "--att-activation", "dice",
                 "--l2-reg-embedding", "1e-6"]
        script = "deepctr_dien.py"
    else:
        python = reference_python("DEEPCTR_PYTHON", "/opt/deepctr-env/bin/python")
        extra = ["--model", model.upper(), "--attention-factor", "8"]
        if model == "nfm":
            extra += ["--hidden-units", units]
        script = "deepctr_fm.py"
    if python is None:
        return None
    return [python, str(REFERENCE / script), *common, *extra]


def run_reference(cmd: list[str]) -> dict | None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        log(done.stderr[-3000:])
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_sklattn(model: str, seed: int, data, args) -> tuple[dict, object]:
    _, E_train, E_test, y_train, y_test = data
    est = ESTIMATORS[model](embedding_dim=args.embedding_dim, epochs=args.epochs,
                            random_state=seed)
    _, seconds = timed(lambda: est.fit(E_train, y_train))
    auc = roc_auc_score(y_test, est.predict_proba(E_test)[:, 1])
    # One more epoch of the fitted model: the training step without tracing.
    est.set_params(warm_start=True, epochs=1)
    _, epoch_seconds = timed(lambda: est.fit(E_train, y_train))
    n = len(E_train)
    return dict(
        auc=float(auc), fit_seconds=seconds, fit_samples_per_s=n * args.epochs / seconds,
        steady_samples_per_s=n / epoch_seconds, xla=bool(est.model_.jit_compile),
    ), est


def bare_step(est, args) -> float:
    """Samples/s of the bare TensorFlow step with this DIN's shapes (``_floor.py``): no
    embeddings, masking, Adam or loss; the faster of XLA on and off."""
    width = next(int(w.shape[0]) for w in est.model_.weights
                 if len(w.shape) == 2 and w.shape[1] == est.hidden_units[0])
    return max(
        din_step_floor(activation=est.activation, batch_size=args.batch_size,
                       history_dim=2 * args.embedding_dim, mlp_input_dim=width,
                       jit_compile=jit)
        for jit in (False, True)
    )


def spread(values: list[float]) -> dict:
    return dict(mean=statistics.fmean(values), min=min(values), max=max(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="din,base,dien,afm,nfm")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-reference", action="store_true", help="sklattn only")
    args = parser.parse_args()
    if not require_shared_data():
        return
    data = tasks()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, (encoder, E_train, E_test, y_train, y_test) in data.items():
            files[name] = Path(tmp) / f"{name}.npz"
            write_reference_data(files[name], encoder, E_train, E_test, y_train, y_test)
        for model in args.models.split(","):
            task = "fields" if model in ("afm", "nfm") else "history"
            runs = {"sklattn": [], "deepctr": []}
            for seed in seeds:
                ours, est = run_sklattn(model, seed, data[task], args)
                emit(benchmark="ranking_movielens", model=model, library="sklattn",
                     seed=seed, **ours)
                runs["sklattn"].append(ours)
                cmd = None if args.no_reference else reference_command(
                    model, files[task], seed, est, args)
                ref = None if cmd is None else run_reference(cmd)
                if ref is None:
                    emit(benchmark="ranking_movielens", model=model, library="deepctr",
                         seed=seed, skipped="no reference environment or failed run")
                    continue
                ref = dict(auc=ref["auc"], fit_seconds=ref["fit_seconds"],
                           fit_samples_per_s=ref["train_samples_per_s"],
                           steady_samples_per_s=ref["train_samples_per_s_after_first_epoch"],
                           version=ref["library_version"], tensorflow=ref["tensorflow"])
                emit(benchmark="ranking_movielens", model=model, library="deepctr",
                     seed=seed, **ref)
                runs["deepctr"].append(ref)
            summary = {f"{lib}_auc": spread([r["auc"] for r in rs])
                       for lib, rs in runs.items() if rs}
            pairs = list(zip(runs["sklattn"], runs["deepctr"], strict=False))
            if pairs:
                for kind in ("fit", "steady"):
                    ratios = [a[f"{kind}_samples_per_s"] / b[f"{kind}_samples_per_s"]
                              for a, b in pairs]
                    summary[f"{kind}_throughput_ratio"] = dict(
                        median=statistics.median(ratios), all=[round(r, 2) for r in ratios])
                summary["auc_difference_of_means"] = (
                    summary["sklattn_auc"]["mean"] - summary["deepctr_auc"]["mean"])
            if model == "din":
                summary["floor"] = bare_step(est, args)
                summary["steady_over_floor"] = statistics.median(
                    r["steady_samples_per_s"] for r in runs["sklattn"]) / summary["floor"]
            emit(benchmark="ranking_movielens", model=model, metric="summary",
                 seeds=seeds, epochs=args.epochs, embedding_dim=args.embedding_dim, **summary)


if __name__ == "__main__":
    main()
