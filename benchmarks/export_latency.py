"""Serving latency: the exported SavedModel (loaded in Python) against predict_proba.

For DIN, DIEN and BST pipelines (``SequenceEncoder`` + model, fitted on 5,000 rows of
``make_interest_sequences`` with histories of 20, one epoch) and a MIND pipeline (its
``top_n`` signature against ``retrieve``): ``sklattn.export`` writes the SavedModel,
``tf.saved_model.load`` loads it, and the signature is called on raw rows prepared once
by ``sklattn.serving_inputs`` as ``tf.constant`` tensors (what a server holds after
parsing a request). The pipeline is called on the same rows as a DataFrame. Per model
and batch size (1 and 1,000 rows): p50 and p99 milliseconds over ``--calls`` calls
(a tenth of them for 1,000 rows), ``--repeats`` rounds with the two paths interleaved,
and the ratio predict_proba / SavedModel of each round's p50. Also the artefact's size on
disk, and the largest difference between the two paths' outputs. With ``--onnx``, the
ONNX file of the same DIN on the encoded matrices through onnxruntime (which leaves the
encoding to the caller; its time is not included).

    python benchmarks/export_latency.py [--calls 300] [--repeats 3] [--onnx]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _common import emit, latency_ms
from sklearn.pipeline import make_pipeline

from sklattn import (
    BSTClassifier,
    DIENClassifier,
    DINClassifier,
    MINDRetriever,
    SequenceEncoder,
    export,
    serving_inputs,
)
from sklattn._backend import tf
from sklattn.datasets import make_interest_sequences

SEQUENCES = {"hist_item": "item", "hist_cat": "cat"}


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--onnx", action="store_true")
    args = parser.parse_args()

    X, y = make_interest_sequences(6_000, maxlen=20, random_state=0)
    X_train, y_train, X_serve = X[:5_000], y[:5_000], X[5_000:]
    root = Path(tempfile.mkdtemp(prefix="sklattn-export-"))
    models = {
        "DINClassifier": DINClassifier(epochs=1, random_state=0),
        "DIENClassifier": DIENClassifier(epochs=1, random_state=0),
        "BSTClassifier": BSTClassifier(epochs=1, random_state=0),
        "MINDRetriever": MINDRetriever(epochs=1, top_n=10, random_state=0),
    }
    for name, model in models.items():
        retriever = name == "MINDRetriever"
        if retriever:
            data = X_train.drop(columns=[c for c in X.columns if c.startswith("hist_cat")]
                                + ["cat"])
            pipe = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}), model)
            pipe.fit(data)
            serve = X_serve[data.columns].drop(columns=["item"])
        else:
            pipe = make_pipeline(SequenceEncoder(sequences=SEQUENCES), model).fit(X_train,
                                                                                  y_train)
            serve = X_serve
        folder = export(pipe, root / name)
        loaded = tf.saved_model.load(str(folder))
        signature = loaded.signatures["top_n" if retriever else "serving_default"]
        emit(benchmark="export_latency", model=name, metric="artefact_bytes",
             bytes=_size(folder), variables_bytes=_size(folder / "variables"))
        for rows in (1, 1_000):
            frame = serve.iloc[:rows]
            inputs = {k: tf.constant(v) for k, v in serving_inputs(pipe, frame).items()}
            if retriever:
                def pipeline_call(frame=frame, pipe=pipe):
                    return pipe[-1].retrieve(pipe[0].transform(frame))
            else:
                def pipeline_call(frame=frame, pipe=pipe):
                    return pipe.predict_proba(frame)

            def exported_call(inputs=inputs, signature=signature):
                return signature(**inputs)

            out = exported_call()
            if retriever:
                items, _ = pipeline_call()
                found = out["items"].numpy()
                agree = float(np.mean(found.astype(items.dtype) == items))
                difference = None
            else:
                difference = float(np.max(np.abs(
                    out["probability"].numpy() - pipeline_call()[:, 1])))
                agree = None
            calls = args.calls if rows == 1 else max(args.calls // 10, 10)
            ratios = []
            for repeat in range(args.repeats):
                p50, p99 = latency_ms(pipeline_call, n_calls=calls)
                e50, e99 = latency_ms(exported_call, n_calls=calls)
                ratios.append(p50 / e50)
                emit(benchmark="export_latency", model=name, rows=rows, repeat=repeat,
                     predict_p50_ms=p50, predict_p99_ms=p99, saved_model_p50_ms=e50,
                     saved_model_p99_ms=e99, speedup=p50 / e50)
            emit(benchmark="export_latency", model=name, rows=rows, metric="summary",
                 speedup_median=float(np.median(ratios)), speedup_min=min(ratios),
                 speedup_max=max(ratios), max_probability_difference=difference,
                 same_items_share=agree)
    if args.onnx:
        import onnxruntime

        pipe = make_pipeline(SequenceEncoder(sequences=SEQUENCES),
                             DINClassifier(epochs=1, random_state=0)).fit(X_train, y_train)
        folder = export(pipe, root / "din-onnx", format="onnx")
        session = onnxruntime.InferenceSession(str(folder / "model.onnx"),
                                               providers=["CPUExecutionProvider"])
        emit(benchmark="export_latency", model="DINClassifier", format="onnx",
             metric="artefact_bytes", bytes=_size(folder))
        for rows in (1, 1_000):
            matrices = serving_inputs(pipe, X_serve.iloc[:rows], format="onnx")
            calls = args.calls if rows == 1 else max(args.calls // 10, 10)
            for repeat in range(args.repeats):
                o50, o99 = latency_ms(lambda m=matrices: session.run(["probability"], m),
                                      n_calls=calls)
                emit(benchmark="export_latency", model="DINClassifier", format="onnx",
                     rows=rows, repeat=repeat, onnx_model_only_p50_ms=o50,
                     onnx_model_only_p99_ms=o99)


if __name__ == "__main__":
    main()
