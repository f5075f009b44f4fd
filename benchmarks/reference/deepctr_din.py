"""DeepCTR 0.9.4 DIN on prepared data: the reference run for ``benchmarks/din_movielens.py``.

``din_movielens.py`` encodes MovieLens-100k with sklattn, writes the encoded ids to an
``.npz`` file and runs this script in a subprocess; this script trains DeepCTR's DIN
(or, with ``--model BASE``, the sum-pooling base model) on exactly those ids and prints
ONE JSON line on stdout (everything else goes to stderr)::

    {"library": "deepctr", "library_version": "0.9.4", "tensorflow": "2.15.1",
     "model": "DIN", "auc": ..., "fit_seconds": ..., "train_samples_per_s": ...,
     "train_samples_per_s_after_first_epoch": ..., "predict_1row_ms_p50": ...,
     "predict_1row_ms_p99": ..., "call_1row_ms_p50": ..., "call_1row_ms_p99": ...,
     "batch_predict_rows_per_s": ..., "n_train": ..., "n_test": ..., ...}

Environment
-----------
DeepCTR needs TensorFlow <= 2.15 (Keras 2) and sklattn needs Keras 3, so this script
runs in its own virtual environment and imports only numpy, scikit-learn, TensorFlow
and DeepCTR::

    python3.11 -m venv /opt/deepctr-env
    /opt/deepctr-env/bin/pip install "tensorflow==2.15.*" deepctr==0.9.4 "numpy<2" \\
        pandas scikit-learn

``din_movielens.py`` finds the interpreter through ``$DEEPCTR_PYTHON`` (default
``/opt/deepctr-env/bin/python``). By hand::

    /opt/deepctr-env/bin/python benchmarks/reference/deepctr_din.py --data data.npz \\
        --embedding-dim 8 --hidden-units 256,128 --attention-units 80,40 \\
        --dnn-activation relu --att-activation dice --epochs 3 --batch-size 256 \\
        --learning-rate 0.001 --seed 0 [--model DIN|BASE]

Input (``--data``)
------------------
An ``.npz`` with ``train__<feature>`` / ``test__<feature>`` arrays for every feature,
``y_train`` / ``y_test`` (float32 0/1) and a 0-d string array ``meta`` holding JSON::

    {"categorical": {"user_id": 945, "item_id": 1684, ...},   # feature -> vocabulary size
     "sequences": {"hist_item_id": {"vocabulary": "item_id", "maxlen": 20}, ...},
     "numeric": ["age"],
     "behavior_features": ["item_id", "genre"]}

Categorical arrays are int32 ``(n,)`` (0 = padding/missing, 1 = unknown), sequences
int32 ``(n, maxlen)`` left-padded with 0, numeric float32 ``(n,)``, already scaled.
DeepCTR pairs a behaviour feature ``f`` with the history feature ``hist_f``; the
history's ``embedding_name`` is its vocabulary, so history and candidate share one
embedding table, as in sklattn.

Models
------
``DIN``: ``deepctr.models.DIN`` (activation-unit attention over the behaviour
histories, ``l2_reg_embedding`` from ``--l2-reg-embedding``, default 0). ``BASE``:
DeepCTR has no separate "base model";
the nearest equivalent is ``deepctr.models.FNN`` with no linear part, whose DNN input
is the concatenated embeddings with every history sum-pooled (``combiner="sum"``,
padding masked) -- the embedding & MLP base model of the DIN paper.

Notes on DeepCTR 0.9.4 with TensorFlow 2.15
-------------------------------------------
* Eager execution (the TF 2 default, used unless ``--graph-mode``) works: DIN builds,
  trains with ``model.fit`` (which runs a ``tf.function``) and can be called directly
  as ``model(tensors, training=False)``. No eager-mode tweak is needed.
* DeepCTR's own DIN example calls ``tf.compat.v1.disable_eager_execution()``;
  ``--graph-mode`` does the same, for comparison. Keras then uses its TF1 training
  loop, which only accepts the legacy optimisers (``tf.keras.optimizers.Adam`` fails
  with "'Adam' object has no attribute 'get_updates'"), so ``tf.keras.optimizers.legacy.Adam``
  is used there. That loop has much less per-call overhead (``model.predict`` on one
  row took about 2 ms instead of about 70 ms on a 2-core CPU; training after epoch 1 on
  80k rows was within 10%), and the direct-call latency is reported as null because
  a graph-mode call returns a symbolic tensor.
  The JSON field ``eager`` says which mode ran.
* ``import deepctr`` starts a non-daemon thread that asks PyPI for newer versions
  (an HTTP request without a timeout, which can hold the interpreter open offline,
  and which prints to stdout on failure). It is switched off by pre-registering a
  stub ``deepctr.utils`` module before the import.
* Python-level prints of the libraries are routed to stderr so that stdout holds only
  the JSON line; TensorFlow's C++ logging is silenced with ``TF_CPP_MIN_LOG_LEVEL=3``.

Timing: ``fit_seconds`` is the wall clock of ``fit(epochs=1)`` plus the following
``fit`` over the remaining epochs (tracing included); ``train_samples_per_s_after_first_epoch``
uses only the latter (null for one epoch). One-row latencies are p50/p99 over 200 calls
after 20 warm-up calls, for ``model.predict(row, verbose=0)`` and for the eager
``model(row, training=False)``. ``batch_predict_rows_per_s`` is the median of 3 timed
``model.predict(test, batch_size=4096)`` calls after a warm-up call (the AUC one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

LATENCY_CALLS = 200
LATENCY_WARMUP = 20
PREDICT_BATCH = 4096


def import_deepctr():
    """Import deepctr without its import-time PyPI version check."""
    stub = types.ModuleType("deepctr.utils")
    stub.check_version = lambda version: None
    sys.modules.setdefault("deepctr.utils", stub)
    import deepctr
    from deepctr import feature_column, models

    return deepctr, feature_column, models


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz written by din_movielens.py")
    parser.add_argument("--model", choices=("DIN", "BASE"), default="DIN")
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--hidden-units", default="256,128")
    parser.add_argument("--attention-units", default="80,40")
    parser.add_argument("--dnn-activation", default="relu")
    parser.add_argument("--att-activation", default="dice")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l2-reg-embedding", type=float, default=0.0,
                        help="DeepCTR's l2_reg_embedding (its own default is 1e-6)")
    parser.add_argument(
        "--graph-mode", action="store_true",
        help="call tf.compat.v1.disable_eager_execution() first (not needed on TF 2.15)",
    )
    return parser.parse_args(argv)


def units(text: str) -> tuple[int, ...]:
    return tuple(int(u) for u in text.split(",") if u.strip())


def load_data(path: str):
    """(meta, train inputs, test inputs, y_train, y_test); inputs are dicts of arrays."""
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"][()]))
        arrays = {key: npz[key] for key in npz.files if key != "meta"}
    names = list(meta["categorical"]) + list(meta["sequences"]) + list(meta["numeric"])
    splits = []
    for split in ("train", "test"):
        inputs = {}
        for name in names:
            array = arrays[f"{split}__{name}"]
            if name in meta["sequences"]:
                inputs[name] = array.astype(np.int32)
            elif name in meta["numeric"]:
                inputs[name] = array.astype(np.float32).reshape(-1, 1)
            else:
                inputs[name] = array.astype(np.int32).reshape(-1, 1)
        splits.append(inputs)
    y_train = arrays["y_train"].astype(np.float32)
    y_test = arrays["y_test"].astype(np.float32)
    return meta, splits[0], splits[1], y_train, y_test


def feature_columns(meta: dict, embedding_dim: int, fc, combiner: str = "sum"):
    """DeepCTR feature columns; each history shares its vocabulary's embedding table
    and is pooled with ``combiner`` where a model pools it."""
    vocab_sizes = dict(meta["categorical"])
    columns = [
        fc.SparseFeat(name, vocabulary_size=size, embedding_dim=embedding_dim)
        for name, size in meta["categorical"].items()
    ]
    for name, seq in meta["sequences"].items():
        vocab = seq["vocabulary"]
        sparse = fc.SparseFeat(
            name, vocabulary_size=vocab_sizes[vocab], embedding_dim=embedding_dim,
            embedding_name=vocab,
        )
        columns.append(fc.VarLenSparseFeat(sparse, maxlen=seq["maxlen"], combiner=combiner))
    columns += [fc.DenseFeat(name, 1) for name in meta["numeric"]]
    return columns


def build_model(args: argparse.Namespace, meta: dict, fc, models):
    columns = feature_columns(meta, args.embedding_dim, fc)
    if args.model == "DIN":
        missing = [f for f in meta["behavior_features"] if f"hist_{f}" not in meta["sequences"]]
        if missing:
            raise ValueError(f"DeepCTR needs a history named hist_<feature> for {missing}")
        model = models.DIN(
            columns, list(meta["behavior_features"]),
            dnn_hidden_units=units(args.hidden_units),
            att_hidden_size=units(args.attention_units),
            dnn_activation=args.dnn_activation, att_activation=args.att_activation,
            l2_reg_embedding=args.l2_reg_embedding, seed=args.seed,
        )
    else:
        model = models.FNN(
            [], columns, dnn_hidden_units=units(args.hidden_units),
            dnn_activation=args.dnn_activation, l2_reg_embedding=args.l2_reg_embedding,
            l2_reg_linear=0,
            seed=args.seed,
        )
    # Graph mode (TF1-style Keras training loop) only accepts the legacy optimizers.
    adam = tf.keras.optimizers.legacy.Adam if args.graph_mode else tf.keras.optimizers.Adam
    model.compile(optimizer=adam(learning_rate=args.learning_rate), loss="binary_crossentropy")
    return model


def percentiles_ms(fn, calls: int = LATENCY_CALLS, warmup: int = LATENCY_WARMUP):
    for _ in range(warmup):
        fn()
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def fit_timed(model, X, y, args) -> tuple[float, float | None]:
    """Seconds of the first epoch and of the remaining epochs (None if there are none)."""
    kwargs = dict(batch_size=args.batch_size, verbose=0, shuffle=True)
    start = time.perf_counter()
    model.fit(X, y, epochs=1, **kwargs)
    first = time.perf_counter() - start
    if args.epochs <= 1:
        return first, None
    start = time.perf_counter()
    model.fit(X, y, initial_epoch=1, epochs=args.epochs, **kwargs)
    return first, time.perf_counter() - start


def fit_rates(n_train: int, epochs: int, first: float, rest: float | None) -> dict:
    """Training fields of the JSON line from the times of ``fit_timed``."""
    fit_seconds = first + (rest or 0.0)
    return {
        "fit_seconds": fit_seconds,
        "train_samples_per_s": n_train * epochs / fit_seconds,
        "train_samples_per_s_after_first_epoch": (
            None if rest is None else n_train * (epochs - 1) / rest
        ),
    }


def print_result(run, args: argparse.Namespace) -> None:
    """``run(args)`` with library prints sent to stderr; its dict as ONE JSON line on stdout."""
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args)
    print(json.dumps(result), file=stdout, flush=True)


def run(args: argparse.Namespace) -> dict:
    if args.graph_mode:
        tf.compat.v1.disable_eager_execution()
    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(args.seed)  # python, numpy and tensorflow
    deepctr, fc, models = import_deepctr()

    meta, X_train, X_test, y_train, y_test = load_data(args.data)
    n_train, n_test = len(y_train), len(y_test)
    model = build_model(args, meta, fc, models)

    first, rest = fit_timed(model, X_train, y_train, args)

    proba = model.predict(X_test, batch_size=PREDICT_BATCH, verbose=0).ravel()
    auc = float(roc_auc_score(y_test, proba))
    batch_seconds = []
    for _ in range(3):
        start = time.perf_counter()
        model.predict(X_test, batch_size=PREDICT_BATCH, verbose=0)
        batch_seconds.append(time.perf_counter() - start)

    row = {name: values[:1] for name, values in X_test.items()}
    predict_p50, predict_p99 = percentiles_ms(lambda: model.predict(row, verbose=0))
    call_p50 = call_p99 = None
    if tf.executing_eagerly():
        row_tensors = {name: tf.constant(values) for name, values in row.items()}
        call_p50, call_p99 = percentiles_ms(lambda: model(row_tensors, training=False))

    return {
        "library": "deepctr",
        "library_version": deepctr.__version__,
        "tensorflow": tf.__version__,
        "model": args.model,
        "auc": auc,
        **fit_rates(n_train, args.epochs, first, rest),
        "predict_1row_ms_p50": predict_p50,
        "predict_1row_ms_p99": predict_p99,
        "call_1row_ms_p50": call_p50,
        "call_1row_ms_p99": call_p99,
        "batch_predict_rows_per_s": n_test / float(np.median(batch_seconds)),
        "n_train": n_train,
        "n_test": n_test,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "embedding_dim": args.embedding_dim,
        "learning_rate": args.learning_rate,
        "eager": bool(tf.executing_eagerly()),
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
    }


def main(argv=None) -> None:
    print_result(run, parse_args(argv))


if __name__ == "__main__":
    main()
