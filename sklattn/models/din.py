"""Deep Interest Network (Zhou et al., KDD 2018, arXiv:1706.06978).

The user's interest in a candidate is a weighted sum of the embeddings of
the user's past behaviours, each weighted by an activation unit that scores
the behaviour against the candidate. The paper's Base Model replaces the
activation unit by plain sum pooling; both live here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, StrOptions

from .._backend import TF_BACKEND, keras
from .._data import as_frame
from .._schema import Schema
from ..base import BaseKerasClassifier, Graph
from ..layers import ActivationUnit, MaskedPooling
from ._blocks import (
    HEAD_PARAMETERS,
    LAYER_WIDTHS,
    attended_groups,
    check_candidates_present,
    embed_inputs,
    group_inputs,
    model_inputs,
    output_logit,
    position_weights,
)

__all__ = ["DINClassifier", "SumPoolingClassifier", "build_din_graph"]

#: |logit| beyond which a predicted probability is within 3.1e-7 of 0 or 1.
_SATURATED_LOGIT = 15.0
#: Training rows (evenly spaced) that the saturation check scores after a fit.
_SATURATION_SAMPLE = 1000


def build_din_graph(
    schema: Schema,
    *,
    embedding_dim: int = 8,
    hidden_units: Sequence[int] = (256, 128),
    attention_units: Sequence[int] = (80, 40),
    activation: str = "dice",
    dropout: float = 0.0,
    normalize_attention: bool = False,
    l2_reg_embedding: float = 0.0,
    pooling: str = "attention",
    attention_activation: str | None = None,
) -> Graph:
    """Build DIN (``pooling="attention"``) or the Base Model (``pooling="sum"``, or its
    length-normalised variant ``pooling="mean"``).

    Parameters
    ----------
    schema : Schema
        Column roles and vocabulary sizes.
    embedding_dim, hidden_units, attention_units, activation, dropout
        See :class:`DINClassifier`.
    normalize_attention : bool, default=False
        Softmax-normalise the attention weights.
    l2_reg_embedding : float, default=0.0
        Mini-batch aware L2 strength of the embedding tables.
    pooling : {"attention", "sum", "mean"}, default="attention"
        How each attended sequence is pooled: the activation unit's weighted sum, or
        the plain sum or mean of its valid behaviours.
    attention_activation : str, default=None
        Activation of the activation unit's MLP; None uses ``activation``.

    Returns
    -------
    Graph
        ``model``: inputs as :func:`~sklattn.models._blocks.model_inputs`, one logit
        per row; ``extras``: ``{"attention": model}`` returning each attended
        sequence's weights (only for ``pooling="attention"``).
    """
    inputs = model_inputs(schema)
    emb = embed_inputs(inputs, schema, embedding_dim, l2=l2_reg_embedding)
    features, weights = [], {}
    attended, candidates = set(), set()
    for names, cands in attended_groups(schema):
        keys, query, mask = group_inputs(emb, names, cands)
        if pooling == "attention":
            unit = ActivationUnit(
                attention_units,
                activation=attention_activation or activation,
                normalize=normalize_attention,
                name=f"attention_{names[0]}",
            )
            pooled, w = unit(query, keys, mask)
            weights[names[0]] = w
        else:
            pooled = MaskedPooling(pooling, name=f"{pooling}_pooling_{names[0]}")(keys, mask)
        features += [pooled, query]
        attended.update(names)
        candidates.update(cands)
    logit = output_logit(
        emb, features, attended, candidates, hidden_units=hidden_units,
        activation=activation, dropout=dropout,
    )
    model = keras.Model(inputs, logit, name="din" if pooling == "attention" else "base_model")
    extras = {}
    if weights:
        extras["attention"] = keras.Model(inputs, weights, name="din_attention")
    return Graph(model, extras, emb.tables)


class _DINBase(BaseKerasClassifier):
    _reuse_graphs = True
    _parameter_constraints: dict = {
        **BaseKerasClassifier._parameter_constraints,
        **HEAD_PARAMETERS,
        "l2_reg_embedding": [Interval(Real, 0, None, closed="left")],
    }

    def _check_roles(self, schema: Schema, absent, *, training: bool) -> None:
        check_candidates_present(self, schema, absent)

    def _use_xla(self, n_train: int) -> bool:
        # DIN on MovieLens-100k (2 cores, embedding 16, Dice): XLA trains 64,000
        # samples/s against 31,000 without, after compiling for about 2.6 s (once
        # per process and architecture: compiled graphs are reused, and every
        # batch has the same shape). It pays from about 100,000 samples. With
        # dropout XLA's CPU random numbers made steps several times slower.
        return TF_BACKEND and n_train >= 100_000 and not self.dropout

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = False
        return tags


class DINClassifier(_DINBase):
    """Deep Interest Network click-through classifier.

    Each past behaviour ``h_t`` of a user is scored against the candidate
    ``q`` by an activation unit, an MLP on ``[h_t, q, h_t - q, h_t * q]``; the
    user's interest in this candidate is ``sum_t w_t h_t`` (padded positions
    weigh 0). It is concatenated with the candidate, the other categorical
    embeddings and the numeric features and fed to an MLP with a sigmoid
    output (Zhou et al., 2018).

    Sequence and candidate share one embedding table (e.g. ``userRatedMovie``
    and ``movieId``). Sequences without their candidate column are
    mean-pooled instead of attended.

    Parameters
    ----------
    sequences : dict of str to str, default=None
        Only for input that is already integer-encoded and not produced by a
        :class:`~sklattn.SequenceEncoder`: sequence name -> candidate column,
        e.g. ``{"hist_item": "item"}`` with columns ``hist_item_1..N`` (oldest
        to newest, 0 = padding). Vocabulary sizes are the largest id + 1; larger
        ids at predict time count as unseen (id 1).
    categorical : list of str, default=None
        Only for pre-encoded input: the other integer id columns. All remaining
        columns are numeric.
    embedding_dim : int, default=8
        Size of every embedding.
    hidden_units : sequence of int, default=(256, 128)
        Layers of the output MLP.
    attention_units : sequence of int, default=(80, 40)
        Layers of the activation unit's MLP.
    activation : {"dice", "prelu", "relu", "sigmoid", "tanh", "gelu"}, default="dice"
        Activation of the output MLP. Dice uses batch statistics in training
        and their moving averages at inference.
    attention_activation : {"dice", "prelu", "relu", "sigmoid", "tanh", "gelu"}, \
