"""sklattn: attention-based recommender models as scikit-learn estimators."""

from . import _backend  # noqa: F401  (quiet TensorFlow import, Keras backend)
from .models import DIENClassifier, DINClassifier, SumPoolingClassifier
from .preprocessing import SequenceEncoder

__version__ = "0.1.0"

__all__ = [
    "DIENClassifier",
    "DINClassifier", "SequenceEncoder", "SumPoolingClassifier", "__version__"]
