"""Keras building blocks of sklattn's models (backend-neutral ``keras.ops``)."""

from .activations import Dice, PReLU, get_activation
from .attention import ActivationUnit, BilinearAttention, masked_softmax
from .auxiliary import AuxiliaryLoss, NegativeSampler
from .core import MLP, MaskedPooling
from .embedding import Embedding, NumericEmbedding
from .interaction import AttentionalPooling, BiInteractionPooling, PairwiseProducts, pair_indices
from .recurrent import AttentionGRU

__all__ = [
    "MLP",
    "ActivationUnit",
    "AttentionGRU",
    "AttentionalPooling",
    "AuxiliaryLoss",
    "BiInteractionPooling",
    "BilinearAttention",
    "Dice",
    "Embedding",
    "MaskedPooling",
    "NegativeSampler",
    "NumericEmbedding",
    "PReLU",
    "PairwiseProducts",
    "get_activation",
    "masked_softmax",
    "pair_indices",
]
