"""Attentional Factorization Machines (Xiao et al., IJCAI 2017, arXiv:1708.04617).

A factorisation machine models a row as a set of fields, each with an embedding
``v_i``, and adds up the pairwise interactions ``v_i * v_j``. AFM weights each pair
by an attention net before summing; NFM (He & Chua, SIGIR 2017, arXiv:1708.05027),
the baseline it improves on, sums all pairs equally (bi-interaction pooling) and
feeds the sum to an MLP. Both live here and share the field embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval

from .._backend import keras
from .._schema import Schema
from ..base import BaseKerasClassifier, Graph
from ..layers import MLP, AttentionalPooling, BiInteractionPooling, PairwiseProducts, pair_indices
from ._blocks import HEAD_PARAMETERS, embed_fields, field_names, model_inputs

ops = keras.ops

__all__ = ["AFMClassifier", "NFMClassifier", "build_fm_graph"]


def build_fm_graph(
    schema: Schema,
    *,
    interaction: str = "attention",
    embedding_dim: int = 8,
    attention_factor: int = 8,
    l2_reg: float = 0.0,
    hidden_units: Sequence[int] = (64,),
    activation: str = "relu",
    dropout: float = 0.0,
    l2_reg_embedding: float = 0.0,
) -> Graph:
    """Build AFM (``interaction="attention"``) or NFM (``interaction="bi"``).

    Both compute ``w_0 + sum_i w_i x_i + f(v_1, ..., v_F)`` over the fields of
    :func:`~sklattn.models._blocks.field_names`: AFM's ``f`` is
    ``p^T sum_{i<j} a_ij (v_i * v_j)`` (dropout on the pooled vector), NFM's is
    an MLP on ``sum_{i<j} v_i * v_j`` (dropout on that vector).

    Parameters
    ----------
    schema : Schema
        Column roles and vocabulary sizes.
    interaction : {"attention", "bi"}, default="attention"
        AFM's attentional pooling or NFM's bi-interaction pooling.
    embedding_dim, attention_factor, l2_reg, hidden_units, activation, dropout, \
