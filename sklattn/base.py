"""The shared estimator base: one Keras life cycle for every sklattn model."""

from __future__ import annotations

import queue
import random
import sys
import threading
import weakref
from abc import abstractmethod
from collections.abc import Mapping
from contextlib import contextmanager
from contextlib import nullcontext as _no_scope
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, compute_sample_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d

from ._backend import TF_BACKEND, keras, tf
from ._compat import fill_new_parameters
from ._data import as_frame, resolve_schema, to_arrays
from ._distribute import build_from_one_replica, distribution_strategy
from ._schema import Schema
from .datasets._stream import as_stream

try:  # TensorFlow's eager context: see _reseed_tensorflow
    from tensorflow.python.eager import context as tf_context
except ImportError:  # pragma: no cover - no TensorFlow
    tf_context = None

__all__ = ["BaseKerasClassifier", "BaseKerasEstimator", "Graph", "expected_failed_checks"]

_LAST_BIT = (
    "float32 matrix products round differently for different batch shapes, so a row's "
    "score alone, or inside a reordered batch, can differ in the last bit (about 5e-7); "
    "the model tests check batch independence at float32 tolerance"
)


def expected_failed_checks(estimator) -> dict[str, str]:
    """The checks of :mod:`sklearn.utils.estimator_checks` that ``estimator`` fails by
    design, each with the reason.

    scikit-learn (>= 1.6) takes them as ``expected_failed_checks``; every sklattn
    estimator declares its own, so ``check_estimator(est,
    expected_failed_checks=expected_failed_checks(est))`` passes.

    Examples
    --------
    >>> from sklattn import DINClassifier
    >>> from sklattn.base import expected_failed_checks
    >>> sorted(expected_failed_checks(DINClassifier()))[0]
    'check_methods_sample_order_invariance'
    """
    return dict(estimator._expected_failed_checks())


@dataclass
class Graph:
    """What a model's graph-building function returns.

    Attributes
    ----------
    model : keras.Model
        The training model: inputs as ``models._blocks.model_inputs`` (the id matrix,
        the numeric matrix), one output per row (a logit, or a retriever's loss).
    extras : dict of str to keras.Model
        Models that share its layers and give other outputs (attention weights,
        interests...), run by ``BaseKerasEstimator._extra_outputs``.
    tables : dict of str to sklattn.layers.Embedding
        The embedding table of each vocabulary.
    layers : dict of str to object
        Other layers (or dicts of layers) the estimator needs after the build, e.g.
        samplers whose distribution comes from the training data.
    """

    model: keras.Model
    extras: dict = field(default_factory=dict)
    tables: Mapping = field(default_factory=dict)
    layers: dict = field(default_factory=dict)


def _reseed_tensorflow(seed: int) -> None:
    """``tf.random.set_seed(seed)`` without clearing TensorFlow's kernel caches.

    ``tf.random.set_seed`` also empties the eager context's kernel cache, after which
    every compiled function is instantiated and optimised again: that doubled the time
    of a warm-started epoch on 20,000 rows (0.65 s -> 1.4 s, 2 cores). A warm model's
    random numbers come from Keras seed generators (state in variables) and from the
    op seeds that data shuffling derives from the context's seed and RNG, which this
    sets; nothing sklattn relies on lives in the cache.
    """
    ctx = tf_context.context() if tf_context is not None else None
    if ctx is not None and hasattr(ctx, "_seed") and hasattr(ctx, "_rng"):
        ctx._seed = seed
        ctx._rng = random.Random(seed)
    elif TF_BACKEND:  # pragma: no cover - a TensorFlow without these attributes
        tf.random.set_seed(seed)


@contextmanager
def _seeded(seed: int | None, *, build: bool = True):
    """Seed Keras/TensorFlow; leave the caller's numpy and ``random`` states untouched.

    ``build=False`` (a fit of an already built model) reseeds only what training
    draws from, keeping TensorFlow's compiled kernels (see :func:`_reseed_tensorflow`).
    """
    if seed is None:
        yield
        return
    np_state, py_state = np.random.get_state(), random.getstate()
    if build:
        keras.utils.set_random_seed(int(seed))
    else:
        random.seed(int(seed))
        np.random.seed(int(seed))
        _reseed_tensorflow(int(seed))
    # Keras draws the seed of every initializer and seed generator created without one
    # from Python's global ``random``, which other threads of the process draw from too
    # (a Dask worker's event loop does while a task fits): a private generator with the
    # same seed gives the same draws, whatever the other threads do.
    keras_random = sys.modules.get("keras.src.random.seed_generator")
    previous = getattr(keras_random, "python_random", None)
    if previous is not None:
        keras_random.python_random = random.Random(int(seed))
    try:
        yield
    finally:
        if previous is not None:
            keras_random.python_random = previous
        np.random.set_state(np_state)
        random.setstate(py_state)


