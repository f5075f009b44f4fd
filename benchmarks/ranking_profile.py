"""Where a DIN or DIEN training step spends its time: steady-state epochs of variants.

Each variant removes or swaps one part of the step (the Dice activations, the
auxiliary net, the attention form, XLA...). All variants are fitted once (tracing and
compilation), then their epochs are timed in interleaved rounds, so that every
round compares them under the same machine state (this machine's speed drifts by up
to 2x for minutes at a time). Prints one JSON line per variant: samples/s of every
round, the process CPU seconds per 1,000 samples, and the ratio to the first
variant in each round. The data is MovieLens-100k as in ``ranking_movielens.py``.

Usage: ``python benchmarks/ranking_profile.py --model din [--rounds 4]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import emit, movielens_ctr, require_shared_data

from sklattn import DIENClassifier, DINClassifier, SequenceEncoder
from sklattn._data import to_arrays

VARIANTS = {
    "din": {
        "default": {},
        "no XLA": {"jit_compile": False},
        "ReLU in the attention unit": {"attention_activation": "relu"},
        "ReLU everywhere": {"attention_activation": "relu", "activation": "relu"},
        "no XLA, ReLU everywhere": {
            "attention_activation": "relu", "activation": "relu", "jit_compile": False,
        },
    },
    "dien": {
        "default": {},
        "Dice attention MLP (DeepCTR's)": {"attention_activation": "dice"},
        "bilinear attention": {"attention": "bilinear"},
        "no auxiliary net": {"aux_loss_weight": 0.0},
        "AIGRU (no gated recurrence)": {"gru_type": "AIGRU"},
        "ReLU output MLP": {"activation": "relu"},
    },
}
ESTIMATORS = {"din": DINClassifier, "dien": DIENClassifier}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(VARIANTS), default="din")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--embedding-dim", type=int, default=16)
    args = parser.parse_args()
    if not require_shared_data():
        return
    X_train, _, y_train, _ = movielens_ctr()
    encoder = SequenceEncoder(
        sequences={"hist_item_id": "item_id", "hist_genre": "genre"}, categorical=["user_id"]
    )
    E = encoder.fit_transform(X_train)
    y = y_train.astype(np.float32)
    fitted = {}
    for name, params in VARIANTS[args.model].items():
        est = ESTIMATORS[args.model](
            embedding_dim=args.embedding_dim, epochs=3, random_state=0, **params
        )
        # A 3-epoch fit decides XLA as the benchmark's fit does; then one epoch at a time.
        est.fit(E, y_train)
        est.set_params(warm_start=True, epochs=1)
        fitted[name] = est
    wall = {name: [] for name in fitted}
    cpu = {name: [] for name in fitted}
    for _ in range(args.rounds):
        for name, est in fitted.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            est.fit(E, y_train)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    first = next(iter(fitted))
    ids, _ = to_arrays(fitted[first], E)
    for name, est in fitted.items():
        ratios = [a / b for a, b in zip(wall[first], wall[name], strict=True)]
        emit(
            benchmark="ranking_profile", model=args.model, variant=name,
            params=VARIANTS[args.model][name], xla=bool(est.model_.jit_compile),
            samples_per_s=[round(len(y) / t) for t in wall[name]],
            cpu_s_per_1000=round(1000 * statistics.median(cpu[name]) / len(y), 4),
            speedup_vs_default=[round(r, 2) for r in ratios],
            median_speedup_vs_default=round(statistics.median(ratios), 2),
        )


if __name__ == "__main__":
    main()
