"""Behavior Sequence Transformer (Chen et al., DLP-KDD 2019, arXiv:1905.06874).

The user's behaviour sequence and the candidate, appended as its last position, go
through transformer layers (multi-head self-attention, a LeakyReLU feed-forward
network, residual connections and layer normalisation); each position is its item
and side-feature embeddings plus a position (learned "k events ago", or the time gap
to the candidate when the schema has one). The transformer's outputs, pooled, join
the user's other features in an MLP with a sigmoid output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, StrOptions

from .._backend import keras
from .._schema import Schema
from ..base import BaseKerasClassifier, Graph
from ..layers import Embedding, MaskedPooling, PositionEmbedding, TransformerBlock
from ._blocks import (
    HEAD_PARAMETERS,
    attended_groups,
    check_candidates_present,
    embed_inputs,
    group_inputs,
    model_inputs,
    output_logit,
    position_weights,
)

ops = keras.ops

__all__ = ["BSTClassifier", "build_bst_graph"]

POSITIONS = ("concat", "add")
POOLINGS = ("concat", "target", "mean")


@dataclass
class _Group:
    """One transformer input: aligned behaviour sequences, their candidate columns and
    the time-gap sequence that serves as their position (None: index positions)."""

    names: list[str]
    candidates: list[str]
    gap: str | None
    gap_candidate: str | None


def _time_gaps(schema: Schema) -> dict[str, str]:
    # Schemas written before time gaps existed have no such field.
    return {g: s for g, s in (getattr(schema, "time_gaps", None) or {}).items()
            if g in schema.sequences}


def _transformer_groups(schema: Schema) -> list[_Group]:
    """The attended groups (:func:`~sklattn.models._blocks.attended_groups`) with the
    time-gap sequences taken out of the behaviours: a gap sequence aligned with a
    behaviour sequence of the group becomes the group's position."""
    gaps = _time_gaps(schema)
    groups = []
    for names, cands in attended_groups(schema):
        pairs = [(n, c) for n, c in zip(names, cands, strict=True) if n not in gaps]
        if not pairs:
            continue  # only time-gap sequences: nothing to attend over
        behaviours = [n for n, _ in pairs]
        gap = next((g for g in names if gaps.get(g) in behaviours), None)
        groups.append(
            _Group(behaviours, [c for _, c in pairs], gap,
                   None if gap is None else schema.candidate_of(gap))
        )
    return groups


def _width(group: _Group, embedding_dim: int, position: str | None) -> int:
    """Size of each position's vector in the transformer."""
    behaviour = len(group.names) * embedding_dim
    return behaviour + (embedding_dim if position == "concat" else 0)


def build_bst_graph(
    schema: Schema,
    *,
    embedding_dim: int = 8,
    n_blocks: int = 1,
    n_heads: int = 2,
    position: str | None = "concat",
    pooling: str = "target",
    hidden_units: Sequence[int] = (256, 128),
    activation: str = "relu",
    dropout: float = 0.2,
) -> Graph:
    """Build BST for every behaviour sequence that has its candidate column.

    Parameters
    ----------
    schema : Schema
        Column roles and vocabulary sizes. Aligned sequences of equal length form one
        behaviour sequence (see :func:`~sklattn.models._blocks.attended_groups`); a
        time-gap sequence of ``schema.time_gaps`` aligned with it is its position, not
        a behaviour feature.
    embedding_dim, n_blocks, n_heads, position, pooling, hidden_units, activation, \
dropout
        See :class:`BSTClassifier`.

    Returns
    -------
    Graph
        ``model``: inputs as :func:`~sklattn.models._blocks.model_inputs`, one logit
        per row; ``extras``: ``{"attention": model}`` returning, for each behaviour
        sequence, the last block's head-averaged attention of the candidate position
        on each behaviour ``(batch, steps)``.
    """
    inputs = model_inputs(schema)
    emb = embed_inputs(inputs, schema, embedding_dim)
    gaps = _time_gaps(schema)
    features, weights = [], {}
    # Time-gap sequences are only ever positions (with position=None, unused): never a
    # behaviour feature, nor mean-pooled into the MLP; neither is the candidate's
    # zero-gap column.
    attended = set(gaps)
    candidates = {c for g in gaps if (c := schema.candidate_of(g)) is not None}
    for group in _transformer_groups(schema):
        key = group.names[0]
        behaviours, query, valid = group_inputs(emb, group.names, group.candidates)
        x = ops.concatenate([behaviours, ops.expand_dims(query, 1)], axis=1)
        # The candidate position is always valid.
        valid = ops.concatenate([valid, ops.ones_like(valid[:, :1])], axis=1)
        steps = int(x.shape[1])
        if position is not None:
            size = embedding_dim if position == "concat" else int(x.shape[-1])
            if group.gap is not None:
                # The paper's position: each behaviour's time gap to the candidate, the
                # candidate's own gap (the column holding the zero-gap bucket) last.
                ids = ops.take(
                    inputs[0], schema.positions([*schema.sequences[group.gap][0],
                                                 group.gap_candidate]), axis=1,
                )
                table = Embedding(
                    schema.vocabulary_sizes[schema.sequences[group.gap][1]], size,
                    name=f"time_gap_position_{key}",
                )
                pos = table(ids)
            else:
                pos = PositionEmbedding(steps, size, name=f"position_{key}")(x)
                pos = pos + ops.zeros_like(x[:, :, :1])  # (1, steps, size) per row
            x = ops.concatenate([x, pos], axis=-1) if position == "concat" else x + pos
        for i in range(n_blocks):
            block = TransformerBlock(
                n_heads=n_heads, activation="leaky_relu", dropout=dropout,
                name=f"transformer_{key}_{i}",
            )
            if i < n_blocks - 1:
                x = block(x, valid)
            else:
                # "target" reads only the candidate's output: the last block computes
                # just that row (its query still attends to every position). Exact, and
                # 1.8x the training throughput of computing all 21 rows on MovieLens
                # (41,600 against 23,500 samples per CPU-second, one block).
                x, w = block(x, valid, return_attention=True, last_only=pooling == "target")
        # The candidate's row of the last block's attention, over the behaviours.
        weights[key] = ops.mean(w[:, :, -1, :-1], axis=1)
        if pooling == "concat":
            pooled = ops.reshape(x, (-1, steps * int(x.shape[-1])))
        elif pooling == "target":
            pooled = x[:, -1, :]
        else:
            pooled = MaskedPooling("mean", name=f"mean_pooling_transformer_{key}")(x, valid)
        features.append(pooled)
        attended.update(group.names)
        candidates.update(group.candidates)
    logit = output_logit(
        emb, features, attended, candidates, hidden_units=hidden_units,
        activation=activation, dropout=dropout,
    )
    model = keras.Model(inputs, logit, name="bst")
    extras = {"attention": keras.Model(inputs, weights, name="bst_attention")} if weights else {}
    return Graph(model, extras, emb.tables)