# ------------------------------------------------------------------ graph reuse
#: Traced-and-compiled graphs of discarded estimators, by architecture (see
#: ``BaseKerasEstimator._reuse_graphs``): a later fit of the same architecture takes
#: one, gives it fresh initial values and skips tracing (and XLA compilation).
_GRAPH_POOL: dict[tuple, list] = {}
_GRAPH_POOL_LOCK = threading.Lock()
#: Graphs kept per architecture, in all, and the memory of their variables (with the
#: optimiser's) that the pool may hold.
_GRAPH_POOL_PER_KEY = 2
_GRAPH_POOL_MAX_GRAPHS = 8
_GRAPH_POOL_MAX_BYTES = 512 * 2**20
#: Graphs of discarded estimators waiting to enter the pool. A finaliser runs inside the
#: garbage collector, where taking the pool's lock could deadlock: it only puts here.
_RELEASED: queue.SimpleQueue = queue.SimpleQueue()

#: Estimator parameters that never change a model's graph (they act on the data,
#: the optimiser's state or the training loop).
_TRAINING_ONLY_PARAMETERS = frozenset({
    "epochs", "batch_size", "learning_rate", "validation_fraction", "n_iter_no_change",
    "warm_start", "random_state", "verbose", "class_weight",
})


@dataclass
class _Built:
    """A compiled model with everything traced for it: what the graph pool keeps."""

    model: object
    extras: dict
    tables: dict
    layers: dict
    predict_fn: object = None
    n_bytes: int = 0


def _graph_objects(built, *, layers: bool = True) -> list:
    """The model, every layer and every variable of a built graph (model and extra
    outputs), in a fixed order: what a user could hold on to. ``layers=False``: the
    variables alone."""
    seen, out = set(), []
    for model in (built.model, *built.extras.values()):
        parts = (model, *model._flatten_layers(include_self=False)) if layers else ()
        for obj in (*parts, *model.variables):
            if id(obj) not in seen:
                seen.add(id(obj))
                out.append(obj)
    return out


def _pool_bytes() -> int:
    return sum(b.n_bytes for entries in _GRAPH_POOL.values() for b in entries)


def _reference_counts(objects: list) -> list[int]:
    return [sys.getrefcount(obj) for obj in objects]


def _queue_graph(key: tuple, built: _Built, refs: list[int]) -> None:
    """The finaliser of an estimator whose graph may be reused (see ``_track_graph``)."""
    _RELEASED.put((key, built, refs))


def _admit_released() -> None:
    """Move the queued graphs into the pool (under its lock): each one only if nothing
    but the pool holds its model, layers or variables any more (a user's reference:
    reusing the graph would change what they hold), and within the pool's bounds."""
    while True:
        try:
            key, built, refs = _RELEASED.get_nowait()
        except queue.Empty:
            return
        objects = _graph_objects(built)
        # ``objects`` and this call hold one reference more to each than at tracking.
        now = [n - 1 for n in _reference_counts(objects)]
        del objects
        if len(now) != len(refs) or any(n > r for n, r in zip(now, refs, strict=True)):
            continue
        entries = _GRAPH_POOL.setdefault(key, [])
        n_graphs = sum(len(e) for e in _GRAPH_POOL.values())
        if (len(entries) < _GRAPH_POOL_PER_KEY and n_graphs < _GRAPH_POOL_MAX_GRAPHS
                and _pool_bytes() + built.n_bytes <= _GRAPH_POOL_MAX_BYTES):
            entries.append(built)
        elif not entries:
            del _GRAPH_POOL[key]


def _take_graph(key: tuple) -> _Built | None:
    with _GRAPH_POOL_LOCK:
        _admit_released()
        entries = _GRAPH_POOL.get(key)
        if not entries:
            return None
        built = entries.pop()
        if not entries:
            del _GRAPH_POOL[key]
        return built


def clear_graph_cache() -> None:
    """Drop the compiled graphs that sklattn keeps for reuse by later fits.

    When an estimator is discarded (garbage-collected, or fitted again from scratch),
    its traced training and prediction functions are kept, at most two per
    architecture, eight in all and 512 MB of variables, for the next fit of the same
    architecture (same class, graph parameters, input schema and dtype policy) in
    this process: that fit starts from its own seeded initial values without
    tracing or compiling again, with the results of a fit without reuse. A graph
    whose model, layers or variables are still referenced elsewhere (kept from the
    estimator's ``model_``) is not kept. Call this to free that memory.

    Examples
    --------
    >>> from sklattn.base import clear_graph_cache
    >>> clear_graph_cache()
    """
    with _GRAPH_POOL_LOCK:
        while not _RELEASED.empty():
            _RELEASED.get_nowait()
        _GRAPH_POOL.clear()


