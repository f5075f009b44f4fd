"""DIN speed and accuracy: sklattn against the same graph fitted with raw Keras.

Synthetic data from ``make_interest_sequences`` (true click probabilities known).
Prints JSON lines:

* ``fit``: training throughput of ``DINClassifier.fit`` and of ``keras.Model.fit``
  on the identical graph (same builder, batch size, epochs, XLA setting) and the
  wrapper overhead ``sklattn_seconds / keras_seconds - 1``;
* ``latency``: one-row ``predict_proba`` p50/p99 on encoded input and through the
  Pipeline, against ``keras.Model.predict`` on one row;
* ``batch_predict``: rows/s of ``predict_proba`` and of ``keras.Model.predict``;
* ``auc``: test AUC of DIN and of the sum-pooling Base Model next to the optimum.

Usage: ``python benchmarks/din_benchmark.py [--n-samples 60000 --epochs 3]``
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import emit, latency_ms, timed
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from sklattn import DINClassifier, SequenceEncoder, SumPoolingClassifier
from sklattn._backend import keras
from sklattn._data import to_arrays
from sklattn.datasets import make_interest_sequences
from sklattn.models.din import build_din_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--jit", choices=["auto", "on", "off"], default="auto")
    args = parser.parse_args()

    X, y, p = make_interest_sequences(args.n_samples, return_proba=True, random_state=0)
    X = X.drop(columns="user")
    n_train = 2 * len(X) // 3
    X_train, X_test, y_train, y_test = X[:n_train], X[n_train:], y[:n_train], y[n_train:]
    encoder = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"})
    E_train = encoder.fit_transform(X_train)
    E_test = encoder.transform(X_test)
    jit = {"auto": "auto", "on": True, "off": False}[args.jit]
    params = dict(
        embedding_dim=8, hidden_units=(256, 128), attention_units=(80, 40), activation="prelu",
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=3e-3, random_state=0,
        jit_compile=jit,
    )
    samples = n_train * args.epochs

    # sklattn
    din = DINClassifier(**params)
    _, sk_seconds = timed(lambda: din.fit(E_train, y_train))
    resolved_jit = bool(din.model_.jit_compile)

    # raw Keras, same graph and settings
    keras.utils.set_random_seed(0)
    model = build_din_graph(
        din.schema_, embedding_dim=8, hidden_units=(256, 128), attention_units=(80, 40),
        activation="prelu",
    ).model
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        jit_compile=resolved_jit,
    )
    ids_train, floats_train = to_arrays(din, E_train)
    ids_test, floats_test = to_arrays(din, E_test)

    def keras_fit():
        return model.fit(
            [ids_train, floats_train], y_train.astype("float32"), batch_size=args.batch_size,
            epochs=args.epochs, shuffle=True, verbose=0,
        )

    _, k_seconds = timed(keras_fit)
    emit(
        benchmark="din_synthetic", metric="fit", n_train=n_train, epochs=args.epochs,
        batch_size=args.batch_size, xla=resolved_jit,
        sklattn_samples_per_s=samples / sk_seconds, keras_samples_per_s=samples / k_seconds,
        sklattn_seconds=sk_seconds, keras_seconds=k_seconds,
        wrapper_overhead=sk_seconds / k_seconds - 1.0,
    )

    # one-row latency
    pipe = make_pipeline(encoder, din)
    one_encoded, one_raw = E_test.iloc[[0]], X_test.iloc[[0]]
    enc_p50, enc_p99 = latency_ms(lambda: din.predict_proba(one_encoded))
    pipe_p50, pipe_p99 = latency_ms(lambda: pipe.predict_proba(one_raw))
    one = [ids_test[:1], floats_test[:1]]
    k_p50, k_p99 = latency_ms(lambda: model.predict(one, verbose=0), n_calls=100)
    emit(
        benchmark="din_synthetic", metric="latency_1row_ms",
        encoded_p50=enc_p50, encoded_p99=enc_p99, pipeline_p50=pipe_p50, pipeline_p99=pipe_p99,
        keras_predict_p50=k_p50, keras_predict_p99=k_p99, speedup_vs_keras_predict=k_p50 / enc_p50,
    )

    # batch prediction
    proba, sk_pred_s = timed(lambda: din.predict_proba(E_test))
    _, k_pred_s = timed(lambda: model.predict([ids_test, floats_test], batch_size=4096, verbose=0))
    emit(
        benchmark="din_synthetic", metric="batch_predict", n_rows=len(E_test),
        sklattn_rows_per_s=len(E_test) / sk_pred_s, keras_rows_per_s=len(E_test) / k_pred_s,
    )

    # accuracy against the optimum and the Base Model
    base = SumPoolingClassifier(**{k: v for k, v in params.items() if k != "attention_units"})
    base.fit(E_train, y_train)
    emit(
        benchmark="din_synthetic", metric="auc", n_test=len(E_test),
        din=roc_auc_score(y_test, proba[:, 1]),
        sum_pooling=roc_auc_score(y_test, base.predict_proba(E_test)[:, 1]),
        keras_same_graph=roc_auc_score(
            y_test, model.predict([ids_test, floats_test], batch_size=4096, verbose=0).ravel()
        ),
        optimal=roc_auc_score(y_test, p[n_train:]),
    )
    assert np.isfinite(proba).all()


if __name__ == "__main__":
    main()