default=None
        Activation of the activation unit's MLP; None uses ``activation``. DeepCTR
        uses ReLU in the output MLP and Dice here, the authors' released code
        sigmoid here; on MovieLens-100k Dice in both scored highest
        (docs/reference_differences.md).
    normalize_attention : bool, default=False
        Softmax-normalise the attention weights over the valid behaviours (the
        paper keeps raw weights so the pooled vector carries the intensity).
    l2_reg_embedding : float, default=0.3
        Mini-batch aware regularisation: L2 on only the embedding rows present
        in each batch, each scaled by the inverse of its training frequency.
        The default was picked on MovieLens-100k (3 epochs, 3 seeds: test AUC
        0.7044-0.7069 against 0.7006 without it, 0.7024 at 0.1); 0 switches it off.
    dropout : float, default=0.0
        Dropout after each layer of the output MLP.
    epochs : int, default=5
        Passes over the training data.
    batch_size : int, default=256
        Rows per gradient step.
    learning_rate : float, default=1e-3
        Adam's learning rate.
    validation_fraction : float, default=None
        Hold out this stratified fraction of the training rows and stop early
        when its loss has not improved for ``n_iter_no_change`` epochs,
        restoring the best weights.
    n_iter_no_change : int, default=3
        Patience of early stopping.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``.
    warm_start : bool, default=False
        Continue training the fitted model on the next ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and dropout; an int gives identical
        predictions for identical calls.
    verbose : int, default=0
        0 silent, 1 progress bar, 2 one line per epoch.
    jit_compile : bool or "auto", default="auto"
        Compile the training step with XLA (1.7-2x the CPU throughput with
        Dice, after a compile of about 2.6 s, paid once per process and
        architecture). ``"auto"`` does so on the TensorFlow backend when
        ``n_samples * epochs >= 100_000`` and ``dropout`` is 0.
    distribute : {"mirrored", "multi_worker"}, tf.distribute.Strategy or None, \