class BSTClassifier(BaseKerasClassifier):
    """Behavior Sequence Transformer click-through classifier.

    The user's behaviours (oldest to newest) and the candidate, appended as the
    last position, go through ``n_blocks`` transformer layers: multi-head
    self-attention over the valid positions (padding masked; the candidate is
    always valid), a LeakyReLU feed-forward network of 4 times the width,
    residual connections, layer normalisation and dropout. A position is the
    concatenated embeddings of its item and the aligned side sequences (e.g.
    ``[item_t, cat_t]``; the candidate ``[item, cat]``) with its position. The
    outputs, pooled, join the other categorical embeddings, the numeric features
    and the mean of every sequence without a candidate column in an MLP with a
    sigmoid output (Chen et al., 2019). See ``docs/bst.md``.

    The position is a learned vector per slot (sequences are left-padded, so
    slot ``k`` from the end means "``k`` events ago" in every row), or, when
    the encoder wrote time gaps (``SequenceEncoder(timestamps=...)``), the
    embedding of each behaviour's time gap to the request and the zero gap's for
    the candidate, as in the paper; the gap sequence is then no behaviour
    feature.

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
        Size of every embedding, and of a concatenated position.
    n_blocks : int, default=1
        Transformer layers (the paper found one best; two and three were worse).
    n_heads : int, default=2
        Attention heads. The width of a position (``(aligned sequences + 1) *
        embedding_dim`` with ``position="concat"``, ``aligned sequences *
        embedding_dim`` otherwise) must be a multiple of it, else ``fit`` raises a
        ValueError naming both. 4 and 8 heads (the paper's) scored the same test
        AUC on MovieLens-100k and train slower on a CPU; 2 divides every even
        width.
    position : {"concat", "add"} or None, default="concat"
        How the position enters: concatenated to the behaviour vector (the
        paper's choice, and the default), added to it (BERT; the position then has
        the behaviour's width), or not at all (self-attention then sees a set: with
        ``pooling="target"`` or ``"mean"`` the output does not depend on the order
        of the behaviours, and time gaps are not used).
    pooling : {"target", "concat", "mean"}, default="target"
        What the MLP gets from the transformer: the candidate position's output
        (which has attended to the history), all ``N + 1`` outputs flattened (the
        paper), or their mean over the valid positions and the candidate. On
        MovieLens-100k ``"target"`` scored 0.7035 test AUC against ``"concat"``'s
        0.7011 and ``"mean"``'s 0.7016 (mean of seeds 0-2, learning rate 3e-3, dropout
        0.1; 0.7020 against 0.6973 at 1e-3), and trains faster: the last block computes
        only the candidate's row, and the MLP input is 24 wide instead of 504.
    hidden_units : sequence of int, default=(256, 128)
        Layers of the output MLP.
    activation : {"relu", "prelu", "dice", "sigmoid", "tanh", "gelu"}, default="relu"
        Activation of the output MLP (the feed-forward layers are LeakyReLU, as in
        the paper).
    dropout : float, default=0.2
        Dropout of the attention weights, of both transformer sub-layers and after
        each layer of the output MLP (the paper's rate; on MovieLens-100k 0.2 scored
        0.7051 test AUC, 0.1 0.7035 and no dropout 0.7041: within the spread of seeds).
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
        Compile the training step with XLA. ``"auto"`` never does for BST: on a
        CPU, XLA trained it 1.8-2.7 times slower than TensorFlow's own kernels, and 9
        times slower with dropout (MovieLens-100k; see ``docs/bst.md``).
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
    DINClassifier : Attention of the candidate on each behaviour, without order.
    SequenceEncoder : Produces the encoded input (and the time gaps).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import BSTClassifier, SequenceEncoder
    >>> from sklattn.datasets import make_interest_sequences
    >>> X, y = make_interest_sequences(500, maxlen=10, recency_decay=0.5, random_state=0)
    >>> model = make_pipeline(
    ...     SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}),
    ...     BSTClassifier(epochs=1, random_state=0),
    ... ).fit(X, y)
    >>> model.predict_proba(X.head(2)).shape
    (2, 2)
    >>> w = model[-1].attention_weights(model[0].transform(X.head(3)))
    >>> list(w.columns)
    ['row', 'sequence', 'position', 'item', 'weight']
    >>> bool(w.groupby("row")["weight"].sum().lt(1).all())
    True

    The weights as a heat map (one row per input row, one column per slot):
    ``sklattn.plotting.plot_attention_weights(w, scale="row")``.
    """

    _reuse_graphs = True

    _parameter_constraints: dict = {
        **BaseKerasClassifier._parameter_constraints,
        **HEAD_PARAMETERS,
        "n_blocks": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "position": [StrOptions(set(POSITIONS)), None],
        "pooling": [StrOptions(set(POOLINGS))],
    }

    def __init__(
        self,
        *,
        sequences: Mapping[str, str] | None = None,
        categorical: Sequence[str] | None = None,
        embedding_dim: int = 8,
        n_blocks: int = 1,
        n_heads: int = 2,
        position: str | None = "concat",
        pooling: str = "target",
        hidden_units: Sequence[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.2,
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
        self.n_blocks = n_blocks
        self.n_heads = n_heads
        self.position = position
        self.pooling = pooling
        self.hidden_units = hidden_units
        self.activation = activation
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

    def _build_graph(self, schema: Schema) -> Graph:
        return build_bst_graph(
            schema,
            embedding_dim=self.embedding_dim,
            n_blocks=self.n_blocks,
            n_heads=self.n_heads,
            position=self.position,
            pooling=self.pooling,
            hidden_units=self.hidden_units,
            activation=self.activation,
            dropout=self.dropout,
        )

    def _use_xla(self, n_train: int) -> bool:
        # MovieLens-100k, one block, samples per CPU-second on one core: 48,800 without
        # XLA against 18,100 with it (no dropout), 41,600 against 4,600 with dropout 0.2
        # (XLA's CPU random numbers); two cores, no dropout: 1.8-2.0x. Never worth it.
        return False

    def _check_roles(self, schema: Schema, absent, *, training: bool) -> None:
        check_candidates_present(self, schema, absent)
        if not training:
            return
        groups = _transformer_groups(schema)
        gaps = _time_gaps(schema)
        behaviours = [n for n in schema.sequences if n not in gaps]
        if behaviours and not groups:
            needed = ", ".join(f"{n!r} needs column {schema.sequences[n][1]!r}"
                               for n in behaviours)
            raise ValueError(
                f"{type(self).__name__} appends the candidate to the behaviour sequence, "
                f"but X has no candidate column of any sequence ({needed})."
            )
        for group in groups:
            width = _width(group, self.embedding_dim, self.position)
            if width % self.n_heads:
                parts = f"{len(group.names)} behaviour feature(s) x embedding_dim=" \
                        f"{self.embedding_dim}"
                if self.position == "concat":
                    parts += f" + a position of embedding_dim={self.embedding_dim}"
                raise ValueError(
                    f"{type(self).__name__}'s transformer over {group.names} has width "
                    f"{width} ({parts}), which is not a multiple of n_heads={self.n_heads}; "
                    "choose embedding_dim and n_heads so that it is."
                )

    def attention_weights(self, X) -> pd.DataFrame:
        """The candidate's attention on each past behaviour (last transformer block).

        Parameters
        ----------
        X : pandas.DataFrame
            Encoded rows (e.g. ``pipeline[:-1].transform(raw)``).

        Returns
        -------
        pandas.DataFrame
            One row per (input row, valid behaviour): ``row`` (X's index label),
            ``sequence``, ``position`` (1 = oldest), ``item`` (the encoded id; decode
            with ``SequenceEncoder.inverse_transform``), ``weight``: the softmax
            weight, averaged over the heads, of the candidate position's query on
            that behaviour. A row's weights sum to 1 minus the candidate's weight on
            itself.
        """
        return position_weights(self, X, "attention")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = False
        return tags
