"""sklattn: attention-based recommender models as scikit-learn estimators."""

from . import _backend  # noqa: F401  (quiet TensorFlow import, Keras backend)
from .models import (
    AFMClassifier,
    DIENClassifier,
    DINClassifier,
    MINDRetriever,
    NFMClassifier,
    SumPoolingClassifier,
)
from .preprocessing import SequenceEncoder

__version__ = "0.1.0"

__all__ = [
    "AFMClassifier",
    "DIENClassifier",
    "DINClassifier",
    "MINDRetriever",
    "NFMClassifier",
    "SequenceEncoder",
    "SumPoolingClassifier",
    "__version__",
]
