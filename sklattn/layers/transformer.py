"""The transformer block of BST, SASRec and BERT4Rec, and learned index positions."""

from __future__ import annotations

from .._backend import keras
from .core import MASKED_LOGIT

ops = keras.ops


@keras.saving.register_keras_serializable(package="sklattn")
class TransformerBlock(keras.layers.Layer):
    """One transformer encoder layer over a padded behaviour sequence.

    Multi-head scaled dot-product self-attention (Vaswani et al., 2017), then a
    position-wise feed-forward network, each followed by dropout, a residual
    connection and layer normalisation (``norm_first=False``: BST and BERT4Rec, the
    papers' post-norm) or preceded by the normalisation (``norm_first=True``: the
    pre-norm of SASRec's official code, more stable with many blocks).

    Padding is exact: a key that is padding gets attention weight exactly 0 (the
    masked keys' scores get :data:`~sklattn.layers.MASKED_LOGIT`, and the weights are
    multiplied by the mask), and the output at a padded position is
    0, so whatever a padded position holds never reaches a real one. With
    ``causal=True`` position ``t`` attends only to positions ``<= t`` (SASRec), so
    its output never depends on later positions.

    ``call(x, valid, training=None, return_attention=False, last_only=False,
    select=None)``: ``x``
    ``(batch, steps, dim)``, ``valid`` ``(batch, steps)`` (True = real position).
    Returns the new ``(batch, steps, dim)`` sequence, and with ``return_attention``
    also the weights ``(batch, n_heads, steps, steps)`` (query, key). With
    ``last_only`` only the last position's output is computed (its query still
    attends to every valid key): ``(batch, 1, dim)`` and weights ``(batch, n_heads,
    1, steps)``, the same values as the last row of the full call, for a model that
    reads nothing else (BST's candidate, appended last). ``select`` ``(batch, q,
    steps)``, rows one-hot (or all zero), computes only the selected positions'
    outputs, ``select @ full_output`` (a zero row gives 0), and weights ``(batch,
    n_heads, q, steps)``: BERT4Rec's last block computes only its hidden positions.

    Parameters
    ----------
    n_heads : int, default=2
        Attention heads; ``dim`` must be a multiple of it (each head has ``dim /
        n_heads`` dimensions, as in the papers).
    ff_units : int, default=None
        Width of the feed-forward layer; ``None`` is ``4 * dim`` (BERT, BST).
    activation : str, default="leaky_relu"
        Activation of the feed-forward layer: ``"leaky_relu"`` (BST), ``"relu"``
        (SASRec), ``"gelu"`` (BERT4Rec), or any Keras activation name.
    dropout : float, default=0.1
        Dropout of the attention weights and of both sub-layers' outputs.
    causal : bool, default=False
        Forbid attention to later positions.
    norm_first : bool, default=False
        Pre-norm instead of post-norm.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import TransformerBlock
    >>> x = np.ones((2, 3, 4), "float32"); valid = np.array([[0, 1, 1], [1, 1, 1]], bool)
    >>> out, w = TransformerBlock(n_heads=2)(x, valid, return_attention=True)
    >>> tuple(out.shape), tuple(w.shape)
    ((2, 3, 4), (2, 2, 3, 3))
    """

    def __init__(
        self,
        n_heads: int = 2,
        ff_units: int | None = None,
        activation: str = "leaky_relu",
        dropout: float = 0.1,
        causal: bool = False,
        norm_first: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.n_heads = int(n_heads)
        self.ff_units = None if ff_units is None else int(ff_units)
        self.activation = activation
        self.dropout = float(dropout)
        self.causal = bool(causal)
        self.norm_first = bool(norm_first)
        if self.n_heads < 1:
            raise ValueError(f"n_heads must be >= 1, got {n_heads}.")

    def build(self, x_shape, valid_shape=None) -> None:
        dim = int(x_shape[-1])
        if dim % self.n_heads:
            raise ValueError(
                f"The transformer's input size {dim} is not a multiple of n_heads="
                f"{self.n_heads}."
            )
        self.dim = dim
        self.head_dim = dim // self.n_heads
        self.qkv = keras.layers.Dense(3 * dim, name="qkv")
        self.qkv.build((None, None, dim))
        self.attention_output = keras.layers.Dense(dim, name="attention_output")
        self.attention_output.build((None, None, dim))
        units = self.ff_units or 4 * dim
        # LeakyReLU's slope: Keras' default 0.2 (BST's paper does not give one).
        act = keras.activations.get(self.activation)
        self.ff_in = keras.layers.Dense(units, activation=act, name="ff_in")
        self.ff_in.build((None, None, dim))
        self.ff_out = keras.layers.Dense(dim, name="ff_out")
        self.ff_out.build((None, None, units))
        self.norm_attention = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_attention")
        self.norm_attention.build((None, None, dim))
        self.norm_ff = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_ff")
        self.norm_ff.build((None, None, dim))
        self.drop_weights = keras.layers.Dropout(self.dropout)
        self.drop_attention = keras.layers.Dropout(self.dropout)
        self.drop_ff = keras.layers.Dropout(self.dropout)

    def _attend(self, x, valid, training, last_only=False, select=None):
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        queries = 1 if last_only else steps if select is None else ops.shape(select)[1]

        def heads(t, n):  # (batch, n, dim) -> (batch, heads, n, head_dim)
            t = ops.reshape(t, (batch, n, self.n_heads, self.head_dim))
            return ops.transpose(t, (0, 2, 1, 3))

        q, k, v = ops.split(self.qkv(x), 3, axis=-1)
        if last_only:
            q = q[:, -1:, :]
        elif select is not None:
            q = ops.matmul(select, q)
        q, k, v = heads(q, queries), heads(k, steps), heads(v, steps)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / (self.head_dim**0.5)
        mask = ops.expand_dims(ops.expand_dims(valid, 1), 1)  # keys: (batch, 1, 1, steps)
        if self.causal:
            lower = ops.tril(ops.ones((steps, steps), dtype="bool"))
            if last_only:
                lower = lower[-1:, :]
                mask = ops.logical_and(mask, lower[None, None, :, :])
            elif select is not None:  # the selected positions' rows of the causal mask
                rows = ops.matmul(select, ops.cast(lower, select.dtype)) > 0.5
                mask = ops.logical_and(mask, ops.expand_dims(rows, 1))
            else:
                mask = ops.logical_and(mask, lower[None, None, :, :])
        # The masked keys' scores plus MASKED_LOGIT, then the mask: exactly
        # masked_softmax's weights here, where a score is a dot product of projections
        # of finite (and at padding, zeroed) inputs, so far from 1e9, and an exp of a
        # masked score - 1e9 underflows to 0. A quarter of the time of masked_softmax,
        # whose shift makes it exact for scores of any size: 0.8 against 3.6 ms per
        # forward and backward pass of (256, 2, 21, 21) scores, on one core.
        masked = ops.full((), MASKED_LOGIT, scores.dtype)
        bias = ops.where(mask, ops.zeros((), scores.dtype), masked)
        weights = ops.softmax(scores + bias, axis=-1) * ops.cast(mask, scores.dtype)
        out = ops.matmul(self.drop_weights(weights, training=training), v)
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (batch, queries, self.dim))
        return self.attention_output(out), weights

    def call(self, x, valid, training=None, return_attention=False, last_only=False,
             select=None):
        valid = ops.cast(valid, "bool")
        keep = ops.expand_dims(ops.cast(valid, x.dtype), -1)
        # Padded positions start as 0: their content never enters a projection's output
        # at a real position (the keys are masked), and their own outputs are zeroed.
        x = x * keep

        def queries(t):  # the rows of the positions whose outputs are computed
            if last_only:
                return t[:, -1:, :]
            return t if select is None else ops.matmul(select, t)

        if self.norm_first:
            attended, weights = self._attend(self.norm_attention(x), valid, training,
                                             last_only, select)
            x, keep = queries(x), queries(keep)
            x = x + self.drop_attention(attended, training=training)
            ff = self.ff_out(self.ff_in(self.norm_ff(x)))
            x = x + self.drop_ff(ff, training=training)
        else:
            attended, weights = self._attend(x, valid, training, last_only, select)
            x, keep = queries(x), queries(keep)
            x = self.norm_attention(x + self.drop_attention(attended, training=training))
            ff = self.ff_out(self.ff_in(x))
            x = self.norm_ff(x + self.drop_ff(ff, training=training))
        x = x * keep
        return (x, weights) if return_attention else x

    def compute_output_shape(self, x_shape, valid_shape=None):
        return tuple(x_shape)

    def compute_output_spec(self, x, valid=None, training=None, return_attention=False,
                            last_only=False, select=None):
        # Keras derives a symbolic call's output from compute_output_shape only when every
        # argument of that method is a shape: return_attention is not, so a functional
        # model (BST's attention output) needs the spec spelled out here.
        queries = 1 if last_only else x.shape[1] if select is None else select.shape[1]
        out = keras.KerasTensor((x.shape[0], queries, x.shape[2]), dtype=x.dtype)
        if not return_attention:
            return out
        shape = (x.shape[0], self.n_heads, queries, x.shape[1])
        return out, keras.KerasTensor(shape, dtype=x.dtype)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "n_heads": self.n_heads,
            "ff_units": self.ff_units,
            "activation": self.activation,
            "dropout": self.dropout,
            "causal": self.causal,
            "norm_first": self.norm_first,
        }


@keras.saving.register_keras_serializable(package="sklattn")
class PositionEmbedding(keras.layers.Layer):
    """Learned index positions: one vector per position of a fixed-length sequence.

    sklattn's sequences are left-padded, so position ``steps - 1`` is always the most
    recent event: a learned position means "k events ago" for every row.

    ``call(x)`` with ``x`` ``(batch, steps, ...)`` returns ``(1, steps, dim)``,
    broadcastable against ``x``'s embeddings.

    Parameters
    ----------
    max_len : int
        Number of positions.
    dim : int
        Size of each position's vector.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import PositionEmbedding
    >>> tuple(PositionEmbedding(5, 4)(np.zeros((2, 5, 4), "float32")).shape)
    (1, 5, 4)
    """

    def __init__(self, max_len: int, dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_len = int(max_len)
        self.dim = int(dim)

    def build(self, x_shape=None) -> None:
        self.embeddings = self.add_weight(
            shape=(self.max_len, self.dim),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
            name="embeddings",
        )

    def call(self, x):
        steps = ops.shape(x)[1]
        return ops.expand_dims(self.embeddings[-steps:], 0)

    def compute_output_shape(self, x_shape):
        return (1, x_shape[1], self.dim)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_len": self.max_len, "dim": self.dim}