default=None
        Train under a ``tf.distribute`` strategy (``batch_size`` is then the global
        batch); see ``docs/scaling.md``.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels; ``predict_proba[:, 1]`` is the probability of ``classes_[1]``.
    schema_ : Schema
        Roles of the input columns and vocabulary sizes.
    model_ : keras.Model
        The fitted Keras graph (inputs: id matrix, numeric matrix; output: logit).
    history_ : dict
        Keras training history (``loss``, ``val_loss``).
    n_iter_ : int
        Epochs run.
    feature_names_in_ : ndarray of str
        Input columns (DataFrame input).
    n_features_in_ : int
        Number of input columns.

    See Also
    --------
    SumPoolingClassifier : The paper's Base Model (sum pooling instead of attention).
    SequenceEncoder : Produces the encoded input.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import DINClassifier, SequenceEncoder
    >>> from sklattn.datasets import make_interest_sequences
    >>> X, y = make_interest_sequences(n_samples=500, random_state=0)
    >>> model = make_pipeline(
    ...     SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}),
    ...     DINClassifier(epochs=1, random_state=0),
    ... ).fit(X, y)
    >>> model.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _parameter_constraints: dict = {
        **_DINBase._parameter_constraints,
        "attention_units": [LAYER_WIDTHS],
        "attention_activation": [*HEAD_PARAMETERS["activation"], None],
        "normalize_attention": ["boolean"],
    }

    def __init__(
        self,
        *,
        sequences: Mapping[str, str] | None = None,
        categorical: Sequence[str] | None = None,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (256, 128),
        attention_units: Sequence[int] = (80, 40),
        activation: str = "dice",
        attention_activation: str | None = None,
        normalize_attention: bool = False,
        l2_reg_embedding: float = 0.3,
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
        distribute: str | object | None = None,
    ) -> None:
        self.sequences = sequences
        self.categorical = categorical
        self.embedding_dim = embedding_dim
        self.hidden_units = hidden_units
        self.attention_units = attention_units
        self.activation = activation
        self.attention_activation = attention_activation
        self.normalize_attention = normalize_attention
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
        return build_din_graph(
            schema,
            embedding_dim=self.embedding_dim,
            hidden_units=self.hidden_units,
            attention_units=self.attention_units,
            activation=self.activation,
            attention_activation=self.attention_activation,
            dropout=self.dropout,
            normalize_attention=self.normalize_attention,
            l2_reg_embedding=self.l2_reg_embedding,
            pooling="attention",
        )

    def attention_weights(self, X) -> pd.DataFrame:
        """Per-position attention weights next to the behaviour ids.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows (e.g. ``pipeline[:-1].transform(raw)``).

        Returns
        -------
        pandas.DataFrame
            One row per (input row, valid behaviour): ``row`` (X's index
            label), ``sequence``, ``position`` (1 = oldest), ``item`` (the
            encoded id; decode with ``SequenceEncoder.inverse_transform``),
            ``weight``. Padded positions are left out.
        """
        return position_weights(self, X, "attention")


