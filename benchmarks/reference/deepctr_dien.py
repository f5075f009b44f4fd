"""DeepCTR 0.9.4 DIEN on prepared data: the reference run for a DIEN benchmark.

Trains ``deepctr.models.DIEN`` on the encoded ids that the benchmark writes to an
``.npz`` file (the layout of ``deepctr_din.py``, see "Input" there) and prints ONE JSON
line on stdout (everything else goes to stderr)::

    {"library": "deepctr", "library_version": "0.9.4", "tensorflow": "2.12.1",
     "model": "DIEN", "gru_type": "AUGRU", "negsampling": true, "alpha": 1.0,
     "auc": ..., "fit_seconds": ..., "train_samples_per_s": ...,
     "train_samples_per_s_after_first_epoch": ..., "predict_1row_ms_p50": ...,
     "predict_1row_ms_p99": ..., "call_1row_ms_p50": null, "call_1row_ms_p99": null,
     "batch_predict_rows_per_s": ..., "n_train": ..., "n_test": ..., ...}

The data loading, feature columns, timing helpers and the quiet ``import deepctr`` come
from ``deepctr_din.py`` in this folder; the fields and timing conventions are the same.

Environment
-----------
DeepCTR's DIEN does not build on TensorFlow 2.15, eager or not (its copy of TF1's
``dynamic_rnn`` fails with "module 'tensorflow.python.ops.array_ops' has no attribute
'stack'"), and on TensorFlow 2.12 only in graph mode (eager: "tf.device does not support
functions when eager execution is enabled"). It therefore runs in its own virtual
environment, separate from the TF 2.15 one of ``deepctr_din.py``::

    python3.11 -m venv /opt/deepctr-tf212
    /opt/deepctr-tf212/bin/pip install "tensorflow==2.12.*" deepctr==0.9.4 "numpy<1.24" \\
        "h5py<3.12" pandas scikit-learn

By hand::

    /opt/deepctr-tf212/bin/python benchmarks/reference/deepctr_dien.py --data data.npz \\
        --gru-type AUGRU --negsampling --alpha 1.0 --embedding-dim 8 \\
        --hidden-units 256,128 --attention-units 64,16 --dnn-activation relu \\
        --att-activation dice --epochs 3 --batch-size 256 --learning-rate 0.001 --seed 0

Input conversion
----------------
* The first behaviour feature (``item_id``) is the item; every sequence of the file must
  be a behaviour history ``hist_<feature>`` (DeepCTR pairs ``f`` with ``hist_f``), and
  each history shares its vocabulary's embedding table with the candidate feature.
* Padding: DeepCTR's DIEN masks by length, not by id. Its GRUs are ``dynamic_rnn`` with
  ``sequence_length`` (the first ``seq_length`` steps are run, the rest give zero
  outputs and keep the state), its attention masks with
  ``tf.sequence_mask(seq_length)`` and its auxiliary loss with
  ``tf.sequence_mask(seq_length - 1)``, so it expects RIGHT-padded histories (as in
  DeepCTR's own DIEN example). The file's histories are left-padded with 0, so each row
  is rotated to put its valid ids first, oldest to newest, padding after them.
  ``seq_length`` (an int32 ``(n, 1)`` input, DeepCTR's ``length_name``) is the number
  of non-zero ids of the first behaviour history; all histories use it.
* Negative sampling (``--negsampling``, the default): ``neg_hist_<feature>`` inputs with
  the same embedding tables. For every valid history position an item is drawn
  uniformly from ids ``2 .. vocabulary-1`` (0 = padding and 1 = unknown never), redrawn
  while it equals the position's item (numpy, seeded by ``--seed``); its other behaviour
  features (e.g. ``genre``) are the item's own values: the most frequent value seen with
  the item in the training candidate and history columns (1 = unknown for items never
  seen). Padding positions stay 0. Test rows get negatives too (only the loss uses them).
  DeepCTR builds the auxiliary loss only for ``gru_type="AUGRU"`` (for the other types
  ``use_negsampling=True`` fails with ``alpha * None``), so with another GRU type
  negative sampling is switched off, with a note on stderr; the JSON field
  ``negsampling`` says whether it was used.

Model notes (DeepCTR 0.9.4)
---------------------------
* The GRU input is the concatenated behaviour embeddings (item and genre); both GRUs
  have as many units as that width. The attention is DIN's activation unit (MLP over
  ``[q, k, q-k, q*k]``, ``--att-activation``, DeepCTR's default ``dice``) with
  ``att_weight_normalization=True`` (softmax over the valid steps). ``GRU``: attention
  pooling over the outputs of a second GRU; ``AIGRU``: the first GRU's outputs scaled by
  the scores feed a plain GRU; ``AGRU``/``AUGRU``: the scores drive the second GRU's
  update, whose final state is the interest.
* DeepCTR's AUGRU (copied from the DIEN authors' code) computes
  ``u' = (1 - a) * u`` and ``h = u' * h_prev + (1 - u') * h~`` with ``u`` the keep
  gate, not the paper's ``h = (1 - a*z) * h_prev + a*z * h~``: a score of 0 leaves a
  plain GRU step rather than skipping the step.
* The auxiliary loss is ``mean(-log p(h_t, e_{t+1}) - log(1 - p(h_t, e~_{t+1})))`` with
  an MLP ``100-50-1`` (all sigmoid) on ``[h_t, e]``, a mean over all ``T-1`` positions
  of the batch with padded ones zeroed (so divided by ``T-1``, not by the valid count),
  added to the loss times ``--alpha``.
* ``l2_reg_embedding`` from ``--l2-reg-embedding`` (default 0; DeepCTR's is 1e-6); the
  DNN defaults to ``256,128`` (DeepCTR's DIEN default is ``256,128,64``).

Graph mode
----------
``tf.compat.v1.disable_eager_execution()`` is called before anything is built (DIEN's
TF1-style GRU loop needs it; DeepCTR's DIEN example does the same). Keras then uses its
TF1 training loop, which only accepts the legacy optimisers, so
``tf.keras.optimizers.legacy.Adam`` is used, and the direct-call latency
(``call_1row_ms_*``) is null because a graph-mode call returns a symbolic tensor.
``fit_seconds`` is the wall clock of ``fit(epochs=1)`` plus the following ``fit`` over
the remaining epochs (graph building included); see ``deepctr_din.py`` for the latency
and batch-prediction conventions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from deepctr_din import (  # noqa: E402
    PREDICT_BATCH,
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

GRU_TYPES = ("GRU", "AIGRU", "AGRU", "AUGRU")
LENGTH_NAME = "seq_length"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz in the layout of deepctr_din.py")
    parser.add_argument("--gru-type", choices=GRU_TYPES, default="AUGRU")
    parser.add_argument(
        "--negsampling", action=argparse.BooleanOptionalAction, default=True,
        help="auxiliary loss on sampled negatives (DeepCTR: AUGRU only)",
    )
    parser.add_argument("--alpha", type=float, default=1.0, help="auxiliary loss weight")
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--hidden-units", default="256,128")
    parser.add_argument("--attention-units", default="64,16")
    parser.add_argument("--dnn-activation", default="relu")
    parser.add_argument("--att-activation", default="dice")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l2-reg-embedding", type=float, default=0.0,
                        help="DeepCTR's l2_reg_embedding (its own default is 1e-6)")
    return parser.parse_args(argv)


def history_names(meta: dict) -> list[str]:
    """``hist_<feature>`` for each behaviour feature; they must be all the sequences."""
    names = [f"hist_{f}" for f in meta["behavior_features"]]
    missing = [name for name in names if name not in meta["sequences"]]
    extra = [name for name in meta["sequences"] if name not in names]
    if missing or extra:
        raise ValueError(
            f"DIEN needs exactly the histories {names}; missing {missing}, unexpected {extra}"
        )
    return names


def to_right_padded(X: dict, names: list[str]) -> None:
    """Rotate left-padded histories (in place) so the valid ids come first; add seq_length."""
    first = X[names[0]]
    maxlen = first.shape[1]
    lengths = (first != 0).sum(axis=1)
    positions = np.arange(maxlen)
    valid = positions[None, :] < lengths[:, None]
    shift = (positions[None, :] + (maxlen - lengths)[:, None]) % maxlen
    if not np.array_equal(np.take_along_axis(first, shift, axis=1) != 0, valid):
        raise ValueError(f"{names[0]} is not left-padded with 0")
    for name in names:
        X[name] = np.where(valid, np.take_along_axis(X[name], shift, axis=1), 0)
    X[LENGTH_NAME] = lengths.astype(np.int32).reshape(-1, 1)


def item_side_tables(meta: dict, X: dict) -> dict[str, np.ndarray]:
    """For each non-item behaviour feature, its most frequent value per item (1 if unseen)."""
    item, *others = meta["behavior_features"]
    n_items = meta["categorical"][item]
    tables = {}
    for feature in others:
        n_values = meta["categorical"][feature]
        items = np.concatenate([X[item].ravel(), X[f"hist_{item}"].ravel()]).astype(np.int64)
        values = np.concatenate([X[feature].ravel(), X[f"hist_{feature}"].ravel()])
        keep = (items != 0) & (values != 0)
        counts = np.bincount(
            items[keep] * n_values + values[keep], minlength=n_items * n_values
        ).reshape(n_items, n_values)
        table = counts.argmax(axis=1).astype(np.int32)
        table[counts.max(axis=1) == 0] = 1
        tables[feature] = table
    return tables


def add_negatives(meta: dict, X: dict, tables: dict, rng: np.random.Generator) -> None:
    """Add ``neg_hist_<feature>`` arrays (in place) to right-padded histories."""
    item, *others = meta["behavior_features"]
    positives = X[f"hist_{item}"]
    valid = positives != 0
    high = meta["categorical"][item]
    negatives = rng.integers(2, high, size=positives.shape)
    clash = valid & (negatives == positives)
    while clash.any():
        negatives[clash] = rng.integers(2, high, size=int(clash.sum()))
        clash = valid & (negatives == positives)
    negatives = np.where(valid, negatives, 0).astype(np.int32)
    X[f"neg_hist_{item}"] = negatives
    for feature in others:
        X[f"neg_hist_{feature}"] = np.where(valid, tables[feature][negatives], 0).astype(np.int32)


def dien_feature_columns(meta: dict, embedding_dim: int, fc, negsampling: bool):
    """DIN's columns with seq_length on the histories, plus neg_hist_<feature> columns."""
    columns = []
    negative_columns = []
    for column in feature_columns(meta, embedding_dim, fc):
        if isinstance(column, fc.VarLenSparseFeat):
            column = column._replace(length_name=LENGTH_NAME)
            negative = column.sparsefeat._replace(name=f"neg_{column.name}")
            negative_columns.append(column._replace(sparsefeat=negative))
        columns.append(column)
    return columns + (negative_columns if negsampling else [])


