"""One-row prediction: the scikeras example pipeline against a DINClassifier pipeline.

The scikeras pipeline is the documented example (``tests/test_scikeras.py``: a small
category-level DIN from ``sklattn.layers`` in scikeras's ``KerasClassifier``, after a
SequenceEncoder); the sklattn pipeline is a ``DINClassifier`` of similar size trained the
same way (2,000 rows, 8 epochs, batch 64, learning rate 1e-2). Prints one JSON line per
measure with the p50 / p99 of ``--calls`` one-row ``predict_proba`` calls, repeated
``--repeats`` times (fresh timing, same fitted models), and the ratio taken in the same run.

    pip install ".[scikeras]" && python benchmarks/scikeras_latency.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _common import emit, latency_ms
from sklearn.pipeline import make_pipeline

from sklattn import DINClassifier, SequenceEncoder
from sklattn.datasets import make_interest_sequences

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_scikeras import SEQUENCES, scikeras_pipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    X, y = make_interest_sequences(n_samples=2500, maxlen=8, random_state=0)
    X_train, y_train, row = X[:2000], y[:2000], X[2000:2001]
    schema = SequenceEncoder(sequences=SEQUENCES).fit(X_train).schema_
    wrapped = scikeras_pipeline(schema).set_params(clf__model__pooling="attention")
    wrapped.fit(X_train, y_train)
    din = make_pipeline(
        SequenceEncoder(sequences=SEQUENCES),
        DINClassifier(embedding_dim=4, attention_units=(8,), hidden_units=(16,), epochs=8,
                      batch_size=64, learning_rate=1e-2, random_state=0),
    ).fit(X_train, y_train)
    encoded = [wrapped[0].transform(row), din[0].transform(row)]

    cases = {
        "pipeline, one raw row": (lambda: wrapped.predict_proba(row),
                                  lambda: din.predict_proba(row)),
        "model step, one encoded row": (lambda: wrapped[-1].predict_proba(encoded[0]),
                                        lambda: din[-1].predict_proba(encoded[1])),
    }
    for name, (scikeras_call, sklattn_call) in cases.items():
        ratios = []
        for repeat in range(args.repeats):
            sk50, sk99 = latency_ms(scikeras_call, n_calls=args.calls)
            din50, din99 = latency_ms(sklattn_call, n_calls=args.calls)
            ratios.append(sk50 / din50)
            emit(benchmark="scikeras_latency", measure=name, repeat=repeat,
                 scikeras_p50_ms=sk50, scikeras_p99_ms=sk99,
                 sklattn_p50_ms=din50, sklattn_p99_ms=din99, ratio_p50=sk50 / din50)
        emit(benchmark="scikeras_latency", measure=name, summary=True,
             ratio_p50_median=float(np.median(ratios)), ratio_p50_min=min(ratios),
             ratio_p50_max=max(ratios))


if __name__ == "__main__":
    main()