def _full_batches(arrays: list, y: np.ndarray, weights, batch_size: int, seed: int | None):
    """The shuffled training batches of one epoch, every one ``batch_size`` rows long.

    The last, short batch of ``k`` rows is filled up with copies of its own rows that
    weigh 0 in the compiled loss, and its real rows weigh ``batch_size / k``: that loss
    (a sum over the batch divided by its size) is the mean over the real rows, as for a
    short batch. What is computed over the whole batch sees the copies, in that one
    batch per epoch: Dice and batch-normalisation statistics, losses a layer adds
    itself (DIEN's auxiliary loss) and the loss shown in the history. Each epoch draws
    a new permutation in one operation, not through a shuffle buffer filled row by row.
    """
    tensors = [tf.constant(a) for a in arrays]
    targets = tf.constant(y.astype(np.float32))
    sample = None if weights is None else tf.constant(weights.astype(np.float32))
    n = len(y)
    n_batches = -(-n // batch_size)
    head = (n_batches - 1) * batch_size  # rows in the full batches
    k = n - head  # rows of the last batch
    fill = np.arange(batch_size) % k  # the last batch's rows, repeated
    last_weights = np.where(np.arange(batch_size) < k, batch_size / k, 0.0)
    row_weights = tf.constant(
        np.vstack([np.ones((n_batches - 1, batch_size)), last_weights[None]]), tf.float32
    )
    fill = tf.constant(fill, tf.int64)
    salt = tf.constant(0 if seed is None else seed, tf.int64)

    def epoch(draw):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([draw, salt])
        )
        last = tf.gather(order[head:], fill)
        index = tf.reshape(tf.concat([order[:head], last], 0), (n_batches, batch_size))
        return tf.data.Dataset.from_tensor_slices((index, row_weights))

    def take(index, w):
        if sample is not None:
            w = w * tf.gather(sample, index)
        x = tuple(tf.gather(t, index) for t in tensors)
        return (x if len(x) > 1 else x[0]), tf.gather(targets, index), w

    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    return (
        draws.flat_map(epoch)
        .apply(tf.data.experimental.assert_cardinality(n_batches))
        .map(take, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


class BaseKerasEstimator(BaseEstimator):
    """Base class of every sklattn model: the whole Keras life cycle.

    A model supplies its graph (:meth:`_build_graph`), its training loss
    (:meth:`_loss`) and lists its hyper-parameters in ``__init__``; the base owns
    everything else: column roles and input conversion (through ``sklattn._data``),
    ``fit`` / ``partial_fit``, Keras build/compile/fit, early stopping, warm starts,
    seeding, compiled inference, chunked extra outputs and pickling. See
    ``docs/architecture.md`` and ``docs/estimators.md``.

    Column roles come, in order of precedence, from the ``sequences`` /
    ``categorical`` parameters (for an already-encoded integer DataFrame),
    from the schema a :class:`~sklattn.SequenceEncoder` attaches to its
    output, or else every column is a numeric feature.
    """

    _parameter_constraints: dict = {
        "sequences": [dict, None],
        "categorical": ["array-like", None],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "jit_compile": ["boolean", StrOptions({"auto"})],
        "distribute": [None, StrOptions({"mirrored", "multi_worker"}),
                       *([tf.distribute.Strategy] if TF_BACKEND else [])],
    }

    #: Rows converted and scored per step of prediction.
    prediction_chunk_size = 65536

    #: Whether the validation split is stratified by the targets.
    _stratify_validation = False
    #: Whether X must be a DataFrame of encoded columns (no plain arrays).
    _requires_dataframe = False
    #: Whether a fit may reuse the traced graph of a discarded estimator of the same
    #: architecture (see :func:`clear_graph_cache`). Only for models whose graph
    #: depends on nothing but the constructor parameters and the schema.
    _reuse_graphs = False

    # ------------------------------------------------------------ subclass API
    @abstractmethod
    def _build_graph(self, schema: Schema) -> Graph:
        """Build the model's graph for ``schema`` (see :class:`Graph`)."""

    @abstractmethod
    def _loss(self) -> keras.losses.Loss:
        """The loss ``model_`` is compiled with."""

    def _serving_model(self) -> keras.Model:
        """The model whose inference function is traced once after fitting."""
        return self.model_

    def _check_roles(self, schema: Schema, absent, *, training: bool) -> None:
        """Raise if the schema, or X lacking the ``absent`` columns, does not give the
        model what it needs; ``training`` says whether the rows are for training."""

    def _targets(self, y, n_samples: int, *, reset: bool, classes=None) -> np.ndarray:
        """The Keras targets of the rows. The base trains without labels (a retriever's
        graph outputs its own loss): ``y`` is ignored and the targets are zeros."""
        return np.zeros(n_samples, dtype=np.float32)

    def _sample_weights(self, sample_weight, targets: np.ndarray,
                        class_rows: Mapping | None = None) -> np.ndarray | None:
        """Per-row weights of the loss (float32), or None. ``class_rows`` (target ->
        rows) counts the classes over a whole stream whose chunk ``targets`` are."""
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, targets, dtype=np.float64).astype(np.float32)

    def _set_data_statistics(
        self, ids: np.ndarray | None, targets: np.ndarray, weights: np.ndarray | None
    ) -> None:
        """Give the freshly built graph what it needs from the training data (hook).

        ``ids`` is the id matrix, ``targets`` and ``weights`` what Keras trains on. The
        base sets the id frequencies of embedding tables with a mini-batch aware
        penalty; subclasses extend it (negative-sampling tables, an initial bias). The
        values must live in the model's weights so that pickling keeps them.
        """
        self._set_frequencies(ids)

    def _after_fit(self, X, *, reset: bool, targets: np.ndarray,
                   weights: np.ndarray | None) -> None:
        """Derive fitted attributes from the trained model, or check it (hook, after every
        fit; ``targets`` and ``weights`` are those of the rows of X)."""

    def _samples(self, X, ids, floats, targets: np.ndarray, weights: np.ndarray | None):
        """The Keras samples of the rows of X (hook, after the rows are checked).

        The base trains on one sample per row: ``(ids, floats, targets, weights)`` as
        they are. A list-wise model returns one sample per request instead (ids
        ``(n_requests, length, n_columns)``, targets ``(n_requests, length)``);
        everything after it (validation split, batches, early stopping) works on
        those samples.
        """
        return ids, floats, targets, weights

    def _use_xla(self, n_train: int) -> bool:
        """What ``jit_compile="auto"`` means for this model and training size."""
        # XLA speeds CPU training up by about 1.7x but compiling the step takes
        # seconds: worth it only for long fits.
        return TF_BACKEND and n_train >= 300_000

    # ------------------------------------------------------------------- fit
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Encoded features (usually the output of a SequenceEncoder).
        y : array-like of shape (n_samples,), default=None
            Targets: a classifier's binary labels (any two values; see
            ``classes_``). A retriever trains on positive events and ignores ``y``.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights of the loss.

        Returns
        -------
        self
            The fitted estimator.
        """
        self._validate_params()
        self._strategy()  # a bad ``distribute`` fails before the fitted model is touched
        reset = not (self.warm_start and hasattr(self, "model_"))
        stream = as_stream(X, y)
        if stream is not None:
            from ._streaming import fit_stream

            return fit_stream(self, stream, sample_weight, epochs=self.epochs, reset=reset)
        return self._fit(X, y, sample_weight, epochs=self.epochs, reset=reset)

    def partial_fit(self, X, y=None, sample_weight=None):
        """Train one epoch on X, building the model on the first call.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Encoded features.
        y : array-like of shape (n_samples,), default=None
            Targets, as in :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights of the loss.

        Returns
        -------
        self
            The updated estimator.
        """
        return self._partial_fit(X, y, sample_weight)

    def _partial_fit(self, X, y, sample_weight, classes=None):
        reset = not hasattr(self, "model_")
        if reset:
            self._validate_params()
        self._strategy()
        stream = as_stream(X, y)
        if stream is not None:
            from ._streaming import fit_stream

            return fit_stream(self, stream, sample_weight, epochs=1, reset=reset,
                              classes=classes, validate=False)
        return self._fit(
            X, y, sample_weight, epochs=1, reset=reset, classes=classes, validate=False
        )

    def _fit(self, X, y, sample_weight, *, epochs, reset, classes=None, validate=True):
        if y is None and self.__sklearn_tags__().target_tags.required:
            # Before anything is fitted: a failed fit leaves no fitted attribute.
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        if reset:
            self._n_fit_calls = 0
            for name in ("_stream_label", "_stream_weight", "_stream_rows_held"):
                self.__dict__.pop(name, None)
            self.schema_ = resolve_schema(self, X)
        ids, floats = to_arrays(self, X, reset=reset, training=True)
        n_samples = len(ids if ids is not None else floats)
        targets = self._targets(y, n_samples, reset=reset, classes=classes)
        if len(targets) != n_samples:
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {n_samples} != {len(targets)}."
            )
        weights = self._sample_weights(sample_weight, targets)
        samples = self._samples(X, ids, floats, targets, weights)
        self._train(*samples, epochs=epochs, reset=reset, validate=validate)
        self._after_fit(X, reset=reset, targets=targets, weights=weights)
        if reset:
            self._track_graph()
        return self

    def _train(self, ids, floats, targets, weights, *, epochs, reset, validate):
        """Build (when ``reset``) and train ``model_`` on prepared arrays."""
        seed = self._seed()
        with _seeded(None if seed is None else seed + self._n_fit_calls, build=reset):
            if reset:
                self._build_models(n_train=len(targets) * self.epochs)
                self._set_data_statistics(ids, targets, weights)
            else:
                self._follow_strategy(n_train=len(targets) * epochs)
            self._n_fit_calls += 1
            history = self._keras_fit(ids, floats, targets, weights, epochs, validate)
        self._record_history(history, reset=reset)

    def _record_history(self, history, *, reset: bool) -> None:
        """``history_`` and ``n_iter_`` of a Keras fit; the inference function traced."""
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        losses = self.history_.get("loss", [])
        if losses and not np.isfinite(losses[-1]):
            raise FloatingPointError(
                f"{type(self).__name__} diverged (training loss is {losses[-1]}); "
                "lower learning_rate."
            )
        self.n_iter_ = (self.n_iter_ if not reset and hasattr(self, "n_iter_") else 0) + len(
            losses
        )
        if not hasattr(self, "_predict_fn"):
            # The traced function reads the model's variables when called: a warm
            # start, a partial_fit or a reused graph needs no new trace.
            self._make_predict_fn()

    def _keras_fit(self, ids, floats, y, weights, epochs, validate):
        arrays = [a for a in (ids, floats) if a is not None]
        callbacks = [keras.callbacks.TerminateOnNaN()]
        validation_data = None
        if validate and self.validation_fraction is not None:
            parts = train_test_split(
                *arrays, y, *([weights] if weights is not None else []),
                test_size=self.validation_fraction,
                stratify=y if self._stratify_validation else None,
                random_state=self._seed(),
            )
            train, val = parts[0::2], parts[1::2]
            arrays, y = train[: len(arrays)], train[len(arrays)]
            val_arrays, y_val = val[: len(arrays)], val[len(arrays)]
            if weights is not None:
                weights, w_val = train[-1], val[-1]
                validation_data = (val_arrays, y_val, w_val)
            else:
                validation_data = (val_arrays, y_val)
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss",
                    patience=self.n_iter_no_change,
                    restore_best_weights=True,
                )
            )
        fit = dict(epochs=epochs, verbose=int(self.verbose), validation_data=validation_data,
                   callbacks=callbacks)
        if TF_BACKEND and self.model_.jit_compile and len(y) % self.batch_size:
            # XLA compiles the step once per batch shape: a short last batch cost a second
            # compilation, 2.3 s of a 6.2 s one-epoch DIN fit on 80,000 rows (2 cores).
            data = _full_batches(arrays, y, weights, self.batch_size, self._fit_seed())
            return self.model_.fit(  # shuffled by the dataset
                data, shuffle=False, validation_batch_size=self.batch_size, **fit
            )
        return self.model_.fit(
            arrays if len(arrays) > 1 else arrays[0],
            y.astype(np.float32),
            sample_weight=weights,
            batch_size=self.batch_size,
            shuffle=True,
            **fit,
        )

    def _fit_seed(self) -> int | None:
        """The seed of this fit call's shuffling (None: unseeded)."""
        seed = self._seed()
        return None if seed is None else seed + self._n_fit_calls

    def _graph_key(self, jit: bool) -> tuple | None:
        """What identifies this estimator's graph for reuse, or None (no reuse)."""
        if not self._reuse_graphs:
            return None
        params = {
            k: v for k, v in self.get_params(deep=False).items()
            if k not in _TRAINING_ONLY_PARAMETERS
        }
        return (type(self), repr(sorted(params.items())), repr(self.schema_), bool(jit),
                keras.config.dtype_policy().name, keras.config.floatx())

    def _track_graph(self) -> None:
        """After a fresh fit: hand this estimator's graph to the pool when the estimator
        is discarded (or fitted again from scratch), if its graph can be reused."""
        key = getattr(self, "_pool_key", None)
        if key is None:
            return
        built = _Built(self.model_, self._extra_models, self._tables, self._layers,
                       self._predict_fn)
        variables = [*_graph_objects(built, layers=False), *self.model_.optimizer.variables]
        built.n_bytes = sum(
            int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables
        )
        del variables
        # References to the model, its layers and variables now: the graph's own and
        # Keras' internal ones (``objects``' and the call's are discounted, here and in
        # ``_admit_released``). More later means that something else holds one.
        objects = _graph_objects(built)
        refs = [n - 1 for n in _reference_counts(objects)]
        del objects
        # The estimator's own ``model_`` goes with it (its other attributes are the
        # graph's own dicts): without it, a user's one reference must show.
        refs[0] -= 1
        finalizer = weakref.finalize(self, _queue_graph, key, built, refs)
        finalizer.atexit = False
        self._graph_finalizer = finalizer

    def _drop_graph(self) -> None:
        """Release the graph of a previous fit now (a fit from scratch replaces it)."""
        finalizer = self.__dict__.pop("_graph_finalizer", None)
        if finalizer is not None and finalizer.alive:
            _, _, (key, built, refs), _ = finalizer.detach()
            self.__dict__.pop("model_", None)
            for name in ("_extra_models", "_tables", "_layers", "_predict_fn"):
                self.__dict__.pop(name, None)
            _queue_graph(key, built, refs)

    def _strategy(self):
        """The ``tf.distribute`` strategy to build and train under (None: none), checked
        against ``jit_compile``. A strategy the user entered (``with s.scope():``)
        counts as ``distribute=s``."""
        distribute = getattr(self, "distribute", None)
        if distribute is None and TF_BACKEND and tf.distribute.has_strategy():
            distribute = tf.distribute.get_strategy()
        strategy = distribution_strategy(distribute)
        if strategy is None or self.jit_compile is not True:
            return strategy
        devices = strategy.extended.worker_devices
        if len(devices) > 1 and any("CPU" in d.upper() for d in devices):
            raise ValueError(
                f"jit_compile=True cannot train under distribute={distribute!r} over "
                "several CPU devices: XLA cannot reach the variables that the other "
                "replicas hold. Use jit_compile=False or 'auto'."
            )
        return strategy

    def _follow_strategy(self, n_train: int) -> None:
        """Before a warm fit: a model built under another strategy than ``distribute``
        now names (changed by ``set_params``, or none since unpickling) is rebuilt
        under it, with its weights; Adam starts afresh."""
        strategy = self._strategy()
        if strategy is self.__dict__.get("_built_strategy"):
            return
        weights = self.model_.get_weights()
        self._build_models(n_train=n_train)
        self.model_.set_weights(weights)

    def _build_models(self, n_train: int = 0, *, distributed: bool = True) -> None:
        # Unpickling builds for prediction only (``distributed=False``): joining a
        # cluster or taking the GPUs waits for the next fit (``_follow_strategy``).
        strategy = self._strategy() if distributed else None
        self._drop_graph()
        jit = self.jit_compile
        if jit == "auto":
            # Under a strategy, XLA only where the replicas are GPUs, by request: over
            # CPU devices it cannot reach the other replicas' variables.
            jit = strategy is None and self._use_xla(n_train)
        self._built_strategy = strategy
        # A distributed graph's variables belong to its strategy: never pooled.
        self._pool_key = key = None if strategy is not None else self._graph_key(bool(jit))
        # Under a strategy, variables (the model's and Adam's) are created mirrored on
        # each replica, and Keras' fit splits every global batch between the replicas.
        with strategy.scope() if strategy is not None else _no_scope():
            graph = self._build_graph(self.schema_)
            built = _take_graph(key) if key is not None else None
            if built is not None and self._adopt_graph(built, graph):
                return
            model = graph.model
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
                loss=self._loss(),
                jit_compile=bool(jit),
                # Several batches per call of the compiled step: ~10% faster on CPU.
                # Not under a strategy: Keras 3.15's multi-step loop then feeds an
                # unset placeholder to the replicas (InvalidArgumentError).
                steps_per_execution=16 if strategy is None else 1,
            )
            # Create Adam's slots now: created inside the first trace of the train
            # step, they make TensorFlow trace it a second time (about 1.3 s of every
            # fresh fit).
            model.optimizer.build(model.trainable_variables)
        if strategy is not None:
            build_from_one_replica(model)
        self.model_ = model
        self._extra_models = graph.extras
        self._tables = dict(graph.tables)
        self._layers = graph.layers
        self.__dict__.pop("_predict_fn", None)

    def _adopt_graph(self, built: _Built, graph: Graph) -> bool:
        """Make a pooled graph this estimator's model, with the initial values of the
        freshly built ``graph`` (same seed, same values as a fit without reuse) and a
        reset optimiser. False (nothing changed) if the two graphs differ."""
        fresh = _Built(graph.model, graph.extras, dict(graph.tables), graph.layers)
        targets, sources = _graph_objects(built, layers=False), _graph_objects(fresh, layers=False)
        if len(targets) != len(sources) or any(
            tuple(t.shape) != tuple(s.shape) or t.dtype != s.dtype
            for t, s in zip(targets, sources, strict=True)
        ):
            return False
        for target, source in zip(targets, sources, strict=True):
            target.assign(source)
        optimizer = built.model.optimizer
        for v in optimizer.variables:
            v.assign(keras.ops.zeros(v.shape, dtype=v.dtype))
        optimizer.learning_rate = self.learning_rate
        self.model_ = built.model
        self._extra_models = built.extras
        # The pooled graph's tables and layers, keyed as the fresh graph's.
        self._tables = built.tables
        self._layers = built.layers
        self._predict_fn = built.predict_fn
        return True

    def _set_frequencies(self, ids) -> None:
        """Give embedding tables with a mini-batch aware penalty the id counts of ``ids``."""
        if ids is None:
            return
        flat = ids.reshape(-1, ids.shape[-1])  # list-wise samples: one row per item
        self._set_id_counts({
            vocab: np.bincount(flat[:, self.schema_.vocabulary_positions(vocab)].ravel(),
                               minlength=table.input_dim)
            for vocab, table in self._tables.items() if table.l2
        })

    def _set_id_counts(self, counts: Mapping[str, np.ndarray]) -> None:
        """Give embedding tables with a mini-batch aware penalty their id counts
        (vocabulary -> counts by id; a stream's come from every row)."""
        for vocab, table in self._tables.items():
            if table.l2 and vocab in counts:
                n = np.zeros(table.input_dim, np.float32)
                c = counts[vocab][: table.input_dim]
                n[: len(c)] = c
                table.set_frequencies(n)

    def _seed(self) -> int | None:
        if self.random_state is None:
            return None
        if isinstance(self.random_state, Integral):
            return int(self.random_state)
        if not hasattr(self, "_drawn_seed"):
            self._drawn_seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        return self._drawn_seed

    # ------------------------------------------------------------- predict
    def _make_predict_fn(self) -> None:
        """Trace the inference graph once; calls then skip Keras' predict loop."""
        model = self._serving_model()
        n_inputs = len(model.inputs)
        if not TF_BACKEND:  # pragma: no cover - other Keras backends
            def run(*arrays):
                return model(list(arrays) if n_inputs > 1 else arrays[0], training=False)

            self._predict_fn = run
            return
        # The model's own input shapes (a row-wise model: (None, columns); a list-wise
        # one: (None, length, columns)).
        specs = [tf.TensorSpec(tuple(t.shape), t.dtype) for t in model.inputs]
        if n_inputs == 2:
            fn = tf.function(lambda a, b: model([a, b], training=False))
        else:
            fn = tf.function(lambda a: model([a], training=False))
        concrete = fn.get_concrete_function(*specs)

        def run(*arrays):
            return concrete(*[tf.constant(a) for a in arrays])

        self._predict_fn = run

    def _run_chunks(self, X, fn) -> list[np.ndarray]:
        """Apply ``fn(ids, floats)`` to bounded chunks of X."""
        check_is_fitted(self, "model_")
        if as_stream(X) is not None:
            raise TypeError(
                f"This method of {type(self).__name__} takes a DataFrame, not a stream; "
                "predict_proba, decision_function and predict read streams chunk by chunk."
            )
        X = as_frame(X)
        if not isinstance(X, pd.DataFrame) and not hasattr(X, "shape"):
            X = np.asarray(X)
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        if n == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        step = self.prediction_chunk_size
        outputs = []
        for start in range(0, n, step):
            rows = slice(start, start + step)
            part = X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]
            ids, floats = to_arrays(self, part)
            outputs.append(fn(ids, floats))
        return outputs

    def _extra_outputs(self, X, name: str):
        """Run ``_extra_models[name]`` (inference mode) over X in bounded chunks.

        Returns the model's output for all rows: an array, or a dict of arrays for a
        model with dict outputs, concatenated along the rows.
        """
        check_is_fitted(self, "model_")
        model = self._extra_models.get(name)
        if model is None:
            raise ValueError(f"{type(self).__name__} has no {name!r} output.")

        def run(ids, floats):
            out = model([a for a in (ids, floats) if a is not None], training=False)
            if isinstance(out, dict):
                return {k: np.asarray(v) for k, v in out.items()}
            return np.asarray(out)

        chunks = self._run_chunks(X, run)
        if isinstance(chunks[0], dict):
            return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        return np.concatenate(chunks)

    def _expected_failed_checks(self) -> dict[str, str]:
        """Checks of scikit-learn's estimator suite this model fails by design (see
        :func:`expected_failed_checks`); subclasses extend the dict."""
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "weights scale a row's loss inside its mini-batch; duplicating the row "
                "changes the batches and hence the SGD path, so the two fits are close, "
                "not equal"
            ),
            "check_methods_subset_invariance": _LAST_BIT,
            "check_methods_sample_order_invariance": _LAST_BIT,
        }

    def __sklearn_clone__(self):
        strategy = getattr(self, "distribute", None)
        if not (TF_BACKEND and isinstance(strategy, tf.distribute.Strategy)):
            return super().__sklearn_clone__()
        # clone deep-copies parameters: a strategy, which owns devices (and a cluster's
        # connections), is shared by the clones instead.
        self.distribute = None
        try:
            new = super().__sklearn_clone__()
        finally:
            self.distribute = strategy
        new.distribute = strategy
        return new

    # ---------------------------------------------------------- persistence
    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        if TF_BACKEND and isinstance(state.get("distribute"), tf.distribute.Strategy):
            raise TypeError(
                f"{type(self).__name__}(distribute=<{type(state['distribute']).__name__}>) "
                "cannot be pickled: a tf.distribute.Strategy object does not pickle. Use "
                "distribute='mirrored' or 'multi_worker', or set_params(distribute=None) "
                "before saving."
            )
        model = state.pop("model_", None)
        for built in ("_extra_models", "_tables", "_layers", "_predict_fn",
                      "_graph_finalizer", "_pool_key", "_built_strategy"):
            state.pop(built, None)
        if model is not None:
            state["_model_weights"] = [np.array(w) for w in model.get_weights()]
        return state

    def __setstate__(self, state):
        weights = state.pop("_model_weights", None)
        super().__setstate__(state)
        fill_new_parameters(self)  # pickled before a parameter existed: its default
        if weights is not None:
            self._build_models(distributed=False)
            self.model_.set_weights(weights)
            if not hasattr(self, "_predict_fn"):
                self._make_predict_fn()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.non_deterministic = self.random_state is None
        return tags


