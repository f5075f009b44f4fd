"""Keras building blocks of sklattn's models (backend-neutral ``keras.ops``)."""

from .activations import Dice, PReLU, get_activation
from .attention import ActivationUnit, BilinearAttention, masked_softmax
from .auxiliary import AuxiliaryLoss, NegativeSampler
from .core import MLP, MaskedPooling
from .embedding import Embedding
from .recurrent import AttentionGRU

__all__ = [
    "MLP",
    "ActivationUnit",
    "AttentionGRU",
    "AuxiliaryLoss",
    "BilinearAttention",
    "Dice",
    "Embedding",
    "MaskedPooling",
    "NegativeSampler",
    "PReLU",
    "get_activation",
    "masked_softmax",
]
