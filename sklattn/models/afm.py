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
from ..layers import (
    MLP,
    AttentionalPooling,
    BiInteractionPooling,
    NumericEmbedding,
    PairwiseProducts,
    pair_indices,
)
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
        ``(batch, pairs)`` weights in the order of :func:`~sklattn.layers.pair_indices`;
        ``layers["logit"]``: the output ``Dense(1)`` layer (its bias is ``w_0``).

    Notes
    -----
    Every linear weight ``w_i`` starts at 0, as in the AFM paper's code; the field
    vectors keep the tables' small uniform initialisation. See :class:`AFMClassifier`.
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
    output = keras.layers.Dense(1, name="logit")
    logit = output(x) + ops.expand_dims(linear, -1)
    model = keras.Model(inputs, logit, name=name)
    if interaction == "attention":
        extras["attention"] = keras.Model(inputs, weights, name="afm_attention")
    _zero_linear_weights(model, emb.tables.values(), embedding_dim)
    return Graph(model, extras, emb.tables, layers={"logit": output})


def _zero_linear_weights(model, tables, embedding_dim: int) -> None:
    """Start every linear weight ``w_i`` (the last column of each field table) at 0.

    The tables' random start (uniform in +-0.05) puts a random linear model in front of
    a fit, and a short fit cannot undo it: 5 Adam steps at 3e-3 move a weight by 0.015
    at most. On the 200 rows of scikit-learn's ``check_classifiers_train`` (5 epochs of
    one batch) AFM then scored 0.5, 0.595, 0.5, 0.78 and 0.5 training accuracy over
    seeds 0-4; started at 0, as in the AFM paper's code, the first steps give the
    weights the data's signs: 0.98, 0.975, 0.98, 0.855, 0.855. On MovieLens-100k the
    change is within seed noise (``benchmarks/fm_defaults.py``).
    """
    variables = [table.embeddings for table in tables]
    variables += [layer.vectors for layer in model.layers if isinstance(layer, NumericEmbedding)]
    for var in variables:
        var.assign(ops.slice_update(var, (0, embedding_dim), ops.zeros((var.shape[0], 1))))


def _weighted_log_odds(targets: np.ndarray, weights: np.ndarray | None) -> float:
    """Log-odds of the positive class under the training weights, clipped to +-13.8
    (a rate of 1e-6); 0 when fewer than two classes carry weight."""
    w = np.ones_like(targets, dtype=np.float64) if weights is None else weights.astype(np.float64)
    total = w.sum()
    if not total > 0 or len(np.unique(targets[w > 0])) < 2:
        # One class (e.g. a first partial_fit batch of negatives): its log-odds (+-13.8)
        # would pin w_0 far from any later batch's rate (a model fed 10 balanced batches
        # after one of 256 negatives still predicted 0.000); start neutral instead.
        return 0.0
    rate = np.clip(float((w * targets).sum() / total), 1e-6, 1 - 1e-6)
    return float(np.log(rate / (1 - rate)))


class _FMBase(BaseKerasClassifier):
    _reuse_graphs = True
    _parameter_constraints: dict = {
        **BaseKerasClassifier._parameter_constraints,
        "dropout": HEAD_PARAMETERS["dropout"],
        "l2_reg_embedding": [Interval(Real, 0, None, closed="left")],
    }

    def _set_data_statistics(self, ids, targets, weights) -> None:
        super()._set_data_statistics(ids, targets, weights)
        # w_0 starts at the log-odds of the weighted base rate, the best constant model.
        # With class_weight={0: 1000, 1: 1e-4} (check_class_weight_classifiers), 5 steps
        # from w_0 = 0 left AFM predicting class 0 for 32-54% of the rows (seeds 0-4):
        # the weights of the unscaled features (|x| ~ 20) moved as fast as w_0. From
        # the base rate (-13.8 here): 100%.
        logit = _weighted_log_odds(targets, weights)
        self._layers["logit"].bias.assign(np.array([logit], dtype=np.float32))

    def _after_fit(self, X, *, reset: bool, targets, weights) -> None:
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
    learning_rate : float, default=3e-3
        Adam's learning rate. 3e-3 rather than DIN's 1e-3: it is the rate at which
        5 epochs suit both a few hundred rows (scikit-learn's checks, 5 steps) and
        MovieLens-100k (1,565 steps), see Notes.
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
    distribute : {"mirrored", "multi_worker"}, tf.distribute.Strategy or None, \
default=None
        Train under a ``tf.distribute`` strategy (``batch_size`` is then the global
        batch); see ``docs/scaling.md``.

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

    Notes
    -----
    Initialisation (both models; see ``docs/afm.md``): the linear weights ``w_i``
    start at 0, as in the AFM paper's code, and ``w_0`` at the log-odds of the
    positive class among the training rows, weighted by ``sample_weight`` and
    ``class_weight`` (clipped to a rate in ``[1e-6, 1 - 1e-6]``), which is the best
    constant model; at 0 when fewer than two classes carry weight. The field vectors and
    the attention net keep Keras' random initialisation. A warm start or ``partial_fit``
    after the first call keeps the trained weights.

    Measured with ``benchmarks/fm_defaults.py`` (seeds 0-4 on the checks' data, 0-2
    on MovieLens): with the former defaults (random linear weights, ``w_0 = 0``,
    learning rate 1e-3) scikit-learn's ``check_classifiers_train`` and
    ``check_class_weight_classifiers`` failed (training accuracy 0.5-0.65); now AFM
    scores 0.855-0.98 and NFM 0.945-0.98, and every weighted check row is predicted
    class 0. MovieLens-100k test AUC with the defaults (means over seeds 0-2): AFM
    0.6963 (history fields) and 0.6970 (tabular), against 0.6929 and 0.6963 before;
    NFM 0.6899 and 0.6916, against 0.6892 and 0.6919.

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
        learning_rate: float = 3e-3,
        validation_fraction: float | None = None,
        n_iter_no_change: int = 3,
        class_weight: dict | str | None = None,
        warm_start: bool = False,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        jit_compile: bool | str = "auto",
        distribute: str | object | None = None,
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
        self.distribute = distribute

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
validation_fraction, n_iter_no_change, class_weight, warm_start, random_state, \
verbose, jit_compile, distribute
        As in :class:`AFMClassifier`.
    learning_rate : float, default=1e-3
        Adam's learning rate.
    hidden_units : sequence of int, default=(64,)
        Layers of the MLP after the bi-interaction (the paper finds one layer best).
    activation : {"relu", "dice", "prelu", "sigmoid", "tanh", "gelu"}, default="relu"
        Activation of the MLP.
    dropout : float, default=0.3
        Dropout on the bi-interaction vector (the authors' code drops half of it).
        With it and learning rate 1e-3, NFM scored 0.6945 on MovieLens-100k (3
        seeds, 3 epochs) against 0.6914 with the former 0 and 3e-3, and 0.6926
        with 0.5 (docs/reference_differences.md).

    Attributes
    ----------
    classes_, schema_, field_names_, model_, history_, n_iter_, feature_names_in_, \
n_features_in_
        As in :class:`AFMClassifier`.

    Notes
    -----
    The linear weights start at 0 and ``w_0`` at the log-odds of the weighted
    training labels, as in :class:`AFMClassifier` (see its Notes).

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
        dropout: float = 0.3,
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
        distribute: str | object | None = None,
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
        self.distribute = distribute

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
