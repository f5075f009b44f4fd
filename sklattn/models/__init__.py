"""sklattn's estimators, one module per model."""

from .afm import AFMClassifier, NFMClassifier
from .bert4rec import BERT4RecRetriever
from .bst import BSTClassifier
from .dien import DIENClassifier
from .din import DINClassifier, SumPoolingClassifier
from .mind import MINDRetriever
from .prm import PRMReranker
from .sasrec import SASRecRetriever

__all__ = [
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
]
