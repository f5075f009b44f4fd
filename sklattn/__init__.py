"""sklattn: attention-based recommender models as scikit-learn estimators.

``import sklattn`` does not import TensorFlow: ``SequenceEncoder``,
``sklattn.preprocessing``, ``sklattn.datasets`` and ``sklattn.metrics`` work without
it. The models, ``sklattn.layers`` and ``sklattn.models`` import TensorFlow (through
``sklattn._backend``) when they are first used, e.g. ``from sklattn import
DINClassifier``.
"""

from __future__ import annotations

import importlib
import os

# The backend sklattn's models are written for, and TensorFlow's start-up log levels:
# set now (cheap) so that a Keras imported by the user before the first model agrees.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")

from .preprocessing import SequenceEncoder  # noqa: E402

__version__ = "0.1.0"

#: Names importable from ``sklattn`` that live in ``sklattn.models`` (loaded on demand).
_MODELS = (
    "AFMClassifier",
    "BERT4RecRetriever",
    "BSTClassifier",
    "DIENClassifier",
    "DINClassifier",
    "MINDRetriever",
    "NFMClassifier",
    "PRMReranker",
    "SASRecRetriever",
    "SumPoolingClassifier",
)

#: Functions importable from ``sklattn`` and the module they live in (loaded on demand:
#: they import TensorFlow).
_FUNCTIONS = {"export": "._export", "serving_inputs": "._export"}

#: Submodules reachable as attributes (``sklattn.layers``), imported on first access.
_SUBMODULES = (
    "base", "datasets", "layers", "metrics", "models", "plotting", "preprocessing",
)

__all__ = [*_MODELS, *_FUNCTIONS, "SequenceEncoder", "__version__"]


def __getattr__(name: str):
    if name in _MODELS:
        value = getattr(importlib.import_module(".models", __name__), name)
    elif name in _FUNCTIONS:
        value = getattr(importlib.import_module(_FUNCTIONS[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODELS, *_FUNCTIONS, *_SUBMODULES})
