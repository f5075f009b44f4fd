"""DIN on MovieLens-100k: sklattn against DeepCTR 0.9.4's DIN in the same run.

The task (see ``_common.movielens_ctr``): every rating is an impression, rating >= 4
a click; history = the user's previous 20 rated movies and their genres; the latest
20% of ratings (by time) are the test set. Both libraries get the same encoded ids
and the same graph (embedding 8, MLP 256-128, activation unit 80-40, ``--activation``
in both MLPs, Dice by default),
the same optimiser, batch size and epochs.

DeepCTR needs TensorFlow <= 2.15, so it runs in its own environment
(``benchmarks/reference/deepctr_din.py``; interpreter from ``$DEEPCTR_PYTHON``,
default ``/opt/deepctr-env/bin/python``). Without it the reference lines are
reported as skipped. Prints JSON lines; the last one holds the ratios.

Usage: ``python benchmarks/din_movielens.py [--epochs 2]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
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
from _floor import din_step_floor
from sklearn.metrics import roc_auc_score

from sklattn import DINClassifier, SequenceEncoder

SEQUENCES = {"hist_item_id": "item_id", "hist_genre": "genre"}
LAYERS = dict(embedding_dim=8, hidden_units=(256, 128), attention_units=(80, 40))


def write_reference_data(path: Path, encoder, E_train, E_test, y_train, y_test) -> None:
    """Encoded ids in the layout the reference scripts read (see their docstrings)."""
    schema = encoder.schema_
    arrays = {"y_train": y_train.astype(np.float32), "y_test": y_test.astype(np.float32)}
    for split, E in (("train", E_train), ("test", E_test)):
        for name, (cols, _) in schema.sequences.items():
            arrays[f"{split}__{name}"] = E[cols].to_numpy(np.int32)
        for col in schema.categorical:
            arrays[f"{split}__{col}"] = E[col].to_numpy(np.int32)
        for col in schema.numeric:
            arrays[f"{split}__{col}"] = E[col].to_numpy(np.float32)
    meta = {
        "categorical": {c: schema.vocabulary_sizes[v] for c, v in schema.categorical.items()},
        "sequences": {
            name: {"vocabulary": vocab, "maxlen": len(cols)}
            for name, (cols, vocab) in schema.sequences.items()
        },
        "numeric": list(schema.numeric),
        "behavior_features": [vocab for _, vocab in schema.sequences.values()],
    }
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def run_reference(python: str, data: Path, args) -> dict | None:
    script = Path(__file__).parent / "reference" / "deepctr_din.py"
    cmd = [
        python, str(script), "--data", str(data), "--embedding-dim", "8",
        "--hidden-units", "256,128", "--attention-units", "80,40",
        "--dnn-activation", args.activation, "--att-activation", args.activation,
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--learning-rate", str(args.learning_rate), "--seed", "0",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        log(done.stderr[-3000:])
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--activation", default="dice",
        help="activation of both MLPs in both libraries (dice, prelu, relu)",
    )
    args = parser.parse_args()
    if not require_shared_data():
        return

    X_train, X_test, y_train, y_test = movielens_ctr()
    encoder = SequenceEncoder(sequences=SEQUENCES, categorical=["user_id"])
    E_train = encoder.fit_transform(X_train)
    E_test = encoder.transform(X_test)

    din = DINClassifier(
        **LAYERS, activation=args.activation, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, random_state=0,
    )
    _, seconds = timed(lambda: din.fit(E_train, y_train))
    auc = roc_auc_score(y_test, din.predict_proba(E_test)[:, 1])
    p50, p99 = latency_ms(lambda: din.predict_proba(E_test.iloc[[0]]))
    ours = dict(
        auc=auc, fit_seconds=seconds,
        train_samples_per_s=len(E_train) * args.epochs / seconds,
        predict_1row_ms_p50=p50, predict_1row_ms_p99=p99,
    )
    emit(benchmark="din_movielens", library="sklattn", activation=args.activation,
         n_train=len(E_train),
         n_test=len(E_test), epochs=args.epochs, xla=bool(din.model_.jit_compile), **ours)

    # The bare step's throughput on this machine: no implementation of this graph
    # with TensorFlow's CPU kernels trains faster (see _floor.py).
    mlp_input_dim = next(
        int(w.shape[0]) for w in din.model_.weights
        if len(w.shape) == 2 and w.shape[1] == LAYERS["hidden_units"][0]
    )
    floor = max(
        din_step_floor(activation=args.activation, batch_size=args.batch_size,
                       history_dim=2 * LAYERS["embedding_dim"], mlp_input_dim=mlp_input_dim,
                       jit_compile=jit)
        for jit in (False, True)
    )
    emit(benchmark="din_movielens", library="bare TensorFlow step (compute floor)",
         activation=args.activation, train_samples_per_s=floor)

    python = reference_python("DEEPCTR_PYTHON", "/opt/deepctr-env/bin/python")
    if python is None:
        emit(benchmark="din_movielens", library="deepctr", skipped="no DeepCTR environment")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "movielens_din.npz"
        write_reference_data(data, encoder, E_train, E_test, y_train, y_test)
        ref = run_reference(python, data, args)
    if ref is None:
        emit(benchmark="din_movielens", library="deepctr", skipped="reference run failed")
        return
    emit(benchmark="din_movielens", **ref)
    emit(
        benchmark="din_movielens", metric="ratios", activation=args.activation,
        auc_difference=auc - ref["auc"],
        train_throughput_ratio=ours["train_samples_per_s"] / ref["train_samples_per_s"],
        floor_throughput_ratio=floor / ref["train_samples_per_s"],
        latency_1row_ratio_vs_predict=ref["predict_1row_ms_p50"] / p50,
        latency_1row_ratio_vs_call=ref["call_1row_ms_p50"] / p50,
    )


if __name__ == "__main__":
    main()
