"""PRM: Personalized Re-ranking for Recommendation (Pei et al., RecSys 2019,
arXiv:1904.06813).

A re-ranking model: a transformer over a request's whole candidate list (each item's
features, a personalised vector and the position of its initial rank) scores every
item, so that an item's place can depend on the other items of the list. Trained on
clicks with a softmax over the list. See ``docs/prm.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._backend import keras
from .._data import list_columns, require_frame, to_arrays
from .._schema import Schema
from ..base import BaseKerasEstimator, Graph
from ..layers import MASKED_LOGIT, TransformerBlock
from ..metrics import listwise_ndcg_score
from ._blocks import embed_fields

ops = keras.ops

__all__ = ["PRMReranker", "build_prm_graph", "listwise_softmax_loss"]

#: Name of the personalised-vector column the graph reads after the numeric columns.
PV_COLUMN = "__personalization__"


@keras.saving.register_keras_serializable(package="sklattn")
def listwise_softmax_loss(y_true, y_pred):
    """PRM's loss per request: ``-sum_i y_i log softmax(logits)_i`` over the list.

    ``y_true`` ``(batch, length)``: clicks (times the rows' sample weights), 0 at
    padding; ``y_pred``: the logits, padding already at ``MASKED_LOGIT`` (its softmax
    weight underflows to 0). A request without a click pays nothing.
    """
    y_true = ops.cast(y_true, y_pred.dtype)
    return -ops.sum(y_true * ops.log_softmax(y_pred, axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="sklattn")
class _PerItem(keras.layers.Layer):
    """``(batch * length, ...)`` item rows back to ``(batch, length, features)``, the
    batch and the list length read from ``like`` ``(batch, length, ...)`` at call time
    (both vary between calls)."""

    def call(self, x, like):
        shape = ops.shape(like)
        return ops.reshape(x, (shape[0], shape[1], -1))

    def compute_output_spec(self, x, like):
        width = int(np.prod(x.shape[1:]))
        return keras.KerasTensor((like.shape[0], like.shape[1], width), dtype=x.dtype)


def build_prm_graph(
    schema: Schema,
    *,
    max_length: int,
    embedding_dim: int = 8,
    attention_dim: int = 32,
    n_blocks: int = 2,
    n_heads: int = 2,
    dropout: float = 0.1,
) -> Graph:
    """Build PRM's graph over lists of any length, with ``max_length`` learned positions.

    ``schema`` describes one item row (its numeric columns end with the personalised
    vector when there is one). Inputs: ``ids`` ``(batch, length, n_id_columns + 1)``
    int32, whose last column is the item's position in the initial ranking (1 = top,
    positions beyond ``max_length`` share the last one, 0 = padding), and ``numeric``
    ``(batch, length, n_numeric)`` float32 when the schema has numeric columns. Each
    item's fields are embedded as in the factorisation machines
    (:func:`~sklattn.models._blocks.embed_fields`: an id column its embedding, a
    sequence the mean of its items, a number ``x * v``), concatenated, projected to
    ``attention_dim`` and added to a learned embedding of its position (the paper's
    ``E = W_E [x; pv] + PE``); ``n_blocks`` bidirectional post-norm transformer blocks
    over the valid items follow, and a dense layer gives one logit per item. Output:
    ``(batch, length)`` logits, padding at ``MASKED_LOGIT``.
    """
    n_ids, n_numeric = len(schema.int_columns), len(schema.numeric)
    ids = keras.Input((None, n_ids + 1), dtype="int32", name="ids")
    inputs = [ids]
    flat = [ops.reshape(ids[:, :, :n_ids], (-1, n_ids))] if n_ids else []
    if n_numeric:
        numeric = keras.Input((None, n_numeric), dtype="float32", name="numeric")
        inputs.append(numeric)
        flat.append(ops.reshape(numeric, (-1, n_numeric)))
    positions = ids[:, :, -1]
    valid = ops.greater(positions, 0)

    fields, _ = embed_fields(flat, schema, embedding_dim)  # (batch * length, F, dim)
    x = _PerItem(name="per_item")(fields, ids)
    x = keras.layers.Dense(attention_dim, name="input_projection")(x)
    x = x + keras.layers.Embedding(max_length + 1, attention_dim, name="rank_positions")(
        positions
    )
    x = keras.layers.Dropout(dropout, name="input_dropout")(x)
    for i in range(n_blocks):
        x = TransformerBlock(
            n_heads=n_heads, ff_units=4 * attention_dim, activation="relu", dropout=dropout,
            causal=False, norm_first=False, name=f"transformer_{i}",
        )(x, valid)
    logits = ops.squeeze(keras.layers.Dense(1, name="score")(x), -1)
    logits = ops.where(valid, logits, ops.full_like(logits, MASKED_LOGIT))
    return Graph(keras.Model(inputs, logits, name="prm"))


@dataclass
class _Lists:
    """Where each row of X goes: request ``request[i]``, slot ``slot[i]`` (0 = top of
    the initial ranking)."""

    request: np.ndarray
    slot: np.ndarray
    lengths: np.ndarray


def _lists(estimator, X: pd.DataFrame) -> _Lists:
    """Each row's request and initial position, with the checks a list needs."""
    name, schema = type(estimator).__name__, estimator.schema_
    codes, ranks = list_columns(estimator, X)
    n = len(codes)
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate([[0], change])
    if len(starts) != len(pd.unique(codes)):
        seen: dict = {}
        for i, start in enumerate(starts):
            code = codes[start]
            if code in seen:
                first = X.index[starts[seen[code]]]
                raise ValueError(
                    f"{name}: the rows of a request are interleaved with other requests' "
                    f"rows (request of row {first!r} comes back at row {X.index[start]!r}). "
                    f"Give each request's rows together, e.g. "
                    f"X.sort_values({schema.group!r}, kind='stable'); to cross-validate, "
                    "split by request with GroupKFold(groups=<request ids>)."
                )
            seen[code] = i
    lengths = np.diff(np.concatenate([starts, [n]]))
    request = np.repeat(np.arange(len(starts)), lengths)
    if ranks is None:
        slot = np.arange(n) - np.repeat(starts, lengths)
        return _Lists(request, slot, lengths)
    order = np.lexsort((ranks, request))  # rows by request, then by initial rank
    slot = np.empty(n, dtype=np.int64)
    slot[order] = np.arange(n) - np.repeat(starts, lengths)
    # A request's ranks must be exactly 1..L: a missing top or a gap means rows of the
    # request are elsewhere (a split between folds), a repeat that they are duplicated.
    wrong = ranks[order] != slot[order] + 1
    if wrong.any():
        r = int(request[order][np.flatnonzero(wrong)[0]])
        rows = np.flatnonzero(request == r)
        shown = sorted(ranks[rows].tolist())[:8]
        raise ValueError(
            f"{name}: the ranks {schema.rank!r} of the request at row "
            f"{X.index[rows[0]]!r} are {shown}{'...' if len(rows) > 8 else ''}, not the "
            f"positions 1..{len(rows)}: rows of the request are missing or repeated. Was "
            "it split between folds? Cross-validate with GroupKFold(groups=<request ids>)."
        )
    return _Lists(request, slot, lengths)


