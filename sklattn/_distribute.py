"""The ``distribute`` parameter: which ``tf.distribute`` strategy builds and trains a graph.

``None`` trains on TensorFlow's default device. ``"mirrored"`` is a
``tf.distribute.MirroredStrategy`` over every local GPU, or, on a machine without one,
over the logical CPU devices (one, unless the process split its CPU with
``tf.config.set_logical_device_configuration``, as the tests do). ``"multi_worker"`` is a
``tf.distribute.MultiWorkerMirroredStrategy`` configured by the ``TF_CONFIG``
environment variable. A shorthand makes one strategy per process, shared by every
estimator, so that a model built under it is trained under the same one; a
``tf.distribute.Strategy`` object is used as given.
"""

from __future__ import annotations

import threading

from ._backend import TF_BACKEND, tf

__all__ = ["build_from_one_replica", "distribution_strategy"]

_STRATEGIES: dict = {}
_LOCK = threading.Lock()


def distribution_strategy(distribute):
    """The ``tf.distribute.Strategy`` an estimator's ``distribute`` names, or None."""
    if distribute is None:
        return None
    if not TF_BACKEND:
        raise ValueError(
            f"distribute={distribute!r} needs the TensorFlow backend of Keras "
            "(KERAS_BACKEND=tensorflow)."
        )
    if not isinstance(distribute, str):
        return distribute
    with _LOCK:
        if distribute not in _STRATEGIES:
            _STRATEGIES[distribute] = _make_strategy(distribute)
        return _STRATEGIES[distribute]


def _make_strategy(name: str):
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices(
            "CPU"
        )
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name != "multi_worker":
        raise ValueError(
            f"distribute={name!r}: expected 'mirrored', 'multi_worker', a "
            "tf.distribute.Strategy or None."
        )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as error:
        # Collective ops are configured when TensorFlow's runtime starts: a process
        # that ran an op before cannot join a cluster any more.
        raise ValueError(
            "distribute='multi_worker' could not start a "
            f"tf.distribute.MultiWorkerMirroredStrategy ({error}). Create the strategy "
            "at the top of the worker's script, before any TensorFlow operation runs, "
            "and pass it as distribute=strategy; TF_CONFIG names the cluster."
        ) from error


def build_from_one_replica(model) -> None:
    """Make a distributed Keras model build its loss and metrics from one replica's batch.

    Before its first step, Keras 3 (3.15) averages the first batch over the replicas
    to learn the input shapes. Across workers that average fails on integer ids
    (``ValueError: Attempt to convert a value (PerReplica...)``); one replica's batch
    has the same shapes and types, so the model is built from that instead.
    """
    if not (hasattr(model, "_maybe_symbolic_build") and hasattr(model, "_symbolic_build")):
        return  # another Keras: its own build stands

    strategy = model.distribute_strategy

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(local, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build
    if getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        _vector_logs(model)


def _vector_logs(model) -> None:
    """Across workers, Keras 3 (3.15) averages each step's logs along axis 0, which a
    scalar loss does not have (``Invalid reduction dimension 0 for input with 0
    dimensions``, TensorFlow issue #72388): the steps return each log as a 1-vector,
    whose average over the workers is the scalar Keras reports."""
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def vector_step(data, step=step):
            return {k: tf.reshape(v, (-1,)) for k, v in step(data).items()}

        setattr(model, name, vector_step)
