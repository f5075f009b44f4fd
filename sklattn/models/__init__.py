"""sklattn's estimators, one module per model."""

from .dien import DIENClassifier
from .din import DINClassifier, SumPoolingClassifier

__all__ = ["DIENClassifier", "DINClassifier", "SumPoolingClassifier"]
