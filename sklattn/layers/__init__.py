"""Keras building blocks of sklattn's models (backend-neutral ``keras.ops``)."""

from .activations import Dice, PReLU, get_activation
from .attention import ActivationUnit, masked_softmax
from .core import MLP, MaskedPooling
from .embedding import Embedding

__all__ = [
    "MLP",
    "ActivationUnit",
    "Dice",
    "Embedding",
    "MaskedPooling",
    "PReLU",
    "get_activation",
    "masked_softmax",
]
