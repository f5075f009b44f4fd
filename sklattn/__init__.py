"""sklattn: attention-based recommender models as scikit-learn estimators.

``import sklattn`` does not import TensorFlow: ``SequenceEncoder``,
``sklattn.preprocessing``, ``sklattn.datasets`` and ``sklattn.metrics`` work without
it. The models, ``sklattn.layers`` and ``sklattn.models`` import TensorFlow (through
``sklattn._backend``) when they are first used, e.g. ``from sklattn import
DINClassifier``.
"""

from __future__ import annotations

import importlib

from .preprocessing import SequenceEncoder

__version__ = "0.1.0"

#: Names importable from ``sklattn`` that live in ``sklattn.models`` (loaded on demand).
_MODELS = (
    "AFMClassifier",
    "DIENClassifier",
    "DINClassifier",
    "MINDRetriever",
    "NFMClassifier",
    "SumPoolingClassifier",
)

__all__ = [*_MODELS, "SequenceEncoder", "__version__"]


def __getattr__(name: str):
    if name in _MODELS:
        value = getattr(importlib.import_module(".models", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODELS})
