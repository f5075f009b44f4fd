"""Preprocessing: raw logs to the encoded columns sklattn's models read.

Nothing here imports TensorFlow.
"""

from .._schema import FIRST_ID, OOV_ID, PAD_ID, TIME_GAP
from ._encoder import SequenceEncoder, find_sequence_columns
from ._history import make_history_table

__all__ = [
    "FIRST_ID",
    "OOV_ID",
    "PAD_ID",
    "TIME_GAP",
    "SequenceEncoder",
    "find_sequence_columns",
    "make_history_table",
]
