"""DeepCTR 0.9.4 BST on prepared data: the reference run for a BST (CTR) benchmark.

Trains ``deepctr.models.BST`` (Behavior Sequence Transformer) on the encoded ids that
the benchmark writes to an ``.npz`` file (the layout of ``deepctr_din.py``, see "Input"
there) and prints ONE JSON line on stdout (everything else goes to stderr)::

    {"library": "deepctr", "library_version": "0.9.4", "tensorflow": "2.15.1",
     "model": "BST", "auc": ..., "fit_seconds": ..., "train_samples_per_s": ...,
     "train_samples_per_s_after_first_epoch": ..., "predict_1row_ms_p50": ...,
     "predict_1row_ms_p99": ..., "call_1row_ms_p50": ..., "call_1row_ms_p99": ...,
     "batch_predict_rows_per_s": ..., "n_train": ..., "n_test": ..., ...}

The data loading, feature columns, timing helpers and the quiet ``import deepctr`` come
from ``deepctr_din.py`` in this folder (importing it has no side effects beyond
importing TensorFlow quietly); the fields and timing conventions are the same.

Environment
-----------
The environment of ``deepctr_din.py`` (TensorFlow 2.15, Keras 2)::

    python3.11 -m venv /opt/deepctr-env
    /opt/deepctr-env/bin/pip install "tensorflow==2.15.*" deepctr==0.9.4 "numpy<2" \\
        pandas scikit-learn

(resolved here to tensorflow 2.15.1, keras 2.15.0, numpy 1.26.4). By hand::

    /opt/deepctr-env/bin/python benchmarks/reference/deepctr_bst.py --data data.npz \\
        --embedding-dim 8 --hidden-units 256,128,64 --dnn-activation relu \\
        --n-blocks 1 --n-heads 8 --dropout 0.0 --epochs 3 --batch-size 256 \\
        --learning-rate 0.001 --seed 0 [--history-order recent-first|chronological]

BST builds, trains and can be called directly with eager execution on TensorFlow 2.15
(unlike DeepCTR's DIEN); ``--graph-mode`` calls ``tf.compat.v1.disable_eager_execution()``
first, as in ``deepctr_din.py`` (legacy Adam, ``call_1row_ms_*`` null).

What DeepCTR 0.9.4's BST computes (``deepctr/models/sequence/bst.py``)
----------------------------------------------------------------------
* Inputs: every ``SparseFeat`` (user id, candidate item, its genre, ...) is embedded;
  the histories ``hist_<f>`` of the behaviour features ``f`` (``history_feature_list``)
  are embedded with the candidate's tables (``embedding_name``) and concatenated per
  position, so the sequence width is ``n_behaviour_features * embedding_dim`` (16 for
  item and genre at dimension 8). Other variable-length features would be pooled with
  their combiner; dense features join the MLP input.
* The candidate (target) item is NOT in the transformer: the transformer runs over the
  history alone (self-attention, queries = keys = values = the history).
* ``transformer_num`` (``--n-blocks``) layers of DeepCTR's ``Transformer`` with
  ``att_head_num`` (``--n-heads``) heads of ``width / n_heads`` dimensions each: Q, K and
  V projections without bias and no output projection; scaled dot-product attention
  with keys beyond ``seq_length`` masked and the attention rows of padded queries
  zeroed; dropout on the attention weights; residual + LayerNorm; feed-forward
  ``width -> 4 * width`` (ReLU, no biases) with dropout on its hidden layer; residual +
  LayerNorm. Both LayerNorms of a layer are ONE layer (shared scale and shift,
  epsilon 1e-9). The dropout rate is the model's ``dnn_dropout`` (``--dropout``), which
  also drops the MLP's units.
* Positions: each transformer layer adds two trainable position tables of shape
  ``(maxlen, width)``, initialised to the sinusoids of "Attention is all you need",
  one to the queries' and one to the keys' input (the same tensor here: Q comes from
  history + table 1, K and V from history + table 2, the residual is history + table
  1), each scaled by ``sqrt(width)``. They are indexed by array position 0 ..
  maxlen-1, not by time.
* Pooling: DIN's attention pooling (``AttentionSequencePoolingLayer``, MLP ``64-16``
  with sigmoid activations on ``[q, k, q-k, q*k]``, softmax over the valid positions)
  of the transformer outputs with the candidate's behaviour embeddings as the query.
  This replaces the paper's design (the target appended to the sequence, all outputs
  flattened into the MLP).
* MLP input: all sparse-feature embeddings (user, candidate item and genre, ...), the
  pooled vector and the dense features, concatenated; ``dnn_hidden_units``
  (``--hidden-units``, DeepCTR's default ``256,128,64``) with ``--dnn-activation``,
  then a bias-free ``Dense(1)`` and DeepCTR's prediction layer (bias + sigmoid).
  Loss: binary cross-entropy; ``l2_reg_embedding=0`` here (DeepCTR's default 1e-6),
  as in ``deepctr_din.py``.

Input conversion
----------------
DeepCTR's BST masks by length, not by id: its ``Transformer`` and the attention pooling
use ``tf.sequence_mask(seq_length)``, valid steps first. ``seq_length`` (an int32
``(n, 1)`` input; BST requires exactly that name) is the number of non-zero ids of the
first behaviour history; all histories use it. The file's histories are left-padded
with 0 (most recent last), so each row is rearranged with its valid ids first and the
padding after them, in the order given by ``--history-order``:

* ``recent-first`` (default): the most recent behaviour at index 0, so a position means
  "k events ago" for every row, as sklattn's left-padded learned positions do (and as
  the paper's position feature, ``t(target) - t(behaviour)``, orders them);
* ``chronological``: the oldest kept behaviour at index 0 (DeepCTR's DIEN layout), so
  the same index means different recencies in short and full histories.

Timing: as ``deepctr_din.py``: ``fit_seconds`` is ``fit(epochs=1)`` plus the following
``fit`` over the remaining epochs (tracing included); one-row latencies are p50/p99
over 200 calls after 20 warm-up calls (``model.predict`` and the eager direct call);
``batch_predict_rows_per_s`` is the median of 3 timed ``model.predict(test,
batch_size=4096)`` calls after the AUC one.
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

LENGTH_NAME = "seq_length"  # the input name DeepCTR's BST looks up
HISTORY_ORDERS = ("recent-first", "chronological")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz in the layout of deepctr_din.py")
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--hidden-units", default="256,128,64")
    parser.add_argument("--dnn-activation", default="relu")
    parser.add_argument("--n-blocks", type=int, default=1, help="transformer_num")
    parser.add_argument("--n-heads", type=int, default=8, help="att_head_num")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dnn_dropout: transformer and MLP dropout")
    parser.add_argument("--history-order", choices=HISTORY_ORDERS, default="recent-first")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--graph-mode", action="store_true",
        help="call tf.compat.v1.disable_eager_execution() first (not needed on TF 2.15)",
    )
    return parser.parse_args(argv)


def history_names(meta: dict) -> list[str]:
    """``hist_<feature>`` for each behaviour feature (DeepCTR pairs ``f`` with ``hist_f``)."""
    names = [f"hist_{f}" for f in meta["behavior_features"]]
    missing = [name for name in names if name not in meta["sequences"]]
    if missing:
        raise ValueError(f"DeepCTR's BST needs the histories {missing}")
    return names


def to_valid_first(X: dict, names: list[str], recent_first: bool) -> None:
    """Rearrange left-padded histories (in place) with the valid ids first; add seq_length.

    ``recent_first``: valid ids newest to oldest; otherwise oldest to newest.
    """
    first = X[names[0]]
    maxlen = first.shape[1]
    lengths = (first != 0).sum(axis=1)
    positions = np.arange(maxlen)
    valid = positions[None, :] < lengths[:, None]
    if recent_first:
        source = maxlen - 1 - positions[None, :].repeat(len(first), axis=0)
    else:
        source = (positions[None, :] + (maxlen - lengths)[:, None]) % maxlen
    if not np.array_equal(np.take_along_axis(first, source, axis=1) != 0, valid):
        raise ValueError(f"{names[0]} is not left-padded with 0")
    for name in names:
        X[name] = np.where(valid, np.take_along_axis(X[name], source, axis=1), 0)
    X[LENGTH_NAME] = lengths.astype(np.int32).reshape(-1, 1)


def bst_feature_columns(meta: dict, embedding_dim: int, fc, histories: list[str]):
    """DIN's columns, the behaviour histories masked by the shared seq_length input."""
    columns = []
    for column in feature_columns(meta, embedding_dim, fc):
        if isinstance(column, fc.VarLenSparseFeat) and column.name in histories:
            column = column._replace(length_name=LENGTH_NAME)
        columns.append(column)
    return columns


