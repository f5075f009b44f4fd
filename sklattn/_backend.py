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

__all__ = ["keras", "tf", "TF_BACKEND"]