l2_reg_embedding
        See :class:`AFMClassifier` and :class:`NFMClassifier`.

    Returns
    -------
    Graph
        ``model``: inputs as :func:`~sklattn.models._blocks.model_inputs`, one logit
        per row; ``extras``: for AFM, ``{"attention": model}`` returning the
        ``(batch, pairs)`` weights in the order of :func:`~sklattn.layers.pair_indices`.
    """
    inputs = model_inputs(schema)
    # One lookup per table gives each field its vector v_i and, in one extra column,
    # its linear weight w_i x_i (a sequence's is the mean of its items' weights).
    both, emb = embed_fields(inputs, schema, embedding_dim + 1, l2=l2_reg_embedding)
    fields = both[:, :, :embedding_dim]
    linear = ops.sum(both[:, :, embedding_dim], axis=1)
    extras = {}
    if interaction == "attention":
        products = PairwiseProducts(name="pairwise_products")(fields)
        pooled, weights = AttentionalPooling(
            attention_factor, l2=l2_reg, name="attentional_pooling"
        )(products)
        x = keras.layers.Dropout(dropout, name="dropout")(pooled) if dropout else pooled
        name = "afm"
    else:
        x = BiInteractionPooling(name="bi_interaction")(fields)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = MLP(hidden_units, activation=activation, name="mlp")(x)
        name = "nfm"
    # The output layer's kernel is AFM's p (NFM's h) and its bias is w_0.
    logit = keras.layers.Dense(1, name="logit")(x) + ops.expand_dims(linear, -1)
    model = keras.Model(inputs, logit, name=name)
    if interaction == "attention":
        extras["attention"] = keras.Model(inputs, weights, name="afm_attention")
    return Graph(model, extras, emb.tables)


class _FMBase(BaseKerasClassifier):
    _parameter_constraints: dict = {
        **BaseKerasClassifier._parameter_constraints,
        "dropout": HEAD_PARAMETERS["dropout"],
        "l2_reg_embedding": [Interval(Real, 0, None, closed="left")],
    }

    def _after_fit(self, X, *, reset: bool) -> None:
        if reset:
            self.field_names_ = field_names(self.schema_)

    def _check_roles(self, schema: Schema, absent, *, training: bool) -> None:
        names = field_names(schema)
        if len(names) < 2:
            raise ValueError(
                f"{type(self).__name__} models interactions between pairs of fields and "
                f"needs at least 2, but X has {len(names)} feature(s) {names}."
            )
        missing = [c for c in schema.categorical if c in absent]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs every field, but the columns {missing} are "
                "missing from X."
            )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = False
        return tags


class AFMClassifier(_FMBase):
    """Attentional Factorization Machine click-through classifier.

    Every field ``i`` of a row (a categorical column, a behaviour sequence or a
    numeric column) gets a vector ``v_i``; every pair of fields interacts through
    ``v_i * v_j``, and an attention net decides how much each pair counts
    (Xiao et al., 2017)::

        a'_ij = h^T ReLU(W (v_i * v_j) + b),   a_ij = softmax over pairs (a'_ij)
        logit = w_0 + sum_i w_i x_i + p^T sum_{i<j} a_ij (v_i * v_j)

    Fields (see ``docs/afm.md``):

    * a categorical column is one embedding (a candidate column shares its table
      with its sequence);
    * a behaviour sequence is one field: the mean of its valid behaviours'
      embeddings (zero when the history is empty), and its linear weight is the mean
      of theirs;
    * a numeric column ``x_k`` is the field ``x_k * v_k`` with a learned ``v_k``
      (the factorisation machine's real-valued feature) and has a linear weight.

    Parameters
    ----------
    sequences : dict of str to str, default=None
        Only for input that is already integer-encoded and not produced by a
        :class:`~sklattn.SequenceEncoder`: sequence name -> candidate column
        (see :class:`DINClassifier`).
    categorical : list of str, default=None
        Only for pre-encoded input: the integer id columns. All remaining
        columns are numeric.
    embedding_dim : int, default=8
        Size ``k`` of every field vector.
    attention_factor : int, default=8
        Hidden size ``t`` of the attention net.
    l2_reg : float, default=0.0
        L2 penalty on the attention net's ``W``.
    l2_reg_embedding : float, default=0.0
        Mini-batch aware L2 on the embedding rows present in each batch, each
        scaled by the inverse of its training frequency (as in DIN).
    dropout : float, default=0.0
        Dropout on the pooled interaction vector.
    epochs : int, default=5
        Passes over the training data.
    batch_size : int, default=256
        Rows per gradient step.
    learning_rate : float, default=1e-3
        Adam's learning rate.
    validation_fraction : float, default=None
        Hold out this stratified fraction of the training rows and stop early
        when its loss has not improved for ``n_iter_no_change`` epochs.
    n_iter_no_change : int, default=3
        Patience of early stopping.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``.
    warm_start : bool, default=False
        Continue training the fitted model on the next ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and dropout.
    verbose : int, default=0
        0 silent, 1 progress bar, 2 one line per epoch.
    jit_compile : bool or "auto", default="auto"
        Compile the training step with XLA; ``"auto"`` does so on the TensorFlow
        backend when ``n_samples * epochs >= 300_000``.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels.
    schema_ : Schema
        Roles of the input columns and vocabulary sizes.
    field_names_ : list of str
        The fields, in the order the model pairs them.
    model_ : keras.Model
        The fitted Keras graph.
    history_ : dict
        Keras training history.
    n_iter_ : int
        Epochs run.
    feature_names_in_ : ndarray of str
        Input columns.
    n_features_in_ : int
        Number of input columns.

    See Also
    --------
    NFMClassifier : Bi-interaction pooling (all pairs weigh the same) and an MLP.
    sklattn.plotting.plot_interaction_importances : Heat map of the pair weights.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import AFMClassifier, SequenceEncoder
    >>> from sklattn.datasets import make_field_interactions
    >>> X, y = make_field_interactions(n_samples=500, n_fields=4, random_state=0)
    >>> model = make_pipeline(SequenceEncoder(), AFMClassifier(epochs=1, random_state=0))
    >>> model.fit(X, y).predict_proba(X.head(2)).shape
    (2, 2)
    >>> imp = model[-1].interaction_importances(model[0].transform(X))
    >>> list(imp.columns)
    ['field_a', 'field_b', 'weight']
    """

    _parameter_constraints: dict = {
        **_FMBase._parameter_constraints,
        "attention_factor": [Interval(Integral, 1, None, closed="left")],
        "l2_reg": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        sequences: Mapping[str, str] | None = None,
        categorical: Sequence[str] | None = None,
        embedding_dim: int = 8,
        attention_factor: int = 8,
        l2_reg: float = 0.0,
        l2_reg_embedding: float = 0.0,
        dropout: float = 0.0,
        epochs: int = 5,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        validation_fraction: float | None = None,
        n_iter_no_change: int = 3,
        class_weight: dict | str | None = None,
        warm_start: bool = False,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        jit_compile: bool | str = "auto",
    ) -> None:
        self.sequences = sequences
        self.categorical = categorical
        self.embedding_dim = embedding_dim
        self.attention_factor = attention_factor
        self.l2_reg = l2_reg
        self.l2_reg_embedding = l2_reg_embedding
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.jit_compile = jit_compile

    def _build_graph(self, schema: Schema):
        return build_fm_graph(
            schema,
            interaction="attention",
            embedding_dim=self.embedding_dim,
            attention_factor=self.attention_factor,
            l2_reg=self.l2_reg,
            dropout=self.dropout,
            l2_reg_embedding=self.l2_reg_embedding,
        )

    def interaction_weights(self, X) -> np.ndarray:
        """Attention weight of every field pair for every row.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Encoded rows, as passed to ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_pairs)
            Column ``p`` is the pair ``(field_names_[i[p]], field_names_[j[p]])`` with
            ``i, j = sklattn.layers.pair_indices(len(field_names_))``; rows sum to 1.
        """
        return self._extra_outputs(X, "attention").astype(np.float64)

    def interaction_importances(self, X) -> pd.DataFrame:
        """Mean attention weight of each field pair over the rows of X.

        Parameters
        ----------
        X : pandas.DataFrame or array-like
            Encoded rows (e.g. ``pipeline[:-1].transform(raw)``).

        Returns
        -------
        pandas.DataFrame
            One row per pair, ``field_a``, ``field_b``, ``weight``, by decreasing
            weight; the weights sum to 1. Draw it with
            :func:`sklattn.plotting.plot_interaction_importances`.
        """
        mean = self.interaction_weights(X).mean(axis=0)
        names = np.asarray(self.field_names_, dtype=object)
        rows, cols = pair_indices(len(names))
        frame = pd.DataFrame({"field_a": names[rows], "field_b": names[cols], "weight": mean})
        return frame.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)


class NFMClassifier(_FMBase):
    """Neural Factorization Machine click-through classifier (He & Chua, 2017).

    The fields are those of :class:`AFMClassifier`; their pairwise interactions
    are summed with equal weights by bi-interaction pooling,
    ``0.5 * ((sum_i v_i)^2 - sum_i v_i^2) = sum_{i<j} v_i * v_j``, and an MLP
    turns the sum into the logit, next to the linear part
    ``w_0 + sum_i w_i x_i``. The baseline AFM improves on.

    Parameters
    ----------
    sequences, categorical, embedding_dim, l2_reg_embedding, epochs, batch_size, \
