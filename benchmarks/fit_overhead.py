"""The fixed cost of a fit: fresh one-epoch fits on 5,000 rows, and a 20-fit grid search.

A small fit is dominated by what every fit pays once: building the graph, tracing the
training step (and compiling it, under XLA) and tracing the prediction function.
sklattn keeps the traced graph of a discarded estimator for the next fit of the same
architecture (``sklattn.base.clear_graph_cache``). This script times, on
``make_interest_sequences`` (5,000 rows, encoded once):

* ``fresh``: one-epoch fits with the graph cache emptied before each one (every fit
  traces, as before graphs were reused);
* ``reused``: one-epoch fits that follow a fit of the same architecture;
* ``grid``: ``GridSearchCV`` over 4 candidates x 5 folds (20 fits of 2 epochs on 4,000
  rows each), without and with reuse.

Prints one JSON line per model and setting (median seconds and the estimated fixed
cost: the fit's time minus the same epoch's time in a warm model).

Usage: ``python benchmarks/fit_overhead.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import emit
from sklearn.model_selection import GridSearchCV

import sklattn.base as base
from sklattn import AFMClassifier, DIENClassifier, DINClassifier, SequenceEncoder
from sklattn.datasets import make_interest_sequences

MODELS = {"DIN": DINClassifier, "DIEN": DIENClassifier, "AFM": AFMClassifier}


def timed_fit(make, E, y) -> tuple[float, object]:
    est = make()
    start = time.perf_counter()
    est.fit(E, y)
    return time.perf_counter() - start, est


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-samples", type=int, default=5000)
    args = parser.parse_args()
    X, y = make_interest_sequences(args.n_samples, random_state=0)
    E = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}).fit_transform(X)
    for name, cls in MODELS.items():
        def make(cls=cls):
            return cls(epochs=1, random_state=0)

        timed_fit(make, E, y)  # imports and first-use costs of the process
        fresh = []
        for _ in range(args.repeats):
            base.clear_graph_cache()
            seconds, _ = timed_fit(make, E, y)
            fresh.append(seconds)
        reused, est = [], None
        for _ in range(args.repeats):
            del est
            seconds, est = timed_fit(make, E, y)
            reused.append(seconds)
        # One more epoch of a fitted model: the part of a fit that is not fixed.
        est.set_params(warm_start=True)
        epoch = statistics.median(timed_fit(lambda est=est: est, E, y)[0] for _ in range(3))
        for setting, times in (("fresh", fresh), ("reused", reused)):
            emit(benchmark="fit_overhead", model=name, setting=setting,
                 n_samples=args.n_samples, fit_seconds=statistics.median(times),
                 all=[round(t, 2) for t in times],
                 fixed_seconds=statistics.median(times) - epoch, epoch_seconds=epoch)
        del est

    grid = {"embedding_dim": [4, 8], "learning_rate": [1e-3, 3e-3]}
    for reuse in (False, True):
        base.clear_graph_cache()
        DINClassifier._reuse_graphs = reuse  # shadows the class default (True)
        search = GridSearchCV(DINClassifier(epochs=2, random_state=0), grid, cv=5,
                              scoring="roc_auc")
        start = time.perf_counter()
        search.fit(E, y)
        emit(benchmark="fit_overhead", model="DIN", setting="grid", reuse=reuse,
             n_fits=20, seconds=time.perf_counter() - start,
             best_params=search.best_params_, best_score=search.best_score_)
        del DINClassifier._reuse_graphs


if __name__ == "__main__":
    main()
