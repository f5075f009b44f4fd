"""An 8-candidate DIN GridSearchCV on joblib's engines: wall time against the serial search.

The search: ``make_pipeline(SequenceEncoder(...), DINClassifier(...))`` on
``make_interest_sequences`` (``--rows`` rows, 60,000 by default, histories of 20), 8 candidates
(``embedding_dim`` x ``learning_rate`` x ``hidden_units``), 2-fold, ROC AUC, refit. Each
engine runs in a fresh process, ``--repeats`` times, the engines interleaved so that
the machine's drift touches all of them alike:

* ``serial``: ``n_jobs=1``; TensorFlow in the one process uses every core;
* ``loky``: ``n_jobs=2``; each worker's TensorFlow on ``cores // 2`` threads
  (sklattn sizes its pools by ``OMP_NUM_THREADS``, which loky sets);
* ``dask``: ``joblib.parallel_backend("dask")`` on a ``LocalCluster(n_workers=2,
  threads_per_worker=1)`` whose workers start without Dask's ``MALLOC_TRIM_THRESHOLD_``
  (docs/scaling.md's recipe);
* ``dask_default_env``: the same cluster with Dask's default worker environment, where
  ``MALLOC_TRIM_THRESHOLD_=65536`` fixes glibc's thresholds and every fit runs about 1.6x
  slower (a serial search with that variable: 32.3 s against 19.7 s);
* ``ray``: ``joblib.parallel_backend("ray")`` after ``ray.init(num_cpus=2)``. Ray's
  joblib backend starts new worker actors for every ``Parallel`` call, so each search
  pays for its workers' start (importing TensorFlow) inside ``search_seconds``: the
  warm-up cannot take it out (5 s before the first task started, in one run).

Per run: ``startup_seconds`` (the pool or cluster started, and in every worker a fit of
one fold's rows: see ``_warm_worker``), ``search_seconds`` (``GridSearchCV.fit``),
whether ``best_params_`` equals the serial search's and the largest difference of
``mean_test_score``. Then one summary line per engine: the serial/engine ratios of
search time (speed-up), with and without the start-up, as median and range over the
repeats. The first line gives the pickled sizes of the pipeline as it travels to a
worker (unfitted) and of the best candidate fitted on all rows. sklattn's models are
imported in the main process before any clock starts, for every engine; the search does
not refit (``refit=False``).

Usage: ``python benchmarks/parallel_search.py [--rows 60000] [--repeats 3]
[--engines serial,loky,dask,dask_default_env,ray]``
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import time

import numpy as np
from _common import emit

GRID = {
    "dinclassifier__embedding_dim": [4, 8],
    "dinclassifier__learning_rate": [1e-3, 3e-3],
    "dinclassifier__hidden_units": [(64, 32), (32,)],
}


def search(n_jobs: int | None = None):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from sklattn import DINClassifier, SequenceEncoder

    model = make_pipeline(
        SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}),
        DINClassifier(attention_units=(32, 16), activation="relu", epochs=2,
                      batch_size=256, random_state=0),
    )
    # No refit: the search alone is timed (the refit is one more fit in the main process).
    return GridSearchCV(model, GRID, cv=2, scoring="roc_auc", n_jobs=n_jobs, refit=False)


def _warm_worker(seconds: float = 0.0, rows: int = 2_000) -> int:
    """Start sklattn in a worker as a search's first task would: fit a DIN on ``rows``
    rows, of an architecture the grid does not hold (so no graph is reused from it); the
    worker's process id. Tasks that last ``seconds`` land on different workers.

    The fit, and its size, matter for loky: a loky worker takes its reference memory
    after its first task and restarts once it has grown 300 MB past it. A warm-up that
    only imported sklattn left the workers at 761 MB, which the search's first fit of
    30,000 rows took to 1,057 MB (TensorFlow's runtime and allocator); one that fitted
    2,000 rows left them at 847 MB, and the fourth architecture took them to 1,162 MB.
    Either way both workers restarted mid-search and imported TensorFlow again (about
    5 s of a 17.6 s search). A search without a warm-up does not meet this: its first
    task is a fit of a fold.
    """
    import os

    from sklattn.datasets import make_interest_sequences

    X, y = make_interest_sequences(rows, maxlen=20, random_state=1)
    search().estimator.set_params(
        dinclassifier__embedding_dim=2, dinclassifier__hidden_units=(8,),
        dinclassifier__epochs=1,
    ).fit(X, y).predict_proba(X)
    time.sleep(seconds)
    return os.getpid()


def _warm_two(parallel, rows: int) -> None:
    import joblib

    pids = parallel(joblib.delayed(_warm_worker)(2.0, rows) for _ in range(2))
    if len(set(pids)) != 2:
        raise RuntimeError(f"the warm-up reached {len(set(pids))} worker(s), not 2")


def run_engine(engine: str, rows: int) -> dict:
    import joblib

    from sklattn.datasets import make_interest_sequences

    X, y = make_interest_sequences(rows, maxlen=20, random_state=0)
    fold = rows // 2  # the warm-up fits as many rows as a task does
    _warm_worker(0.0, fold)  # the main process, for every engine: it encodes and scores too
    closers = []
    start = time.perf_counter()
    if engine == "serial":
        backend, n_jobs = None, 1
    elif engine == "loky":
        backend, n_jobs = None, 2
        _warm_two(joblib.Parallel(n_jobs=2), fold)
    elif engine in ("dask", "dask_default_env"):
        import dask
        import distributed

        if engine == "dask":  # docs/scaling.md's recipe
            dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
        client.run(_warm_worker, 0.0, fold)
        closers += [client.close, cluster.close]
        backend, n_jobs = "dask", None
    elif engine == "ray":
        import ray
        from ray.util.joblib import register_ray

        register_ray()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        closers.append(ray.shutdown)
        backend, n_jobs = "ray", None
        with joblib.parallel_backend("ray"):
            _warm_two(joblib.Parallel(n_jobs=2), fold)
    else:
        raise ValueError(f"unknown engine {engine!r}")
    startup = time.perf_counter() - start
    start = time.perf_counter()
    if backend is None:
        fitted = search(n_jobs).fit(X, y)
    else:
        with joblib.parallel_backend(backend):
            fitted = search().fit(X, y)
    seconds = time.perf_counter() - start
    for close in closers:
        close()
    scores = fitted.cv_results_["mean_test_score"]
    best = fitted.cv_results_["params"][int(np.argmax(scores))]
    out = {"engine": engine, "startup_seconds": startup, "search_seconds": seconds,
           "best_params": {k.split("__")[1]: v for k, v in best.items()},
           "mean_test_score": scores.tolist()}
    if engine == "serial":
        # What travels: the unfitted pipeline to each task, a fitted one when a user
        # ships it (the best candidate, fitted on all rows).
        pipeline = search().estimator.set_params(**best).fit(X, y)
        din = pipeline[-1]
        out["pickled_bytes"] = {
            "unfitted_pipeline": len(pickle.dumps(search().estimator)),
            "fitted_pipeline": len(pickle.dumps(pipeline)),
            "fitted_din": len(pickle.dumps(din)),
            "din_weights": int(sum(w.nbytes for w in din.model_.get_weights())),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", default="serial,loky,dask,dask_default_env,ray")
    parser.add_argument("--engine", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.rows)), flush=True)
        return
    engines = args.engines.split(",")
    runs: dict[str, list[dict]] = {e: [] for e in engines}
    for repeat in range(args.repeats):
        serial = None
        for engine in engines:
            done = subprocess.run(
                [sys.executable, __file__, "--engine", engine, "--rows", str(args.rows)],
                capture_output=True, text=True,
            )
            if done.returncode:
                emit(benchmark="parallel_search", engine=engine, repeat=repeat,
                     failed=done.stderr[-800:])
                continue
            run = json.loads(done.stdout.strip().splitlines()[-1])
            if engine == "serial":
                serial = dict(run)
                sizes = run.pop("pickled_bytes")
                if repeat == 0:
                    emit(benchmark="parallel_search", metric="pickled_bytes", **sizes)
            if serial is not None:
                run["same_best_params"] = run["best_params"] == serial["best_params"]
                run["max_score_difference"] = float(np.max(np.abs(
                    np.subtract(run["mean_test_score"], serial["mean_test_score"]))))
                run["speedup"] = serial["search_seconds"] / run["search_seconds"]
                run["speedup_with_startup"] = (
                    (serial["search_seconds"] + serial["startup_seconds"])
                    / (run["search_seconds"] + run["startup_seconds"]))
            run.pop("mean_test_score")
            runs[engine].append(run)
            emit(benchmark="parallel_search", rows=args.rows, repeat=repeat, **run)
    for engine, done in runs.items():
        ratios = [r["speedup"] for r in done if "speedup" in r]
        if engine == "serial" or not ratios:
            continue
        with_startup = [r["speedup_with_startup"] for r in done if "speedup" in r]
        emit(benchmark="parallel_search", metric="summary", engine=engine, rows=args.rows,
             runs=len(ratios), speedup_median=float(np.median(ratios)),
             speedup_min=min(ratios), speedup_max=max(ratios),
             speedup_with_startup_median=float(np.median(with_startup)),
             same_best_params=all(r["same_best_params"] for r in done if "speedup" in r),
             max_score_difference=max(r["max_score_difference"] for r in done
                                      if "speedup" in r))


if __name__ == "__main__":
    main()
