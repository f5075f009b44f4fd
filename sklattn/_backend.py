"""Quiet, single place where sklattn imports TensorFlow and Keras.

TensorFlow prints C++ start-up chatter (CUDA probing, oneDNN notices) on file
descriptor 2 while it is imported.  sklattn sets the documented environment
switches before the import and, unless ``SKLATTN_VERBOSE_TF=1`` is set, routes
that one import's native stderr to ``/dev/null``.  Python exceptions raised by
the import are not affected.
"""

from __future__ import annotations

import contextlib
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _native_stderr_silenced():
    if os.environ.get("SKLATTN_VERBOSE_TF") == "1" or "tensorflow" in sys.modules:
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


with _native_stderr_silenced():
    import keras  # noqa: E402
    import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")
try:  # absl's Python logger also speaks through TensorFlow's.
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
except ImportError:  # pragma: no cover - absl ships with TensorFlow
    pass

TF_BACKEND = keras.backend.backend() == "tensorflow"


def _threads_from_environment() -> None:
    """Size TensorFlow's two thread pools by ``OMP_NUM_THREADS`` when it is set.

    TensorFlow sizes its pools by the machine's cores, whatever the process's share
    of them. The parallel engines of scikit-learn tell each worker its share in
    ``OMP_NUM_THREADS``: joblib's loky backend sets it to ``cores // n_jobs``, a
    Dask nanny's worker and a Ray task to 1 (or the task's CPUs). sklattn follows it,
    so that two workers on two cores do not run four busy threads. The inter-op pool,
    which mostly waits, keeps two threads at least. ``TF_NUM_INTRAOP_THREADS`` and
    ``TF_NUM_INTEROP_THREADS``, TensorFlow's own settings, take precedence; so does a
    runtime already started (the pools are sized once).
    """
    value = os.environ.get("OMP_NUM_THREADS", "")
    if os.environ.get("TF_NUM_INTRAOP_THREADS") or not value.strip().isdigit():
        return
    n = int(value)
    if n < 1 or tf.config.threading.get_intra_op_parallelism_threads():
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        if not os.environ.get("TF_NUM_INTEROP_THREADS"):
            # Two at least: a tf.data pipeline fed by Python (a stream's chunks) runs
            # its generator on an inter-op thread while the step waits on another.
            tf.config.threading.set_inter_op_parallelism_threads(max(n, 2))
    except RuntimeError:  # TensorFlow's runtime had started: its pools stay as they are
        pass


_threads_from_environment()

__all__ = ["keras", "tf", "TF_BACKEND"]