class SumPoolingClassifier(_DINBase):
    """The Base Model of Zhou et al. (2018): Embedding & MLP with sum pooling.

    Identical to :class:`DINClassifier` except that each behaviour sequence
    is summed without regard to the candidate; the baseline DIN improves on.

    Parameters
    ----------
    sequences, categorical, embedding_dim, hidden_units, activation, l2_reg_embedding, \
dropout, epochs, batch_size, learning_rate, validation_fraction, n_iter_no_change, \
class_weight, warm_start, random_state, verbose, jit_compile, distribute
        As in :class:`DINClassifier` (``activation`` defaults to ``"prelu"``).
    pooling : {"sum", "mean"}, default="sum"
        How a behaviour sequence becomes one vector: the paper's sum of the valid
        behaviours' embeddings, or their mean. The sum grows with the history's
        length, and so does the effect of every embedding update on the output: on
        histories of thousands of events it can drive every prediction to 0 or 1
        (see Warns). ``"mean"`` keeps the pooled vector on the embeddings' scale
        whatever the length (a row's history length is then no longer an input). It
        also scored higher on histories of up to 20 events (MovieLens-100k test AUC
        0.7002 against 0.6956, seeds 0-2; see ``docs/din.md``), but the default stays
        the paper's Base Model, the baseline DIN is compared with.

    Attributes
    ----------
    classes_, schema_, model_, history_, n_iter_, feature_names_in_, n_features_in_
        As in :class:`DINClassifier`.

    Warns
    -----
    UserWarning
        After a fit whose outputs are saturated and wrong: more than half of (up to
        1,000 evenly spaced) training rows score ``|logit| > 15``, probabilities within
        3.1e-7 of 0 or 1, and the (weighted) log loss of those rows is above ``log 2``,
        that of always predicting 0.5. The message names the remedies:
        ``pooling="mean"``, shorter histories, a lower ``learning_rate``.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import SequenceEncoder, SumPoolingClassifier
    >>> from sklattn.datasets import make_interest_sequences
    >>> X, y = make_interest_sequences(n_samples=500, random_state=0)
    >>> model = make_pipeline(
    ...     SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}),
    ...     SumPoolingClassifier(epochs=1, random_state=0),
    ... ).fit(X, y)
    >>> model.predict(X.head(3)).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **_DINBase._parameter_constraints,
        "pooling": [StrOptions({"sum", "mean"})],
    }

    def __init__(
        self,
        *,
        sequences: Mapping[str, str] | None = None,
        categorical: Sequence[str] | None = None,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (256, 128),
        activation: str = "prelu",
        pooling: str = "sum",
        l2_reg_embedding: float = 0.3,
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
        distribute: str | object | None = None,
    ) -> None:
        self.sequences = sequences
        self.categorical = categorical
        self.embedding_dim = embedding_dim
        self.hidden_units = hidden_units
        self.activation = activation
        self.pooling = pooling
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
        return build_din_graph(
            schema,
            embedding_dim=self.embedding_dim,
            hidden_units=self.hidden_units,
            activation=self.activation,
            dropout=self.dropout,
            l2_reg_embedding=self.l2_reg_embedding,
            pooling=self.pooling,
        )

    def _after_fit(self, X, *, reset: bool, targets, weights) -> None:
        super()._after_fit(X, reset=reset, targets=targets, weights=weights)
        # Summed over 2,000 behaviours, the pooled vector moves 2,000 times as far as one
        # embedding per step: 1,000 rows with 2,000-event histories (tests/test_din.py)
        # ended 3 epochs with every row saturated, |logit| > 15 (seeds 0-2;
        # scikit-learn's clipped log loss 17.2-18.9), silently.
        # Saturation alone is no error (extreme class weights ask for it, and
        # check_class_weight_classifiers saturated 92% of its rows): the warning needs the
        # saturated rows to be wrong too, a log loss above a constant 0.5's.
        X = as_frame(X)
        if not isinstance(X, pd.DataFrame) and not hasattr(X, "shape"):
            X = np.asarray(X)
        rows = _check_rows(X.shape[0])
        labels = targets[rows]
        weights = None if weights is None else weights[rows]
        if weights is not None and not weights.sum() > 0:
            return  # no sampled row carries weight: nothing to judge
        logits = self.decision_function(X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows])
        share = float(np.mean(np.abs(logits) > _SATURATED_LOGIT))
        loss = float(np.average(np.logaddexp(0.0, logits) - labels * logits, weights=weights))
        if share <= 0.5 or not loss > np.log(2.0):
            return
        longest = max((len(cols) for cols, _ in self.schema_.sequences.values()), default=0)
        if self.pooling == "sum" and longest:
            cause = (
                f"Summing up to {longest} behaviour embeddings per row multiplies the effect "
                "of every embedding update on the output by the history's length. Use "
                "pooling='mean', shorten the histories (SequenceEncoder's maxlen) or lower "
                "learning_rate."
            )
        else:
            cause = "Lower learning_rate or epochs, or regularise (l2_reg_embedding, dropout)."
        warnings.warn(
            f"{type(self).__name__}'s outputs are saturated: {share:.0%} of {len(rows)} "
            f"training rows score |logit| > {_SATURATED_LOGIT:g} (probabilities within 3.1e-7 "
            f"of 0 or 1) and their log loss is {loss:.3g}, worse than the 0.693 of always "
            f"predicting 0.5: predict_proba is confidently wrong. {cause}",
            UserWarning,
            stacklevel=4,
        )


def _check_rows(n_rows: int) -> np.ndarray:
    """The training rows the saturation check scores: at most ``_SATURATION_SAMPLE``,
    evenly spaced (one prediction chunk, milliseconds)."""
    return np.unique(np.linspace(0, n_rows - 1, min(n_rows, _SATURATION_SAMPLE)).astype(np.int64))
