"""Searches on joblib's engines (loky, Dask, Ray) and TensorFlow's thread pools in workers.

Each engine's search must pick the serial search's parameters with scores within
``SCORE_TOLERANCE``: a worker runs TensorFlow on one thread where the serial search
ran on all cores, and a different thread count sums float32 products in a different
order (measured: up to 0.002 of ROC AUC in benchmarks/parallel_search.py; docs/scaling.md).
"""

import os
import pickle
import signal
import subprocess
import sys
from contextlib import contextmanager

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sklattn import DINClassifier, SequenceEncoder
from sklattn.datasets import make_interest_sequences

SEQUENCES = {"hist_item": "item", "hist_cat": "cat"}
SCORE_TOLERANCE = 0.01
GRID = {"dinclassifier__learning_rate": [3e-2, 3e-3]}


def _search() -> GridSearchCV:
    model = make_pipeline(
        SequenceEncoder(sequences=SEQUENCES),
        DINClassifier(embedding_dim=4, hidden_units=(16,), attention_units=(8,),
                      activation="relu", epochs=3, batch_size=128, random_state=0),
    )
    return GridSearchCV(model, GRID, cv=2, scoring="roc_auc")


@pytest.fixture(scope="module")
def log():
    # Large enough that both candidates learn: a near-random model's AUC moves with
    # the last bits of its scores.
    return make_interest_sequences(4000, maxlen=8, random_state=0)


@pytest.fixture(scope="module")
def serial(log):
    return _search().fit(*log)


@contextmanager
def deadline(seconds: int):
    """Fail, rather than hang the suite, when the block runs past ``seconds``."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a hung worker pool")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _tensorflow_threads() -> tuple[int, int, str | None]:
    """A worker's TensorFlow pool sizes (after sklattn sized them) and its OMP_NUM_THREADS."""
    import sklattn.models  # noqa: F401 - the models import TensorFlow through sklattn
    from sklattn._backend import tf

    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
            os.environ.get("OMP_NUM_THREADS"))


def _assert_same_search(search: GridSearchCV, serial: GridSearchCV) -> None:
    assert search.best_params_ == serial.best_params_
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               serial.cv_results_["mean_test_score"], atol=SCORE_TOLERANCE)
    # The better learning rate is clearly better: the comparison is not a tie.
    scores = serial.cv_results_["mean_test_score"]
    assert abs(scores[0] - scores[1]) > 5 * SCORE_TOLERANCE


def test_omp_num_threads_sizes_tensorflow_pools_in_a_fresh_process():
    code = ("import sklattn.models, tensorflow as tf; t = tf.config.threading; "
            "print(t.get_intra_op_parallelism_threads(), t.get_inter_op_parallelism_threads())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "OMP_NUM_THREADS": "1"}, timeout=120, check=True)
    assert out.stdout.split() == ["1", "2"]  # the inter-op pool keeps two threads
    # TensorFlow's own setting wins: sklattn leaves the pools to it.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "2"},
                         timeout=120, check=True)
    assert out.stdout.split() == ["0", "0"]


def test_loky_search_does_not_hang_and_matches_the_serial_search(log, serial):
    with deadline(300):
        search = _search().set_params(n_jobs=2).fit(*log)
        # loky's workers get OMP_NUM_THREADS = cores // n_jobs; TensorFlow follows it.
        threads = joblib.Parallel(n_jobs=2)(joblib.delayed(_tensorflow_threads)()
                                            for _ in range(2))
    _assert_same_search(search, serial)
    share = os.environ.get("OMP_NUM_THREADS", str(max(joblib.cpu_count() // 2, 1)))
    assert all(t == (int(share), max(int(share), 2), share) for t in threads)


def test_dask_search_on_a_local_cluster_matches_the_serial_search(log, serial, monkeypatch):
    distributed = pytest.importorskip("distributed")
    import dask

    # docs/scaling.md's recipe: without Dask's MALLOC_TRIM_THRESHOLD_ in the workers
    # (it made every TensorFlow fit 1.6x slower here). A nanny sets the variable in its
    # own process too, and an earlier cluster of this process (tests/test_dask.py) left
    # it there for every later worker to inherit.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with deadline(300), dask.config.set(
        {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    ), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        with joblib.parallel_backend("dask"):
            search = _search().fit(*log)
        threads = list(client.run(_tensorflow_threads).values())
        trim = list(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values())
    _assert_same_search(search, serial)
    # A nanny starts its worker with OMP_NUM_THREADS=1.
    assert threads == [(1, 2, "1")] * 2
    assert trim == [None, None]


def test_ray_search_matches_the_serial_search(log, serial):
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    register_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        with deadline(300), joblib.parallel_backend("ray"):
            search = _search().fit(*log)
    finally:
        ray.shutdown()
    _assert_same_search(search, serial)


def test_a_pipeline_travels_to_workers_compactly(log, serial):
    unfitted = pickle.dumps(_search().estimator)
    assert len(unfitted) < 16_000
    fitted = serial.best_estimator_
    din = fitted[-1]
    weights = sum(w.nbytes for w in din.model_.get_weights())
    # Weights only: no traced graph, no optimiser slots, no training rows.
    assert weights < len(pickle.dumps(din)) < weights + 64_000
    assert len(pickle.dumps(fitted)) < 2 * weights + 64_000