class PRMReranker(BaseKerasEstimator):
    """Personalised re-ranking of candidate lists with a transformer (PRM) as a
    scikit-learn estimator.

    X has one row per (request, candidate item), encoded by a
    :class:`~sklattn.SequenceEncoder` that names the request column
    (``group="request_id"``) and, optionally, the initial rank (``rank="rank"``, 1 =
    top; without it the rows' order within a request is the initial ranking); ``y``
    holds the clicks. Each request is one list: its items' features, a personalised
    vector per item and the position of the item's initial rank pass through
    ``n_blocks`` transformer blocks over the list, and each item gets a score; the
    loss is the cross-entropy of the softmax over the list against the clicks (Pei et
    al., 2019). A request's rows must be contiguous in X. ``sample_weight`` scales
    each row's click in the loss (a weight on a row without a click changes nothing).

    Parameters
    ----------
    personalization : estimator or None, default=None
        The paper's personalised vector (PV): an sklattn classifier (e.g.
        :class:`~sklattn.DINClassifier`) whose logit (``decision_function``) for each
        row joins the row's features. An unfitted model is cloned and fitted on the
        rows given to ``fit`` first (its scores on its own training rows are then
        optimistic). To use a model fitted on earlier logs, as the paper does, wrap it
        in :class:`sklearn.frozen.FrozenEstimator` (``clone``, hence GridSearchCV,
        would otherwise refit it) and encode the rows with the same fitted encoder
        (frozen too in a Pipeline): a model refuses rows encoded with other
        vocabularies. None: no PV (any numeric column of X, such as an upstream
        score, can play its part).
    max_length : int, default=None
        Learned initial positions, and the longest training list (a longer one keeps
        its ``max_length`` best initially ranked items); None takes the longest
        training list. Lists of any length are scored: positions beyond it share the
        last position's embedding.
    embedding_dim : int, default=8
        Size of each field's embedding.
    attention_dim : int, default=32
        Width of the transformer over the list; a multiple of ``n_heads``.
    n_blocks : int, default=2
        Transformer blocks.
    n_heads : int, default=2
        Attention heads.
    dropout : float, default=0.1
        Dropout of the input and inside the blocks.
    k : int, default=10
        Cut-off of :meth:`score` (NDCG@k).
    epochs : int, default=20
        Passes over the training lists. PRM finds a rule of the list (such as "a
        second item of a category is worth less") late: its loss stays flat for many
        steps, then falls. On 38,000 lists of ``make_reranking_lists``' defaults, test
        NDCG@5 was 0.894 after 20 epochs and 0.923 after 60 (``docs/prm.md``).
    batch_size : int, default=32
        Lists per gradient step.
    learning_rate : float, default=3e-3
        Adam's learning rate. With lists whose best order depends on the list only
        (``make_reranking_lists(duplicate_decay=0, initial_noise=0,
        position_bias=0)``, 2,500 training lists, 20 epochs) the test NDCG@5 was
        0.944 with these two defaults, 0.921 with 1e-3 and 64 lists per step, 0.925
        with 1e-2 (the initial order: 0.867): the model underfits before it overfits.
    validation_fraction : float, default=None
        Hold out this fraction of the lists (whole requests) and stop when their loss
        has not improved for ``n_iter_no_change`` epochs.
    n_iter_no_change : int, default=3
        Patience of early stopping.
    warm_start : bool, default=False
        Continue training the fitted model on the next ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, dropout and shuffling.
    verbose : int, default=0
        0 silent, 1 progress bar, 2 one line per epoch.
    jit_compile : bool or "auto", default="auto"
        Compile the training step with XLA (``"auto"``: for long fits on TensorFlow).
    distribute : {"mirrored", "multi_worker"}, tf.distribute.Strategy or None, \
default=None
        Train under a ``tf.distribute`` strategy (``batch_size`` is then the global
        batch); see ``docs/scaling.md``.

    Attributes
    ----------
    schema_ : Schema
        Roles of the input columns.
    max_length_ : int
        The number of learned initial positions.
    personalization_ : estimator or None
        The fitted model giving the personalised vector.
    model_ : keras.Model
        The graph: lists in, one logit per item out.
    history_ : dict
        Keras training history (``loss``: per list).
    n_iter_ : int
        Epochs run.
    feature_names_in_ : ndarray of str
        Input columns.
    n_features_in_ : int
        Number of input columns.

    See Also
    --------
    sklattn.metrics.listwise_ndcg_score : NDCG@k of scores grouped by request.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import PRMReranker, SequenceEncoder
    >>> from sklattn.datasets import make_reranking_lists
    >>> X, y, _ = make_reranking_lists(200, random_state=0)
    >>> model = make_pipeline(
    ...     SequenceEncoder(sequences={"hist_item": "item"}, categorical=["category"],
    ...                     group="request_id", rank="initial_rank"),
    ...     PRMReranker(epochs=1, random_state=0),
    ... ).fit(X, y)
    >>> ranks = model.predict(X)  # each row's new position in its request, 1 = top
    >>> sorted(ranks[X["request_id"] == 0]) == list(range(1, (X["request_id"] == 0).sum() + 1))
    True
    """

    _parameter_constraints: dict = {
        "personalization": [HasMethods(["fit", "decision_function"]), None],
        "max_length": [Interval(Integral, 2, None, closed="left"), None],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "attention_dim": [Interval(Integral, 1, None, closed="left")],
        "n_blocks": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "k": [Interval(Integral, 1, None, closed="left")],
        **{key: value for key, value in BaseKerasEstimator._parameter_constraints.items()
           if key not in ("sequences", "categorical")},
    }

    _requires_dataframe = True

    def __init__(
        self,
        *,
        personalization=None,
        max_length: int | None = None,
        embedding_dim: int = 8,
        attention_dim: int = 32,
        n_blocks: int = 2,
        n_heads: int = 2,
        dropout: float = 0.1,
        k: int = 10,
        epochs: int = 20,
        batch_size: int = 32,
        learning_rate: float = 3e-3,
        validation_fraction: float | None = None,
        n_iter_no_change: int = 3,
        warm_start: bool = False,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        jit_compile: bool | str = "auto",
        distribute: str | object | None = None,
    ) -> None:
        self.personalization = personalization
        self.max_length = max_length
        self.embedding_dim = embedding_dim
        self.attention_dim = attention_dim
        self.n_blocks = n_blocks
        self.n_heads = n_heads
        self.dropout = dropout
        self.k = k
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.jit_compile = jit_compile
        self.distribute = distribute

    # The base reads these for pre-encoded input; PRM reads only a SequenceEncoder's.
    sequences = None
    categorical = None

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.attention_dim % self.n_heads:
            raise ValueError(
                f"attention_dim={self.attention_dim} must be a multiple of n_heads="
                f"{self.n_heads} (each head has attention_dim / n_heads dimensions)."
            )

    # ------------------------------------------------------------------ data
    def _check_roles(self, schema: Schema, absent, *, training: bool) -> None:
        if getattr(schema, "group", None) is None:
            raise ValueError(
                f"{type(self).__name__} reads lists of candidates, but X names no request "
                "column: encode X with SequenceEncoder(..., group='request_id') (and "
                "rank='initial_rank' for the initial ranking)."
            )
        if not schema.int_columns and not schema.numeric:
            raise ValueError(f"{type(self).__name__} needs at least one item feature in X.")

    def _targets(self, y, n_samples: int, *, reset: bool, classes=None) -> np.ndarray:
        y = column_or_1d(np.asarray(y), warn=True)
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"y must hold clicks (0/1) or non-negative relevances; got dtype {y.dtype}."
            ) from None
        if not np.isfinite(y).all() or (y < 0).any():
            raise ValueError("y must hold finite, non-negative clicks or relevances.")
        return y.astype(np.float32)

    def _item_schema(self) -> Schema:
        """The schema of one item row as the graph reads it: X's features, plus the
        personalised vector as the last numeric column."""
        numeric = list(self.schema_.numeric)
        if getattr(self, "personalization_", None) is not None:
            numeric.append(PV_COLUMN)
        return replace(self.schema_, numeric=numeric, group=None, rank=None)

    def _personal(self, X, y=None, *, reset: bool) -> np.ndarray | None:
        """Each row's personalised vector (the upstream model's logit), or None."""
        if reset:
            upstream = self.personalization
            if upstream is not None:
                try:
                    check_is_fitted(upstream)
                    self.personalization_ = upstream
                except NotFittedError:
                    self.personalization_ = clone(upstream).fit(X, y)
            else:
                self.personalization_ = None
        if self.personalization_ is None:
            return None
        return np.asarray(self.personalization_.decision_function(X), np.float32)[:, None]

    def _as_lists(self, X, ids, floats, pv, *, training: bool, lists: _Lists | None = None):
        """Rows -> lists: ``(ids (n_requests, L, c + 1), floats, lists, kept rows)``.

        In training ``L = max_length_`` and a longer list keeps its ``max_length_``
        best initially ranked items; at prediction ``L`` is the longest list of X (no
        item is dropped) and positions beyond ``max_length_`` share the last one.
        """
        lists = _lists(self, X) if lists is None else lists
        length = self.max_length_ if training else int(lists.lengths.max())
        keep = lists.slot < length
        n_requests = len(lists.lengths)
        n_ids = ids.shape[1] if ids is not None else 0
        list_ids = np.zeros((n_requests, length, n_ids + 1), dtype=np.int32)
        where = (lists.request[keep], lists.slot[keep])
        if ids is not None:
            list_ids[where[0], where[1], :n_ids] = ids[keep]
        list_ids[where[0], where[1], n_ids] = np.minimum(lists.slot[keep] + 1, self.max_length_)
        columns = [a for a in (floats, pv) if a is not None]
        list_floats = None
        if columns:
            rows = np.hstack(columns) if len(columns) > 1 else columns[0]
            list_floats = np.zeros((n_requests, length, rows.shape[1]), dtype=np.float32)
            list_floats[where] = rows[keep]
        return list_ids, list_floats, lists, keep

    def _samples(self, X, ids, floats, targets, weights):
        reset = self._n_fit_calls == 0  # a fresh fit (the base zeroes it)
        X = require_frame(self, X)
        lists = _lists(self, X)
        if reset:
            self.max_length_ = int(self.max_length or max(2, lists.lengths.max()))
        # The upstream classifier learns clicks: any relevance above 0.
        pv = self._personal(X, (targets > 0).astype(np.int64), reset=reset)
        list_ids, list_floats, lists, keep = self._as_lists(X, ids, floats, pv, training=True,
                                                            lists=lists)
        gains = targets if weights is None else targets * weights
        list_targets = np.zeros(list_ids.shape[:2], dtype=np.float32)
        list_targets[lists.request[keep], lists.slot[keep]] = gains[keep]
        return list_ids, list_floats, list_targets, None

    def _build_graph(self, schema: Schema) -> Graph:
        return build_prm_graph(
            self._item_schema(), max_length=self.max_length_,
            embedding_dim=self.embedding_dim, attention_dim=self.attention_dim,
            n_blocks=self.n_blocks, n_heads=self.n_heads, dropout=self.dropout,
        )

    def _loss(self):
        return listwise_softmax_loss

    # --------------------------------------------------------------- serving
    def _scores(self, X) -> tuple[np.ndarray, np.ndarray, _Lists]:
        """Each row's logit and softmax share within its list, and the lists; whole
        requests of at most ``prediction_chunk_size`` rows at a time."""
        check_is_fitted(self, "model_")
        X = require_frame(self, X)
        lists = _lists(self, X)
        ends = np.cumsum(lists.lengths)
        scores = np.empty(len(X), dtype=np.float32)
        shares = np.empty(len(X), dtype=np.float32)
        start = 0
        while start < len(X):
            # The last request ending within the chunk (at least one request).
            stop = int(ends[max(np.searchsorted(ends, start + self.prediction_chunk_size,
                                                side="right") - 1,
                                np.searchsorted(ends, start, side="right"))])
            part = X.iloc[start:stop]
            ids, floats = to_arrays(self, part)
            pv = self._personal(part, reset=False)
            # The chunk's lists are a slice of X's (found and checked once, above).
            first, last = lists.request[start], lists.request[stop - 1] + 1
            sub = _Lists(lists.request[start:stop] - first, lists.slot[start:stop],
                         lists.lengths[first:last])
            list_ids, list_floats, sub, _ = self._as_lists(part, ids, floats, pv,
                                                          training=False, lists=sub)
            arrays = [a for a in (list_ids, list_floats) if a is not None]
            logits = np.asarray(self._predict_fn(*arrays))
            weights = np.exp(logits - logits.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            scores[start:stop] = logits[sub.request, sub.slot]
            shares[start:stop] = weights[sub.request, sub.slot]
            start = stop
        return scores, shares, lists

    def decision_function(self, X) -> np.ndarray:
        """Each row's score within its list (higher = placed higher).

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows, a request's rows together.

        Returns
        -------
        ndarray of shape (n_samples,), float32
            The logit of each row; comparable within a request only.
        """
        return self._scores(X)[0]

    def predict_proba(self, X) -> np.ndarray:
        """Each row's share of its request's clicks: the softmax of the scores over the
        list (the quantity the loss fits).

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows, a request's rows together.

        Returns
        -------
        ndarray of shape (n_samples,), float32
            Non-negative; sums to 1 within each request.
        """
        return self._scores(X)[1]

    def predict(self, X) -> np.ndarray:
        """The re-ranked order: each row's new position within its request.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows, a request's rows together.

        Returns
        -------
        ndarray of shape (n_samples,), int64
            1 for the item placed first in its request, 2 for the next...; ties keep
            the initial order. ``X.assign(new_rank=model.predict(X)).sort_values(
            [request, "new_rank"])`` lists each request in its new order.
        """
        scores, _, lists = self._scores(X)
        order = np.lexsort((lists.slot, -scores, lists.request))
        starts = np.repeat(np.concatenate([[0], np.cumsum(lists.lengths)[:-1]]), lists.lengths)
        ranks = np.empty(len(scores), dtype=np.int64)
        ranks[order] = np.arange(len(scores)) - starts + 1
        return ranks

    def score(self, X, y, sample_weight=None) -> float:
        """NDCG@k of the re-ranked lists against the clicks ``y``, averaged over the
        requests with a click (:func:`~sklattn.metrics.listwise_ndcg_score`).

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows, a request's rows together.
        y : array-like of shape (n_samples,)
            Clicks or relevances.
        sample_weight : None
            Not supported (present for API consistency).

        Returns
        -------
        float
        """
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__}.score does not take sample_weight.")
        X = require_frame(self, X)
        groups, _ = list_columns(self, X)
        return listwise_ndcg_score(np.asarray(y), self.decision_function(X), groups, k=self.k)

    def _expected_failed_checks(self) -> dict[str, str]:
        return {
            **super()._expected_failed_checks(),
            "check_methods_sample_order_invariance": (
                "a request's rows must be contiguous, and the initial order is an input: "
                "reordering rows reorders the lists"
            ),
        }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a SequenceEncoder's output with a request column: no plain 2-D arrays
        # (scikit-learn's generated checks then reduce to check_estimator_cloneable; the
        # contract runs in the tests on encoded lists), and y is required.
        tags.input_tags.two_d_array = False
        tags.input_tags.categorical = True
        tags.input_tags.string = False
        tags.input_tags.allow_nan = False
        tags.target_tags.required = True
        return tags
