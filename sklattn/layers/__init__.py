"""Keras building blocks of sklattn's models (backend-neutral ``keras.ops``)."""

from .activations import Dice, PReLU, get_activation
from .attention import ActivationUnit, BilinearAttention
from .auxiliary import AuxiliaryLoss
from .capsule import CapsuleRouting, LabelAwareAttention, interest_counts, squash
from .core import MASKED_LOGIT, MLP, MaskedPooling, masked_softmax
from .embedding import Embedding, NumericEmbedding
from .interaction import AttentionalPooling, BiInteractionPooling, PairwiseProducts, pair_indices
from .recurrent import AttentionGRU
from .retrieval import SampledSoftmaxLoss
from .sampling import CandidateSampler, NegativeSampler, sampling_distribution
from .sequential import BinaryNextItemLoss, CatalogueSoftmaxLoss, ClozeMask, MaskToken
from .transformer import PositionEmbedding, TransformerBlock

__all__ = [
    "MASKED_LOGIT",
    "MLP",
    "ActivationUnit",
    "AttentionGRU",
    "AttentionalPooling",
    "AuxiliaryLoss",
    "BiInteractionPooling",
    "BilinearAttention",
    "BinaryNextItemLoss",
    "CandidateSampler",
    "CapsuleRouting",
    "CatalogueSoftmaxLoss",
    "ClozeMask",
    "Dice",
    "Embedding",
    "LabelAwareAttention",
    "MaskToken",
    "MaskedPooling",
    "NegativeSampler",
    "NumericEmbedding",
    "PReLU",
    "PairwiseProducts",
    "PositionEmbedding",
    "SampledSoftmaxLoss",
    "TransformerBlock",
    "get_activation",
    "interest_counts",
    "masked_softmax",
    "pair_indices",
    "sampling_distribution",
    "squash",
]
