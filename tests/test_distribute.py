"""The ``distribute`` parameter: training under a tf.distribute strategy."""

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from sklattn import DINClassifier
from sklattn._backend import tf

SCRIPT = Path(__file__).with_name("distributed_fit.py")
TINY = dict(embedding_dim=4, hidden_units=(8,), attention_units=(4,), epochs=1,
            random_state=0)


def _run(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _result(process: subprocess.Popen, timeout: int = 300) -> dict:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_mirrored_training_on_two_cpu_devices_learns_as_one_device_does():
    result = _result(_run("mirrored"))
    assert result["replicas"] == 2
    # Both learn (the click log's optimum is far above 0.5), and to the same level: the
    # replicas' halves of each batch make one step (the batches come in another order,
    # so the two fits are not equal step by step).
    assert result["single"] > 0.6 and result["mirrored"] > 0.6
    assert abs(result["mirrored"] - result["single"]) < 0.03
    assert result["pickle_max_diff"] == 0.0
    assert "jit_compile=True cannot train under distribute='mirrored'" in result["jit_error"]
    assert result["dice"] > 0.6 and result["stream"] > 0.6
    assert result["dien_finite"] and result["dien_epochs"] == 2  # DIEN trains under it


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_training_with_two_local_worker_processes():
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    processes = [
        _run("worker", env={"TF_CONFIG": json.dumps({
            "cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]
    try:
        results = [_result(p) for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert [r["replicas"] for r in results] == [2, 2]
    # One model: the workers' all-reduced steps keep their variables equal.
    np.testing.assert_allclose(results[0]["proba"], results[1]["proba"], rtol=1e-6)
    assert results[0]["auc"] > 0.6


def test_mirrored_on_one_device_trains_and_predicts_as_usual(interest_data):
    from sklattn import SequenceEncoder

    X, y, _ = interest_data
    encoded = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}).fit_transform(X)
    plain = DINClassifier(**TINY).fit(encoded, y)
    mirrored = DINClassifier(distribute="mirrored", **TINY).fit(encoded, y)
    n_cpu = len(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))
    assert mirrored.model_.distribute_strategy.num_replicas_in_sync == n_cpu
    # One replica: the same steps as without a strategy.
    np.testing.assert_allclose(mirrored.predict_proba(encoded), plain.predict_proba(encoded),
                               atol=1e-6)
    # Unpickled for prediction only; the next warm fit rebuilds under the strategy.
    again = pickle.loads(pickle.dumps(mirrored))
    np.testing.assert_array_equal(again.predict_proba(encoded), mirrored.predict_proba(encoded))
    assert again._built_strategy is None
    again.set_params(warm_start=True).fit(encoded, y)
    assert again._built_strategy is mirrored._built_strategy
    # A plain model warm-started under a strategy moves to it, weights and all.
    plain.set_params(warm_start=True, distribute="mirrored").fit(encoded, y)
    assert plain.model_.distribute_strategy is mirrored.model_.distribute_strategy
    assert np.isfinite(plain.predict_proba(encoded)).all()


def test_distribute_is_validated_and_a_strategy_object_refuses_to_pickle(interest_data):
    with pytest.raises(InvalidParameterError, match="distribute"):
        DINClassifier(distribute="gpus").fit(np.zeros((4, 2)), [0, 1, 0, 1])
    strategy = tf.distribute.MirroredStrategy()
    model = DINClassifier(distribute=strategy)
    with pytest.raises(TypeError, match="set_params\\(distribute=None\\)"):
        pickle.dumps(model)
    # clone (GridSearchCV, cross_validate) shares the strategy instead of copying it.
    assert clone(model).distribute is strategy
    assert model.distribute is strategy