learning_rate, validation_fraction, n_iter_no_change, class_weight, warm_start, \
random_state, verbose, jit_compile
        As in :class:`AFMClassifier`.
    hidden_units : sequence of int, default=(64,)
        Layers of the MLP after the bi-interaction (the paper finds one layer best).
    activation : {"relu", "dice", "prelu", "sigmoid", "tanh", "gelu"}, default="relu"
        Activation of the MLP.
    dropout : float, default=0.0
        Dropout on the bi-interaction vector.

    Attributes
    ----------
    classes_, schema_, field_names_, model_, history_, n_iter_, feature_names_in_, \
n_features_in_
        As in :class:`AFMClassifier`.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import NFMClassifier, SequenceEncoder
    >>> from sklattn.datasets import make_field_interactions
    >>> X, y = make_field_interactions(n_samples=500, n_fields=4, random_state=0)
    >>> model = make_pipeline(SequenceEncoder(), NFMClassifier(epochs=1, random_state=0))
    >>> model.fit(X, y).predict(X.head(3)).shape
    (3,)
    """

    _parameter_constraints: dict = {**_FMBase._parameter_constraints, **HEAD_PARAMETERS}

    def __init__(
        self,
        *,
        sequences: Mapping[str, str] | None = None,
        categorical: Sequence[str] | None = None,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (64,),
        activation: str = "relu",
        l2_reg_embedding: float = 0.0,
        dropout: float = 0.0,
        epochs: int = 5,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        validation_fraction: float | None = None,
        n_iter_no_change: int = 3,
        class_weight: dict | str | None = None,
        warm_start: bool = False,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        jit_compile: bool | str = "auto",
    ) -> None:
        self.sequences = sequences
        self.categorical = categorical
        self.embedding_dim = embedding_dim
        self.hidden_units = hidden_units
        self.activation = activation
        self.l2_reg_embedding = l2_reg_embedding
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.jit_compile = jit_compile

    def _build_graph(self, schema: Schema):
        return build_fm_graph(
            schema,
            interaction="bi",
            embedding_dim=self.embedding_dim,
            hidden_units=self.hidden_units,
            activation=self.activation,
            dropout=self.dropout,
            l2_reg_embedding=self.l2_reg_embedding,
        )