def build_model(args: argparse.Namespace, meta: dict, negsampling: bool, fc, models):
    columns = dien_feature_columns(meta, args.embedding_dim, fc, negsampling)
    model = models.DIEN(
        columns, list(meta["behavior_features"]), gru_type=args.gru_type,
        use_negsampling=negsampling, alpha=args.alpha,
        dnn_hidden_units=units(args.hidden_units), dnn_activation=args.dnn_activation,
        att_hidden_units=units(args.attention_units), att_activation=args.att_activation,
        att_weight_normalization=True, l2_reg_embedding=args.l2_reg_embedding, seed=args.seed,
    )
    # Graph mode (TF1-style Keras training loop) only accepts the legacy optimizers.
    adam = tf.keras.optimizers.legacy.Adam(learning_rate=args.learning_rate)
    model.compile(optimizer=adam, loss="binary_crossentropy")
    return model


def run(args: argparse.Namespace) -> dict:
    tf.compat.v1.disable_eager_execution()
    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(args.seed)  # python, numpy and tensorflow
    deepctr, fc, models = import_deepctr()

    negsampling = args.negsampling and args.gru_type == "AUGRU"
    if args.negsampling and not negsampling:
        print(
            f"note: DeepCTR's DIEN has no auxiliary loss for gru_type={args.gru_type}; "
            "running without negative sampling", file=sys.stderr,
        )

    meta, X_train, X_test, y_train, y_test = load_data(args.data)
    names = history_names(meta)
    for X in (X_train, X_test):
        to_right_padded(X, names)
    if negsampling:
        rng = np.random.default_rng(args.seed)
        tables = item_side_tables(meta, X_train)
        for X in (X_train, X_test):
            add_negatives(meta, X, tables, rng)
    n_train, n_test = len(y_train), len(y_test)
    model = build_model(args, meta, negsampling, fc, models)

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

    return {
        "library": "deepctr",
        "library_version": deepctr.__version__,
        "tensorflow": tf.__version__,
        "model": "DIEN",
        "gru_type": args.gru_type,
        "negsampling": negsampling,
        "alpha": args.alpha if negsampling else None,
        "auc": auc,
        **fit_rates(n_train, args.epochs, first, rest),
        "predict_1row_ms_p50": predict_p50,
        "predict_1row_ms_p99": predict_p99,
        "call_1row_ms_p50": None,  # graph mode: a direct call returns a symbolic tensor
        "call_1row_ms_p99": None,
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
