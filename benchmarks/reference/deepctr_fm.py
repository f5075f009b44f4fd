"""DeepCTR 0.9.4 AFM / NFM on prepared data: the reference run for ``benchmarks/afm_benchmark.py``.

Reads the ``.npz`` layout of ``deepctr_din.py`` (see its docstring: encoded ids written
by sklattn, histories left-padded with 0) and prints ONE JSON line with the same fields
as ``deepctr_din.py`` (AUC, fit throughput, one-row latencies). Runs in the DeepCTR
environment (TensorFlow 2.15, eager)::

    /opt/deepctr-env/bin/python benchmarks/reference/deepctr_fm.py --data data.npz \\
        --model AFM --embedding-dim 8 --attention-factor 8 --epochs 3

Every categorical column is one field, every history one field (its valid items' mean:
``VarLenSparseFeat(combiner="mean")``, sharing the candidate's table), numeric columns
are not supported by DeepCTR's AFM/NFM interaction part (``support_dense=False``) and go
to the linear part only. The same columns feed the linear part. Regularisation is
DeepCTR's default (L2 1e-5 on the linear weights, the embeddings and, for AFM, the
attention net) unless changed with ``--l2``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from deepctr_din import (  # noqa: E402
    feature_columns,
    fit_rates,
    fit_timed,
    import_deepctr,
    load_data,
    percentiles_ms,
    print_result,
    units,
)
from sklearn.metrics import roc_auc_score  # noqa: E402

PREDICT_BATCH = 4096


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", choices=("AFM", "NFM"), default="AFM")
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--attention-factor", type=int, default=8)
    parser.add_argument("--hidden-units", default="64")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--l2", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-calls", type=int, default=200)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(args.seed)
    deepctr, fc, models = import_deepctr()

    meta, X_train, X_test, y_train, y_test = load_data(args.data)
    columns = feature_columns(meta, args.embedding_dim, fc, combiner="mean")
    fields = [c for c in columns if not isinstance(c, fc.DenseFeat)]
    start = time.perf_counter()
    if args.model == "AFM":
        model = models.AFM(
            columns, fields, attention_factor=args.attention_factor,
            l2_reg_linear=args.l2, l2_reg_embedding=args.l2, l2_reg_att=args.l2,
            seed=args.seed,
        )
    else:
        model = models.NFM(
            columns, fields, dnn_hidden_units=units(args.hidden_units),
            l2_reg_linear=args.l2, l2_reg_embedding=args.l2, seed=args.seed,
        )
    build_seconds = time.perf_counter() - start
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=args.learning_rate),
        loss="binary_crossentropy",
    )
    first, rest = fit_timed(model, X_train, y_train, args)
    n_train = len(y_train)
    proba = model.predict(X_test, batch_size=PREDICT_BATCH, verbose=0).ravel()
    row = {name: values[:1] for name, values in X_test.items()}
    row_tensors = {name: tf.constant(values) for name, values in row.items()}
    predict_p50, _ = percentiles_ms(lambda: model.predict(row, verbose=0),
                                    calls=args.latency_calls)
    call_p50, _ = percentiles_ms(lambda: model(row_tensors, training=False),
                                 calls=args.latency_calls)
    return {
        "library": "deepctr",
        "library_version": deepctr.__version__,
        "tensorflow": tf.__version__,
        "model": args.model,
        "auc": float(roc_auc_score(y_test, proba)),
        "build_seconds": build_seconds,
        **fit_rates(n_train, args.epochs, first, rest),
        "predict_1row_ms_p50": predict_p50,
        "call_1row_ms_p50": call_p50,
        "n_train": n_train,
        "epochs": args.epochs,
    }


def main(argv=None) -> None:
    print_result(run, parse_args(argv))


if __name__ == "__main__":
    main()