def build_model(args: argparse.Namespace, meta: dict, histories: list[str], fc, models):
    columns = bst_feature_columns(meta, args.embedding_dim, fc, histories)
    width = args.embedding_dim * len(histories)
    if width % args.n_heads:
        raise ValueError(
            f"the sequence width {width} (embedding_dim x {len(histories)} behaviour "
            f"features) is not a multiple of --n-heads {args.n_heads}"
        )
    model = models.BST(
        columns, list(meta["behavior_features"]), transformer_num=args.n_blocks,
        att_head_num=args.n_heads, dnn_hidden_units=units(args.hidden_units),
        dnn_activation=args.dnn_activation, dnn_dropout=args.dropout, l2_reg_embedding=0,
        seed=args.seed,
    )
    # Graph mode (TF1-style Keras training loop) only accepts the legacy optimizers.
    adam = tf.keras.optimizers.legacy.Adam if args.graph_mode else tf.keras.optimizers.Adam
    model.compile(optimizer=adam(learning_rate=args.learning_rate), loss="binary_crossentropy")
    return model


def run(args: argparse.Namespace) -> dict:
    if args.graph_mode:
        tf.compat.v1.disable_eager_execution()
    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(args.seed)  # python, numpy and tensorflow
    deepctr, fc, models = import_deepctr()

    meta, X_train, X_test, y_train, y_test = load_data(args.data)
    histories = history_names(meta)
    for X in (X_train, X_test):
        to_valid_first(X, histories, recent_first=args.history_order == "recent-first")
    n_train, n_test = len(y_train), len(y_test)
    model = build_model(args, meta, histories, fc, models)

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
        "model": "BST",
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
        "hidden_units": list(units(args.hidden_units)),
        "n_blocks": args.n_blocks,
        "n_heads": args.n_heads,
        "dropout": args.dropout,
        "history_order": args.history_order,
        "n_parameters": int(model.count_params()),
        "eager": bool(tf.executing_eagerly()),
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
    }


def main(argv=None) -> None:
    print_result(run, parse_args(argv))


if __name__ == "__main__":
    main()
