"""sklattn's estimators, one module per model."""

from .din import DINClassifier, SumPoolingClassifier

__all__ = ["DINClassifier", "SumPoolingClassifier"]
