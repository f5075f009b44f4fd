"""Keras building blocks of sklattn's models (backend-neutral ``keras.ops``)."""

from .activations import Dice, PReLU, get_activation
from .attention import ActivationUnit, BilinearAttention, masked_softmax
from .auxiliary import AuxiliaryLoss, NegativeSampler
from .capsule import CapsuleRouting, LabelAwareAttention, interest_counts, squash
from .core import MLP, MaskedPooling
from .embedding import Embedding, NumericEmbedding
from .interaction import AttentionalPooling, BiInteractionPooling, PairwiseProducts, pair_indices
from .recurrent import AttentionGRU
from .retrieval import CandidateSampler, SampledSoftmaxLoss

__all__ = [
    "MLP",
    "ActivationUnit",
    "AttentionGRU",
    "AttentionalPooling",
    "AuxiliaryLoss",
    "BiInteractionPooling",
    "BilinearAttention",
    "CandidateSampler",
    "CapsuleRouting",
    "Dice",
    "Embedding",
    "LabelAwareAttention",
    "MaskedPooling",
    "NegativeSampler",
    "NumericEmbedding",
    "PReLU",
    "PairwiseProducts",
    "SampledSoftmaxLoss",
    "get_activation",
    "interest_counts",
    "masked_softmax",
    "pair_indices",
    "squash",
]
