"""Deep Interest Evolution Network (Zhou et al., AAAI 2019, arXiv:1809.03672).

An interest extractor (a GRU over the behaviour sequence, trained with an
auxiliary next-behaviour loss) turns behaviours into interest states; an
interest evolving layer (a GRU whose update is gated by each state's attention
on the candidate: AIGRU, AGRU or AUGRU) follows the interest relevant to the
candidate; its final state joins the candidate and profile features in an MLP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._backend import keras
from .._schema import FIRST_ID, OOV_ID, PAD_ID, Schema
from ..base import BaseKerasClassifier, Graph
from ..layers import (
    ActivationUnit,
    AttentionGRU,
    AuxiliaryLoss,
    BilinearAttention,
    MaskedPooling,
    NegativeSampler,
)
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

ops = keras.ops

__all__ = ["DIENClassifier", "build_dien_graph"]

GRU_TYPES = ("GRU", "AIGRU", "AGRU", "AUGRU")

#: Standard deviation of the normal initialisation of DIEN's embedding tables. On
#: MovieLens-100k (3 seeds, 3 epochs) it scored 0.7081 against 0.7066 with 0.03, the
#: scale of Keras' uniform(-0.05, 0.05) that the other models keep; the released code
#: and DeepCTR start smaller still (glorot_uniform over large tables, N(0, 1e-4)).
EMBEDDING_STD = 0.01


def build_dien_graph(
    schema: Schema,
    *,
    embedding_dim: int = 8,
    gru_type: str = "AUGRU",
    gru_units: int | None = None,
    hidden_units: Sequence[int] = (256, 128),
    activation: str = "dice",
    dropout: float = 0.0,
    aux_loss_weight: float = 1.0,
    aux_hidden_units: Sequence[int] = (100, 50),
    history_sum: bool = True,
    attention: str = "mlp",
    attention_units: Sequence[int] = (80, 40),
    attention_activation: str = "sigmoid",
    l2_reg_embedding: float = 0.0,
    augru_form: str = "released",
    unroll: bool = False,
) -> Graph:
    """Build DIEN for every behaviour sequence that has its candidate column.

    Parameters
    ----------
    schema : Schema
        Column roles and vocabulary sizes. Aligned sequences of equal length
        form one behaviour sequence (see :func:`~sklattn.models._blocks.attended_groups`);
        the first of a group is the behaviour's item, the others its side features.
    embedding_dim, gru_type, gru_units, hidden_units, activation, dropout, \
