"""Embedding tables."""

from __future__ import annotations

from .._backend import keras

ops = keras.ops


def _fresh(initializer):
    """A copy of ``initializer`` for one table: an unseeded Keras initializer repeats its
    values on every call, so tables sharing one would start from the same numbers."""
    if initializer is None:
        return None
    return type(initializer).from_config(initializer.get_config())


@keras.saving.register_keras_serializable(package="sklattn")
class Embedding(keras.layers.Layer):
    """Embedding table with optional mini-batch aware L2 regularisation.

    The penalty of Zhou et al. (2018, eq. 4) is added in training only:
    ``l2 * sum_j [j in batch] * ||w_j||^2 / n_j``, the sum running over the
    distinct ids ``j`` present in the batch (padding id 0 excluded) and
    ``n_j`` being id ``j``'s count in the training data (stored in the
    non-trainable ``frequency`` weight, set with :meth:`set_frequencies`).
    Rows of ids absent from the batch are neither penalised nor updated.

    Parameters
    ----------
    input_dim : int
        Vocabulary size.
    output_dim : int
        Embedding size.
    l2 : float, default=0.0
        Strength of the mini-batch aware penalty; 0 disables it.
    embeddings_initializer : str or keras.initializers.Initializer, default=None
        Initial values of the table; None is ``RandomUniform(-0.05, 0.05)``
        (Keras' default for embeddings).

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import Embedding
    >>> tuple(Embedding(10, 4)(np.array([[1, 2, 0]])).shape)
    (1, 3, 4)
    """

    def __init__(self, input_dim: int, output_dim: int, l2: float = 0.0,
                 embeddings_initializer=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.l2 = float(l2)
        self.embeddings_initializer = (
            None if embeddings_initializer is None
            else keras.initializers.get(embeddings_initializer)
        )

    def build(self, input_shape=None) -> None:
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            # Created here, not in __init__: an unseeded initializer draws its seed when
            # it is made, and the tables' values must not depend on when that is.
            initializer=_fresh(self.embeddings_initializer)
            or keras.initializers.RandomUniform(-0.05, 0.05),
            name="embeddings",
        )
        if self.l2:
            self.frequency = self.add_weight(
                shape=(self.input_dim,), initializer="ones", trainable=False, name="frequency"
            )

    def set_frequencies(self, counts) -> None:
        """Store each id's training count ``n_j`` (values below 1 count as 1)."""
        if self.l2:
            self.frequency.assign(ops.maximum(ops.cast(counts, "float32"), 1.0))

    def call(self, ids, training=None, penalize=True):
        ids = ops.cast(ids, "int32")
        if training and self.l2 and penalize:
            flat = ops.reshape(ids, (-1,))
            counts = ops.segment_sum(ops.ones_like(flat, dtype="float32"), flat, self.input_dim)
            present = ops.cast(counts > 0, "float32")
            present = ops.concatenate([ops.zeros((1,)), present[1:]])
            norms = ops.sum(ops.square(self.embeddings), axis=-1)
            self.add_loss(self.l2 * ops.sum(present * norms / self.frequency))
        return ops.take(self.embeddings, ids, axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "l2": self.l2,
            "embeddings_initializer": (
                None if self.embeddings_initializer is None
                else keras.initializers.serialize(self.embeddings_initializer)
            ),
        }


@keras.saving.register_keras_serializable(package="sklattn")
class NumericEmbedding(keras.layers.Layer):
    """One learned vector per numeric column, scaled by the column's value.

    Input ``(batch, columns)`` of floats, output ``(batch, columns, dim)`` with
    row ``k`` equal to ``x_k * v_k``: the factorisation machine's treatment of a
    real-valued feature, which lets numeric columns interact like categorical fields.

    Parameters
    ----------
    n_columns : int
        Number of numeric columns.
    output_dim : int
        Vector size.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import NumericEmbedding
    >>> tuple(NumericEmbedding(2, 4)(np.ones((3, 2), "float32")).shape)
    (3, 2, 4)
    """

    def __init__(self, n_columns: int, output_dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_columns = int(n_columns)
        self.output_dim = int(output_dim)

    def build(self, input_shape=None) -> None:
        self.vectors = self.add_weight(
            shape=(self.n_columns, self.output_dim),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
            name="vectors",
        )

    def call(self, values):
        return ops.expand_dims(values, -1) * self.vectors

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_columns": self.n_columns, "output_dim": self.output_dim}