class BaseKerasClassifier(ClassifierMixin, BaseKerasEstimator):
    """Base class of sklattn's binary click-through classifiers (sequence and field
    models alike).

    Adds to :class:`BaseKerasEstimator` what a classifier needs: label encoding
    (``classes_``), class weights, a stratified validation split, the binary
    cross-entropy on one logit per row and ``decision_function`` /
    ``predict_proba`` / ``predict``.
    """

    _parameter_constraints: dict = {
        **BaseKerasEstimator._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    _stratify_validation = True

    def _loss(self) -> keras.losses.Loss:
        return keras.losses.BinaryCrossentropy(from_logits=True)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one epoch on ``(X, y)``, building the model on the first call.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Encoded features.
        y : array-like of shape (n_samples,)
            Binary labels.
        classes : array-like of shape (2,), default=None
            Both labels; needed on the first call unless ``y`` holds both.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights of the loss.

        Returns
        -------
        self
            The updated estimator.
        """
        return self._partial_fit(X, y, sample_weight, classes=classes)

    # ------------------------------------------------------------- targets
    def _targets(self, y, n_samples: int, *, reset: bool, classes=None) -> np.ndarray:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            labels = np.unique(classes if classes is not None else y)
            if len(labels) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of 2 classes in y; got 1 class "
                    f"({labels[0]!r})." if len(labels) else "y is empty."
                )
            if len(labels) > 2 or type_of_target(labels) not in ("binary", "multiclass"):
                raise ValueError(
                    "Only binary classification is supported. The type of the target is "
                    f"{type_of_target(y)}: {type(self).__name__} predicts click / no click, "
                    f"but y has {len(labels)} classes."
                )
            self.classes_ = labels
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(f"y contains labels not in classes_ {self.classes_}: {unknown}.")
        return np.searchsorted(self.classes_, y).astype(np.float32)

    def _sample_weights(self, sample_weight, targets: np.ndarray,
                        class_rows: Mapping | None = None) -> np.ndarray | None:
        if sample_weight is None and self.class_weight is None:
            return None
        weights = _check_sample_weight(sample_weight, targets, dtype=np.float64)
        if self.class_weight == "balanced" and class_rows is not None:
            # A chunk of a stream: balanced over every row the stream holds.
            total = sum(class_rows.values())
            per_class = {t: total / (len(class_rows) * n) for t, n in class_rows.items()}
            weights = weights * compute_sample_weight(per_class, targets)
        elif self.class_weight is not None:
            weights = weights * compute_sample_weight(self._target_class_weight(), targets)
        return weights.astype(np.float32)

    def _target_class_weight(self):
        """``class_weight`` keyed by target (the label's position in ``classes_``): the
        targets are 0 and 1 whatever the labels, so a dict keyed by labels such as
        ``{1: ..., 2: ...}`` or ``{"no": ..., "yes": ...}`` is translated, and a label
        that ``y`` does not hold is refused by name."""
        if not isinstance(self.class_weight, Mapping):
            return self.class_weight  # "balanced" counts the targets themselves
        labels = np.asarray(self.classes_).tolist()
        unknown = [k for k in self.class_weight if k not in labels]
        if unknown:
            raise ValueError(
                f"class_weight names labels that y does not hold: {unknown}; the labels "
                f"are {labels}."
            )
        return {labels.index(k): float(w) for k, w in self.class_weight.items()}

    # ------------------------------------------------------------- predict
    def decision_function(self, X) -> np.ndarray:
        """Logit of the positive class (``classes_[1]``) for each row.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Encoded features.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        stream = as_stream(X)
        if stream is not None:
            from ._streaming import stream_outputs

            return stream_outputs(self, stream, self._chunk_logits, np.empty(0))
        logits = np.concatenate(self._run_chunks(X, self._chunk_logits))
        return logits

    def _chunk_logits(self, ids, floats) -> np.ndarray:
        """Logits (float64) of one chunk's id and numeric matrices."""
        args = [a for a in (ids, floats) if a is not None]
        logits = np.asarray(self._predict_fn(*args)).reshape(-1).astype(np.float64)
        if not np.isfinite(logits).all():
            raise FloatingPointError(
                f"{type(self).__name__} produced non-finite scores; the model has diverged."
            )
        return logits

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of ``classes_[0]`` and ``classes_[1]``.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Encoded features.

        Returns
        -------
        ndarray of shape (n_samples, 2)
        """
        logits = self.decision_function(X)
        if not isinstance(logits, np.ndarray):  # a stream: one array per chunk
            return (_probabilities(z) for z in logits)
        return _probabilities(logits)

    def predict(self, X) -> np.ndarray:
        """Predicted label of each row (``classes_[1]`` when its probability > 0.5).

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Encoded features.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        logits = self.decision_function(X)  # checks that the model is fitted
        if not isinstance(logits, np.ndarray):  # a stream: one array per chunk
            return (self.classes_[(z > 0).astype(int)] for z in logits)
        return self.classes_[(logits > 0).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


def _probabilities(logits: np.ndarray) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(-logits))
    return np.column_stack([1.0 - p, p])
