"""sklattn's estimators, one module per model."""

from .afm import AFMClassifier, NFMClassifier
from .dien import DIENClassifier
from .din import DINClassifier, SumPoolingClassifier
from .mind import MINDRetriever

__all__ = [
    "AFMClassifier",
    "DIENClassifier",
    "DINClassifier",
    "MINDRetriever",
    "NFMClassifier",
    "SumPoolingClassifier",
]