aux_loss_weight, aux_hidden_units, history_sum, attention, attention_units, \
attention_activation, l2_reg_embedding, augru_form
        See :class:`DIENClassifier`.
    unroll : bool, default=False
        Unroll the recurrences into a static graph instead of compiled loops.

    Returns
    -------
    Graph
        ``model``: inputs as :func:`~sklattn.models._blocks.model_inputs`, one logit
        per row. ``extras``: ``"attention"``, the attention weights of each behaviour
        sequence; ``"auxiliary_loss"`` (when ``aux_loss_weight > 0``), per row and
        sequence, ``[sum of step losses, number of steps]``. ``layers``:
        ``"negative_samplers"``, the negative sampler of each behaviour sequence.
    """
    if gru_type not in GRU_TYPES:
        raise ValueError(f"gru_type must be one of {GRU_TYPES}; got {gru_type!r}.")
    inputs = model_inputs(schema)
    emb = embed_inputs(
        inputs, schema, embedding_dim, l2=l2_reg_embedding,
        initializer=keras.initializers.RandomNormal(stddev=EMBEDDING_STD),
    )
    features, weights, aux_stats, samplers = [], {}, {}, {}
    attended, candidates = set(), set()
    for names, cands in attended_groups(schema):
        key = names[0]
        behaviours, query, valid = group_inputs(emb, names, cands)
        units = int(gru_units or behaviours.shape[-1])

        # Interest extractor: h_t = GRU(e_t, h_{t-1}).
        states = AttentionGRU(
            units, "GRU", return_sequences=True, unroll=unroll, name=f"interest_extractor_{key}"
        )(behaviours, valid=valid)
        if aux_loss_weight > 0:
            sampler = NegativeSampler(
                schema.vocabulary_sizes[schema.sequences[key][1]],
                n_side=len(names) - 1,
                name=f"negative_sampler_{key}",
            )
            samplers[key] = sampler
            negative_items, negative_side = sampler(emb.ids[key])
            # Negatives are looked up without the embedding penalty: it regularises the
            # rows of the batch's real ids, once each (uniform negatives would extend it
            # to nearly the whole table).
            parts = [emb.tables[schema.sequences[key][1]](negative_items, penalize=False)]
            for k, n in enumerate(names[1:]):
                parts.append(
                    emb.tables[schema.sequences[n][1]](negative_side[..., k], penalize=False)
                )
            negatives = ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
            aux = AuxiliaryLoss(aux_hidden_units, weight=aux_loss_weight, name=f"auxiliary_{key}")
            aux_stats[key] = aux(states, behaviours, negatives, valid, return_loss=True)
            states = aux(states, behaviours, negatives, valid)

        # Interest evolution, driven by each state's attention on the candidate.
        score = _attention_scores(attention, attention_units, attention_activation, units, key)
        if gru_type == "GRU":  # a second GRU, then attention pooling of its states
            evolved = AttentionGRU(
                units, "GRU", return_sequences=True, unroll=unroll, name=f"interest_evolution_{key}"
            )(states, valid=valid)
            scores = score(query, evolved, valid)
            final = ops.sum(ops.expand_dims(scores, -1) * evolved, axis=1)
        else:
            scores = score(query, states, valid)
            if gru_type == "AIGRU":  # attention scales the input
                evolving, gate, gate_scores = states * ops.expand_dims(scores, -1), "GRU", None
            else:  # attention replaces (AGRU) or scales (AUGRU) the update gate
                if gru_type == "AUGRU" and augru_form == "released":
                    gate = "AUGRU-released"
                else:
                    gate = gru_type
                evolving, gate_scores = states, scores
            final = AttentionGRU(
                units, gate, unroll=unroll, name=f"interest_evolution_{key}"
            )(evolving, valid=valid, scores=gate_scores)
        weights[key] = scores
        features += [final, query]
        if history_sum:
            total = MaskedPooling("sum", name=f"sum_pooling_{key}")(behaviours, valid)
            features += [total, total * query]
        attended.update(names)
        candidates.update(cands)
    logit = output_logit(
        emb, features, attended, candidates, hidden_units=hidden_units,
        activation=activation, dropout=dropout,
    )
    model = keras.Model(inputs, logit, name="dien")
    extras = {}
    if weights:
        extras["attention"] = keras.Model(inputs, weights, name="dien_attention")
    if aux_stats:
        extras["auxiliary_loss"] = keras.Model(inputs, aux_stats, name="dien_auxiliary_loss")
    return Graph(model, extras, emb.tables, {"negative_samplers": samplers})


def _attention_scores(kind: str, units_: Sequence[int], activation: str, state_dim: int,
                      key: str):
    """``score(query, states, valid)``: softmax weights of the interest states.

    ``"bilinear"`` is the paper's ``softmax_t(h_t W e_a)`` (eq. 8); ``"mlp"`` is the
    activation unit of the authors' released code and DeepCTR: an MLP on
    ``[h_t, q, h_t - q, h_t * q]``, softmax-normalised over the valid steps. A query
    wider or narrower than the states is first projected to their width (as the
    released code always does).
    """
    if kind == "bilinear":
        return BilinearAttention(name=f"attention_{key}")
    unit = ActivationUnit(units_, activation=activation, normalize=True, name=f"attention_{key}")
    projection = None

    def score(query, states, valid):
        nonlocal projection
        if query.shape[-1] != state_dim:
            projection = projection or keras.layers.Dense(
                state_dim, name=f"attention_query_{key}"
            )
            query = projection(query)
        return unit(query, states, valid)[1]

    return score


class DIENClassifier(BaseKerasClassifier):
    """Deep Interest Evolution Network click-through classifier.

    For each behaviour sequence ``e_1..e_T`` (the behaviour's item plus its side
    features, e.g. ``hist_item`` and ``hist_cat``; embeddings shared with the
    candidate columns):

    1. **Interest extractor**: ``h_t = GRU(e_t, h_{t-1})``; padded steps leave
       the state unchanged. An auxiliary loss makes each ``h_t`` predict the
       next behaviour: an MLP on ``[h_t, e]`` separates the real ``e_{t+1}``
       from a negative ``e'_{t+1}`` that the estimator samples itself from the
       item vocabulary (``negative_sampling``), averaged over valid steps and
       added to the click loss with weight ``aux_loss_weight``.
    2. **Attention** of each state on the candidate, softmax-normalised over the
       valid steps (``attention``): an activation unit, an MLP on
       ``[h_t, e_a, h_t - e_a, h_t * e_a]`` as in the authors' released code
       (the default), or the paper's bilinear ``h_t W e_a`` (eq. 8).
    3. **Interest evolution** (``gru_type``): ``"AUGRU"`` scales the GRU's
       update gate by ``a_t``; ``"AGRU"`` replaces the update gate by ``a_t``;
       ``"AIGRU"`` feeds ``a_t h_t`` to a GRU; ``"GRU"`` runs a plain second GRU
       and pools its states by attention. The final state, the candidate, the
       other categorical embeddings and the numeric features feed an MLP with a
       sigmoid output.

    Sequences without their candidate column are mean-pooled, as in
    :class:`~sklattn.DINClassifier`; without any behaviour sequence the model
    is the MLP alone.

    Parameters
    ----------
    sequences : dict of str to str, default=None
        Only for already integer-encoded input: sequence name -> candidate
        column, as in :class:`~sklattn.DINClassifier`.
    categorical : list of str, default=None
        Only for pre-encoded input: the other integer id columns.
    embedding_dim : int, default=8
        Size of every embedding.
    gru_type : {"AUGRU", "AGRU", "AIGRU", "GRU"}, default="AUGRU"
        How attention drives the interest evolution.
    gru_units : int, default=None
        Size of both GRUs' states; None uses the behaviour's embedding size
        (embedding_dim times the number of aligned sequences), as the paper.
    hidden_units : sequence of int, default=(256, 128)
        Layers of the output MLP.
    activation : {"dice", "prelu", "relu", "sigmoid", "tanh", "gelu"}, default="dice"
        Activation of the output MLP.
    attention : {"mlp", "bilinear"}, default="mlp"
        How each interest state is scored against the candidate: ``"mlp"``, the
        activation unit of the released code and of DeepCTR (as DIN's, with
        softmax weights); ``"bilinear"``, the paper's ``softmax_t(h_t W e_a)``.
        On MovieLens-100k the two scored 0.7081 and 0.7079 (mean of 3 seeds; see
        ``docs/reference_differences.md``).
    attention_units : sequence of int, default=(80, 40)
        Hidden layers of the attention MLP (``attention="mlp"`` only; the
        released code's sizes).
    attention_activation : {"dice", "prelu", "relu", "sigmoid", "tanh", "gelu"}, \
default="sigmoid"
        Activation of the attention MLP: sigmoid, as the released code (DeepCTR
        uses Dice; on MovieLens-100k both scored 0.7081, and sigmoid is the cheaper).
    l2_reg_embedding : float, default=0.3
        Mini-batch aware L2 of the embedding tables, as in
        :class:`~sklattn.DINClassifier` (0 switches it off).
    augru_form : {"released", "paper"}, default="released"
        How AUGRU's attention ``a_t`` scales the update gate ``u_t``: the
        authors' released code (and DeepCTR) update by ``1 - (1 - a_t)(1 - u_t)``,
        a plain GRU step where the state is irrelevant and a full update where
        it is all that matters; the paper (eq. 13) by ``a_t u_t``. With softmax
        attention over T steps (``a_t`` near ``1 / T``) the paper's form hardly
        moves the state: on MovieLens-100k (20 steps) the predictions did not
        change with the attention's activation or size, and the released form
        scored higher (see ``docs/reference_differences.md``).
    aux_loss_weight : float, default=1.0
        Weight of the auxiliary loss (the paper's alpha); 0 builds no auxiliary
        net and samples no negatives.
    aux_hidden_units : sequence of int, default=(100, 50)
        Hidden layers of the auxiliary net (sigmoid activations, as the paper;
        its inputs are batch-normalised over the valid steps).
    history_sum : bool, default=False
        Also feed the MLP the sum of the behaviour embeddings and its product
        with the candidate, as the authors' released implementation does; False
        (the default) leaves them out, as the paper's figure and DeepCTR do,
        which scored 0.002 AUC higher on MovieLens-100k (3 seeds, 0.7081
        against 0.7061). Where clicks follow the share of the history in the
        candidate's category the sums carry that share directly: on
        ``make_interest_sequences(recency_decay=0.6)`` with 6,500 training rows and 4
        epochs, 0.692 with them against 0.590 without (DIN: 0.639).
    negative_sampling : {"uniform", "frequency"}, default="uniform"
        Distribution of the negative items: uniform over the item vocabulary
        or proportional to each item's frequency in the training histories and
        candidates; never the real next item, never padding or the unseen id.
        A negative's side features are those the item most often has in the
        training data.
    dropout : float, default=0.0
        Dropout after each layer of the output MLP.
    epochs : int, default=5
        Passes over the training data.
    batch_size : int, default=256
        Rows per gradient step.
    learning_rate : float, default=1e-3
        Adam's learning rate.
    validation_fraction : float, default=None
        Hold out this stratified fraction of the rows for early stopping.
    n_iter_no_change : int, default=3
        Patience of early stopping.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``
        (``sample_weight`` weighs the click loss, not the auxiliary loss).
    warm_start : bool, default=False
        Continue training the fitted model on the next ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout and negative sampling.
    verbose : int, default=0
        0 silent, 1 progress bar, 2 one line per epoch.
    jit_compile : bool or "auto", default="auto"
        Compile the training step with XLA. ``"auto"`` does not: for DIEN on a
        CPU the XLA step measured slower than the graph-mode one.
    distribute : {"mirrored", "multi_worker"}, tf.distribute.Strategy or None, \
default=None
        Train under a ``tf.distribute`` strategy (``batch_size`` is then the global
        batch); see ``docs/scaling.md``.

    Attributes
    ----------
    classes_, schema_, model_, history_, n_iter_, feature_names_in_, n_features_in_
        As in :class:`~sklattn.DINClassifier`.

    See Also
    --------
    DINClassifier : Attention pooling of the behaviours, without recurrence.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import DIENClassifier, SequenceEncoder
    >>> from sklattn.datasets import make_interest_sequences
    >>> X, y = make_interest_sequences(n_samples=500, maxlen=10, random_state=0)
    >>> model = make_pipeline(
    ...     SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}),
    ...     DIENClassifier(gru_type="AUGRU", epochs=1, random_state=0),
    ... ).fit(X, y)
    >>> model.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _reuse_graphs = True
    #: What a DIEN pickled before these parameters existed was (see ``_compat``).
    _legacy_parameters = {"attention": "bilinear", "l2_reg_embedding": 0.0,
                          "augru_form": "paper"}

    _parameter_constraints: dict = {
        **BaseKerasClassifier._parameter_constraints,
        **HEAD_PARAMETERS,
        "gru_type": [StrOptions(set(GRU_TYPES))],
        "gru_units": [Interval(Integral, 1, None, closed="left"), None],
        "aux_loss_weight": [Interval(Real, 0, None, closed="left")],
        "aux_hidden_units": [LAYER_WIDTHS],
        "negative_sampling": [StrOptions({"uniform", "frequency"})],
        "history_sum": ["boolean"],
        "attention": [StrOptions({"mlp", "bilinear"})],
        "attention_units": [LAYER_WIDTHS],
        "attention_activation": HEAD_PARAMETERS["activation"],
        "l2_reg_embedding": [Interval(Real, 0, None, closed="left")],
        "augru_form": [StrOptions({"released", "paper"})],
    }

    def __init__(
        self,
        *,
        sequences: Mapping[str, str] | None = None,
        categorical: Sequence[str] | None = None,
        embedding_dim: int = 8,
        gru_type: str = "AUGRU",
        gru_units: int | None = None,
        hidden_units: Sequence[int] = (256, 128),
        activation: str = "dice",
        attention: str = "mlp",
        attention_units: Sequence[int] = (80, 40),
        attention_activation: str = "sigmoid",
        l2_reg_embedding: float = 0.3,
        augru_form: str = "released",
        aux_loss_weight: float = 1.0,
        aux_hidden_units: Sequence[int] = (100, 50),
        negative_sampling: str = "uniform",
        history_sum: bool = False,
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
        self.gru_type = gru_type
        self.gru_units = gru_units
        self.hidden_units = hidden_units
        self.activation = activation
        self.attention = attention
        self.attention_units = attention_units
        self.attention_activation = attention_activation
        self.l2_reg_embedding = l2_reg_embedding
        self.augru_form = augru_form
        self.aux_loss_weight = aux_loss_weight
        self.aux_hidden_units = aux_hidden_units
        self.negative_sampling = negative_sampling
        self.history_sum = history_sum
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
        return build_dien_graph(
            schema,
            embedding_dim=self.embedding_dim,
            gru_type=self.gru_type,
            gru_units=self.gru_units,
            hidden_units=self.hidden_units,
            activation=self.activation,
            dropout=self.dropout,
            aux_loss_weight=self.aux_loss_weight,
            aux_hidden_units=self.aux_hidden_units,
            history_sum=self.history_sum,
            attention=self.attention,
            attention_units=self.attention_units,
            attention_activation=self.attention_activation,
            l2_reg_embedding=self.l2_reg_embedding,
            augru_form=self.augru_form,
        )

    def _use_xla(self, n_train: int) -> bool:
        # Measured on a 2-core CPU: the XLA-compiled DIEN step was about 1.5x slower than
        # the graph-mode one (the recurrences are already compiled loops).
        return False

    def _check_roles(self, schema: Schema, absent, *, training: bool) -> None:
        check_candidates_present(self, schema, absent)

    def _set_data_statistics(self, ids, targets, weights) -> None:
        super()._set_data_statistics(ids, targets, weights)
        if not self.aux_loss_weight:
            return
        schema = self.schema_
        for names, _ in attended_groups(schema):
            sampler = self._layers["negative_samplers"][names[0]]
            item_vocab = schema.sequences[names[0]][1]
            n_items = schema.vocabulary_sizes[item_vocab]
            items = ids[:, schema.sequence_positions(names[0], with_candidate=True)]
            counts = np.bincount(items.ravel(), minlength=n_items)[:n_items]
            weights = counts if self.negative_sampling == "frequency" else np.ones(n_items)
            side = np.full((n_items, len(names) - 1), OOV_ID, dtype=np.int32)
            for k, name in enumerate(names[1:]):
                values = ids[:, schema.sequence_positions(name, with_candidate=True)]
                side[:, k] = _most_frequent_partner(items, values, n_items)
            sampler.set_distribution(weights, side)

    def attention_weights(self, X) -> pd.DataFrame:
        """Per-step attention of the interest states on the candidate.

        For AIGRU, AGRU and AUGRU these are the ``a_t`` that drive the interest
        evolution; for ``gru_type="GRU"`` the weights of the final pooling.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows (e.g. ``pipeline[:-1].transform(raw)``).

        Returns
        -------
        pandas.DataFrame
            One row per (input row, valid behaviour): ``row``, ``sequence``,
            ``position`` (1 = oldest), ``item`` (encoded id), ``weight`` (the
            weights of a row's sequence sum to 1).
        """
        return position_weights(self, X, "attention")

    def auxiliary_loss(self, X) -> float:
        """The auxiliary next-behaviour loss on X (mean over valid steps).

        Negatives are drawn with a fixed seed, so the value is repeatable; it
        measures how well the interest states predict the next behaviour.

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows.

        Returns
        -------
        float
        """
        check_is_fitted(self, "model_")
        if "auxiliary_loss" not in self._extra_models:
            raise ValueError("aux_loss_weight=0: this model has no auxiliary net.")
        per_row = self._extra_outputs(X, "auxiliary_loss")  # {sequence: (n, [sum, count])}
        total, count = np.sum(
            [np.asarray(v, dtype=np.float64).sum(axis=0) for v in per_row.values()], axis=0
        )
        return float(total / max(count, 1.0))


def _most_frequent_partner(items: np.ndarray, values: np.ndarray, n_items: int) -> np.ndarray:
    """For every item id, the side id it co-occurs with most often (unseen if never)."""
    items, values = items.ravel().astype(np.int64), values.ravel().astype(np.int64)
    keep = (items >= FIRST_ID) & (values != PAD_ID)
    items, values = items[keep], values[keep]
    out = np.full(n_items, OOV_ID, dtype=np.int32)
    if not len(items):
        return out
    width = int(values.max()) + 1
    pairs, counts = np.unique(items * width + values, return_counts=True)
    item, value = np.divmod(pairs, width)
    order = np.lexsort((value, -counts, item))  # per item: most frequent, then smallest id
    item, value = item[order], value[order]
    first = np.r_[True, item[1:] != item[:-1]]
    out[item[first]] = value[first]
    return out
