"""MIND: Multi-Interest Network with Dynamic routing (Li et al., CIKM 2019, arXiv:1904.08030).

A retrieval model: a user's behaviour sequence is routed into several interest
vectors (capsules), each of which retrieves items by inner product. Training uses
the target item of each (history, next item) row: label-aware attention combines
the interests into one user vector for that item, and a sampled softmax over the
catalogue (frequency negatives, logQ correction, accidental hits removed) is the
loss. See ``docs/mind.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._backend import keras
from .._schema import TIME_GAP, Schema
from ..base import BaseKerasEstimator, Graph
from ..layers import (
    MLP,
    CandidateSampler,
    CapsuleRouting,
    LabelAwareAttention,
    SampledSoftmaxLoss,
)
from ._blocks import LAYER_WIDTHS, embed_inputs, model_inputs
from ._retrieval import BaseRetriever, behaviour_sequences, per_row_loss, retrieval_roles

ops = keras.ops

__all__ = ["MINDRetriever", "build_mind_graph"]


def build_mind_graph(
    schema: Schema,
    *,
    embedding_dim: int = 32,
    n_interests: int = 4,
    routing_iterations: int = 3,
    dynamic_interests: bool = True,
    pow_p: float = 1.0,
    hidden_units: Sequence[int] = (64,),
    n_negatives: int = 100,
    seed: int | None = None,
) -> Graph:
    """Build MIND's training graph and its serving models.

    The item table is shared by the behaviours and the target. Behaviours are
    routed into ``n_interests`` capsules (:class:`~sklattn.layers.CapsuleRouting`);
    when the schema has user-profile columns (categorical columns other than the
    target and the encoder's candidate time gap, numeric columns) or ``hidden_units``
    is not empty, each capsule is concatenated with the profile embeddings and passed
    through a ReLU MLP and a linear projection back to ``embedding_dim`` (the paper's
    "H layers").

    Returns
    -------
    Graph
        ``model``: inputs as :func:`~sklattn.models._blocks.model_inputs`; output: each
        row's sampled softmax loss. ``extras``: ``"interests"``, ``(interests (batch, K,
        dim), mask (batch, K))``; ``"attention"``, the label-aware weights ``(batch, K)``
        for the row's target. ``layers``: ``"candidate_sampler"``.
    """
    seq, vocab, target_col = retrieval_roles(schema)
    inputs = model_inputs(schema)
    emb = embed_inputs(inputs, schema, embedding_dim)
    interests, mask = CapsuleRouting(
        n_interests=n_interests,
        routing_iterations=routing_iterations,
        dynamic=dynamic_interests,
        seed=seed,
        name="capsule_routing",
    )(emb.sequences[seq], emb.masks[seq])

    # The candidate's time gap (SequenceEncoder(timestamps=...)) is the same zero-gap
    # id on every row: it says nothing about the user.
    skip = {target_col, TIME_GAP} if getattr(schema, "time_gaps", None) else {target_col}
    profile = [emb.categorical[c] for c in schema.categorical if c not in skip]
    if emb.numeric is not None:
        profile.append(emb.numeric)
    if profile or hidden_units:
        x = interests
        if profile:
            user = profile[0] if len(profile) == 1 else ops.concatenate(profile, axis=-1)
            user = ops.repeat(ops.expand_dims(user, 1), n_interests, axis=1)
            x = ops.concatenate([interests, user], axis=-1)
        x = MLP(hidden_units, activation="relu", name="interest_mlp")(x)
        x = keras.layers.Dense(embedding_dim, name="interest_projection")(x)
        interests = x * ops.expand_dims(ops.cast(mask, x.dtype), -1)
    extras = {"interests": keras.Model(inputs, [interests, mask], name="mind_interests")}

    table = emb.tables[vocab]
    (position,) = schema.positions([target_col])
    target_ids = inputs[0][:, position]
    target = emb.categorical[target_col]
    user_vector, weights = LabelAwareAttention(pow_p, name="label_aware_attention")(
        interests, target, mask
    )
    sampler = CandidateSampler(
        schema.vocabulary_sizes[vocab], n_negatives, seed=seed, name="candidate_sampler"
    )
    negatives, negative_log_q, target_log_q = sampler(target_ids)
    loss = SampledSoftmaxLoss(name="sampled_softmax")(
        user_vector, target, table(negatives), target_ids, negatives, target_log_q,
        negative_log_q,
    )
    extras["attention"] = keras.Model(inputs, weights, name="mind_label_attention")
    model = keras.Model(inputs, loss, name="mind")
    return Graph(model, extras, emb.tables, {"candidate_sampler": sampler})


class MINDRetriever(BaseRetriever):
    """Multi-interest candidate retrieval (MIND) as a scikit-learn estimator.

    A user's behaviour sequence is routed into up to ``n_interests`` interest
    vectors by dynamic (capsule) routing; each interest retrieves the items with
    the largest inner product, and the lists are merged by each item's best score
    (Li et al., 2019).

    Training rows are positive events only: the history before an event and the
    event's item (the sequence's candidate column, e.g. ``movie`` for
    ``hist_movie``). ``fit(X)`` takes no labels. Label-aware attention weighs the
    interests by their match with the target item, and a sampled softmax against
    ``n_negatives`` items drawn by popularity (with the logQ correction, negatives
    equal to the target removed) is minimised.

    Parameters
    ----------
    sequences : dict of str to str, default=None
        Only for input that is already integer-encoded and not produced by a
        :class:`~sklattn.SequenceEncoder`: ``{sequence: target column}``, e.g.
        ``{"hist_movie": "movie"}`` with columns ``hist_movie_1..N`` (oldest to
        newest, 0 = padding).
    categorical : list of str, default=None
        Only for pre-encoded input: user-profile id columns.
    embedding_dim : int, default=32
        Size of item embeddings and interest vectors.
    n_interests : int, default=4
        Maximum number of interests ``K``.
    dynamic_interests : bool, default=True
        Give a user with ``n`` behaviours ``max(1, min(K, floor(log2(1 + n))))``
        interests (the paper's rule); False gives every user ``K``.
    routing_iterations : int, default=3
        Rounds of dynamic routing.
    pow_p : float, default=1.0
        Exponent of label-aware attention: 0 averages the interests, large values
        approach hard attention on the best-matching one.
    hidden_units : sequence of int, default=(64,)
        ReLU layers applied to each interest concatenated with the user-profile
        embeddings, followed by a linear projection to ``embedding_dim``. With
        ``()`` and no profile columns the capsules are used directly.
    n_negatives : int, default=100
        Items sampled per batch for the sampled softmax.
    negative_sampling : {"frequency", "uniform"}, default="frequency"
        Draw negatives in proportion to the items' training counts (in targets and
        histories), or uniformly.
    top_n : int, default=50
        Items returned by :meth:`predict` and the cut-off of :meth:`score`, capped
        at the number of items every row is guaranteed to have: the catalogue size
        ``len(item_labels_)``, or with ``exclude_seen=True`` the catalogue size
        minus the history length (the number of sequence columns), because a
        history can hold that many distinct items. The cap makes the output
        rectangular, in the labels' own dtype and with finite scores: a top 10,000
        of a 200-item catalogue with 6-item histories is 194 items per row.
    exclude_seen : bool, default=True
        Never retrieve an item that is in the row's history. When the history
        length is not smaller than the catalogue, no item is guaranteed to remain,
        and :meth:`predict`, :meth:`retrieve` and :meth:`score` raise a
        ``ValueError`` (set ``exclude_seen=False`` for such a model).
    index : {"brute", "faiss"}, default="brute"
        Exact blocked search, or an approximate faiss inverted-file index
        (``pip install "sklattn[ann]"``) for catalogues of millions of items. The
        index is built at the end of ``fit``; after ``set_params`` of ``index`` or
        ``index_options`` the next search builds the new one.
    index_options : dict, default=None
        Options of the index: ``user_block`` / ``item_chunk`` for ``"brute"``,
        ``nlist`` / ``nprobe`` for ``"faiss"``.
    epochs : int, default=10
        Passes over the training rows.
    batch_size : int, default=256
        Rows per gradient step.
    learning_rate : float, default=1e-3
        Adam's learning rate.
    validation_fraction : float, default=None
        Hold out this fraction of rows and stop when their sampled loss has not
        improved for ``n_iter_no_change`` epochs.
    n_iter_no_change : int, default=3
        Patience of early stopping.
    warm_start : bool, default=False
        Continue training the fitted model on the next ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the initial routing logits, shuffling and sampling.
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
        Roles of the input columns and vocabulary sizes.
    sequence_ : str
        The behaviour sequence.
    target_ : str
        The target (item) column.
    item_labels_ : ndarray of shape (n_items,)
        The catalogue: original item values when the input came from a
        SequenceEncoder, else the item ids. Numeric labels have a numeric dtype
        (``int64``, ``float64`` or ``bool``); others are objects.
    item_embeddings_ : ndarray of shape (n_items, embedding_dim)
        Item vectors, row ``i`` for ``item_labels_[i]``.
    model_ : keras.Model
        The training graph (output: each row's loss).
    history_ : dict
        Keras training history (``loss``: mean sampled softmax loss).
    n_iter_ : int
        Epochs run.
    feature_names_in_ : ndarray of str
        Input columns.
    n_features_in_ : int
        Number of input columns.

    See Also
    --------
    sklattn.metrics.hit_rate_at_k : The metric of :meth:`score`.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import MINDRetriever, SequenceEncoder
    >>> from sklattn.datasets import make_multi_interest_sequences
    >>> X = make_multi_interest_sequences(n_users=100, random_state=0)
    >>> model = make_pipeline(
    ...     SequenceEncoder(sequences={"hist_item": "item"}),
    ...     MINDRetriever(n_interests=2, top_n=5, epochs=1, random_state=0),
    ... ).fit(X)
    >>> model.predict(X.head(2)).shape
    (2, 5)
    >>> 0.0 <= model.score(X) <= 1.0
    True
    """

    _parameter_constraints: dict = {
        **BaseKerasEstimator._parameter_constraints,
        "n_interests": [Interval(Integral, 1, None, closed="left")],
        "dynamic_interests": ["boolean"],
        "routing_iterations": [Interval(Integral, 1, None, closed="left")],
        "pow_p": [Interval(Real, 0, None, closed="left")],
        "hidden_units": [LAYER_WIDTHS],
        "n_negatives": [Interval(Integral, 1, None, closed="left")],
        "negative_sampling": [StrOptions({"frequency", "uniform"})],
        "top_n": [Interval(Integral, 1, None, closed="left")],
        "exclude_seen": ["boolean"],
        "index": [StrOptions({"brute", "faiss"})],
        "index_options": [dict, None],
    }

    def __init__(
        self,
        *,
        sequences: Mapping[str, str] | None = None,
        categorical: Sequence[str] | None = None,
        embedding_dim: int = 32,
        n_interests: int = 4,
        dynamic_interests: bool = True,
        routing_iterations: int = 3,
        pow_p: float = 1.0,
        hidden_units: Sequence[int] = (64,),
        n_negatives: int = 100,
        negative_sampling: str = "frequency",
        top_n: int = 50,
        exclude_seen: bool = True,
        index: str = "brute",
        index_options: dict | None = None,
        epochs: int = 10,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        validation_fraction: float | None = None,
        n_iter_no_change: int = 3,
        warm_start: bool = False,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        jit_compile: bool | str = "auto",
        distribute: str | object | None = None,
    ) -> None:
        self.sequences = sequences
        self.categorical = categorical
        self.embedding_dim = embedding_dim
        self.n_interests = n_interests
        self.dynamic_interests = dynamic_interests
        self.routing_iterations = routing_iterations
        self.pow_p = pow_p
        self.hidden_units = hidden_units
        self.n_negatives = n_negatives
        self.negative_sampling = negative_sampling
        self.top_n = top_n
        self.exclude_seen = exclude_seen
        self.index = index
        self.index_options = index_options
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

    # ------------------------------------------------------------ the graph
    def _build_graph(self, schema: Schema):
        seed = self._seed()
        return build_mind_graph(
            schema,
            embedding_dim=self.embedding_dim,
            n_interests=self.n_interests,
            routing_iterations=self.routing_iterations,
            dynamic_interests=self.dynamic_interests,
            pow_p=self.pow_p,
            hidden_units=self.hidden_units,
            n_negatives=self.n_negatives,
            seed=None if seed is None else seed % (2**31 - 1),
        )

    def _loss(self):
        return per_row_loss

    def _serving_model(self) -> keras.Model:
        return self._extra_models["interests"]

    def _check_roles(self, schema: Schema, absent, *, training: bool) -> None:
        sequences = behaviour_sequences(schema)
        if len(sequences) != 1:
            raise ValueError(
                f"{type(self).__name__} routes one behaviour sequence into interests, but "
                f"X has {len(sequences)} sequences {sequences}."
            )
        name, vocab, target = retrieval_roles(schema)
        if target is None:
            raise ValueError(
                f"{type(self).__name__} needs the target item column {vocab!r} of sequence "
                f"{name!r} (the item of each training event); X has no such column."
            )
        if training and target in absent:
            raise ValueError(
                f"{type(self).__name__} trains on (history, next item) rows, but the target "
                f"column {target!r} is missing from X."
            )

    def _set_data_statistics(self, ids, targets, weights) -> None:
        super()._set_data_statistics(ids, targets, weights)
        _, vocab, _ = retrieval_roles(self.schema_)
        sampler = self._layers["candidate_sampler"]
        size = self.schema_.vocabulary_sizes[vocab]
        if self.negative_sampling == "uniform":
            sampler.set_distribution(np.ones(size))
            return
        columns = self.schema_.vocabulary_positions(vocab)
        sampler.set_distribution(np.bincount(ids[:, columns].ravel(), minlength=size))

    # -------------------------------------------------------------- serving
    def user_interests(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Each row's interest vectors and which of them are valid.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows; the target column may be absent.

        Returns
        -------
        interests : ndarray of shape (n_samples, n_interests, embedding_dim)
            Masked interests are zero.
        mask : ndarray of shape (n_samples, n_interests), bool
        """
        return self._encode(X)

    def _user_vectors(self, ids, floats) -> tuple[np.ndarray, np.ndarray]:
        out = self._predict_fn(*[a for a in (ids, floats) if a is not None])
        return np.asarray(out[0]), np.asarray(out[1]).astype(bool)

    def transform(self, X) -> np.ndarray:
        """Interest vectors flattened to ``(n_samples, n_interests * embedding_dim)``.

        Interest ``k`` fills columns ``k * embedding_dim`` to
        ``(k + 1) * embedding_dim - 1``; masked interests are zero.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows.

        Returns
        -------
        ndarray of shape (n_samples, n_interests * embedding_dim)
        """
        interests, _ = self.user_interests(X)
        return interests.reshape(len(interests), -1)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``interest{k}_{j}`` for interest ``k`` and dimension ``j``."""
        check_is_fitted(self, "model_")
        return np.array([f"interest{k}_{j}" for k in range(self.n_interests)
                         for j in range(self.embedding_dim)], dtype=object)
