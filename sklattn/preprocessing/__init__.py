"""Preprocessing: raw logs to the encoded columns sklattn's models read.

Nothing here imports TensorFlow.
"""

from .._schema import FIRST_ID, OOV_ID, PAD_ID
from ._encoder import SequenceEncoder, find_sequence_columns
from ._history import make_history_table

__all__ = [
    "FIRST_ID",
    "OOV_ID",
    "PAD_ID",
    "SequenceEncoder",
    "find_sequence_columns",
    "make_history_table",
]
