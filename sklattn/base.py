"""The shared estimator base: one Keras life cycle for every sklattn model."""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, compute_sample_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._backend import TF_BACKEND, keras, tf
from ._schema import SCHEMA_ATTR, Schema
from .layers import Embedding
from .preprocessing import OOV_ID, find_sequence_columns

try:  # TensorFlow's eager context: see _reseed_tensorflow
    from tensorflow.python.eager import context as tf_context
except ImportError:  # pragma: no cover - no TensorFlow
    tf_context = None

__all__ = ["BaseKerasEstimator", "BaseSequenceClassifier"]


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
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


class BaseKerasEstimator(BaseEstimator):
    """Base class of every sklattn model: one Keras life cycle.

    Subclasses supply the graph (:meth:`_build_graph`), the training loss
    (:meth:`_loss`) and list their hyper-parameters in ``__init__``; the base owns
    everything else: column roles, input checks, Keras build/compile/fit, early
    stopping, warm starts, seeding, compiled inference and pickling. See
    ``docs/estimators.md``.

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
    }

    #: Rows converted and scored per step of ``predict_proba``.
    prediction_chunk_size = 65536

    # ------------------------------------------------------------ subclass API
    @abstractmethod
    def _build_graph(self, schema: Schema) -> tuple[keras.Model, dict[str, keras.Model]]:
        """Return the training model (one logit per row) and auxiliary models
        that share its layers (e.g. ``{"attention": ...}``)."""

    @abstractmethod
    def _loss(self) -> keras.losses.Loss:
        """The loss ``model_`` is compiled with."""

    def _serving_model(self) -> keras.Model:
        """The model whose inference function is traced once after fitting."""
        return self.model_

    def _check_roles(self, schema: Schema, absent: Sequence[str]) -> None:
        """Raise if the schema lacks what the model needs (hook for subclasses)."""

    def _set_data_statistics(self, ids: np.ndarray | None) -> None:
        """Give the freshly built graph what it needs from the training ids (hook).

        The base sets the id frequencies of embedding tables with a mini-batch
        aware penalty; subclasses extend it (e.g. negative-sampling tables). The
        values must live in the model's weights so that pickling keeps them.
        """
        self._set_frequencies(ids)

    def _use_xla(self, n_train: int) -> bool:
        """What ``jit_compile="auto"`` means for this model and training size."""
        # XLA speeds CPU training up by about 1.7x but compiling the step takes
        # seconds: worth it only for long fits.
        return TF_BACKEND and n_train >= 300_000

    # ------------------------------------------------------------------- fit
    def _prepare(self, X, *, reset: bool):
        """Resolve column roles (on a fresh fit) and convert X to id / float arrays."""
        if reset:
            self._n_fit_calls = 0
            self.schema_ = self._resolve_schema(X)
        return self._to_arrays(X, reset=reset)

    def _train(self, ids, floats, targets, weights, *, epochs, reset, validate, stratify):
        """Build (when ``reset``) and train ``model_`` on prepared arrays."""
        seed = self._seed()
        with _seeded(None if seed is None else seed + self._n_fit_calls, build=reset):
            if reset:
                self._build_models(n_train=len(targets) * self.epochs)
                self._set_data_statistics(ids)
            self._n_fit_calls += 1
            history = self._keras_fit(ids, floats, targets, weights, epochs, validate, stratify)
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
        if reset or not hasattr(self, "_predict_fn"):
            # The traced function reads the model's variables when called: a warm
            # start or partial_fit needs no new trace.
            self._make_predict_fn()
        return self

    def _keras_fit(self, ids, floats, y, weights, epochs, validate, stratify):
        arrays = [a for a in (ids, floats) if a is not None]
        callbacks = [keras.callbacks.TerminateOnNaN()]
        validation_data = None
        if validate and self.validation_fraction is not None:
            parts = train_test_split(
                *arrays, y, *([weights] if weights is not None else []),
                test_size=self.validation_fraction,
                stratify=y if stratify else None,
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
        return self.model_.fit(
            arrays if len(arrays) > 1 else arrays[0],
            y.astype(np.float32),
            sample_weight=weights,
            batch_size=self.batch_size,
            epochs=epochs,
            verbose=int(self.verbose),
            shuffle=True,
            validation_data=validation_data,
            callbacks=callbacks,
        )

    def _build_models(self, n_train: int = 0) -> None:
        model, extras = self._build_graph(self.schema_)
        jit = self.jit_compile
        if jit == "auto":
            jit = self._use_xla(n_train)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
            loss=self._loss(),
            jit_compile=bool(jit),
            # Several batches per call of the compiled step: ~10% faster on CPU.
            steps_per_execution=16,
        )
        # Create Adam's slots now: created inside the first trace of the train step,
        # they make TensorFlow trace it a second time (about 1.3 s of every fresh fit).
        model.optimizer.build(model.trainable_variables)
        self.model_ = model
        self._extra_models = extras

    def _set_frequencies(self, ids) -> None:
        """Give embedding tables with a mini-batch aware penalty their id counts."""
        if ids is None:
            return
        column_vocabs = np.array(_column_vocabularies(self.schema_), dtype=object)
        for layer in self.model_.layers:
            if isinstance(layer, Embedding) and layer.l2 and layer.name.startswith("emb_"):
                vocab = layer.name[len("emb_"):]
                counts = np.bincount(
                    ids[:, column_vocabs == vocab].ravel(), minlength=layer.input_dim
                )
                layer.set_frequencies(counts.astype(np.float32))

    def _seed(self) -> int | None:
        if self.random_state is None:
            return None
        if isinstance(self.random_state, Integral):
            return int(self.random_state)
        if not hasattr(self, "_drawn_seed"):
            self._drawn_seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        return self._drawn_seed

    # ------------------------------------------------------------- features
    def _resolve_schema(self, X) -> Schema:
        if self.sequences is not None or self.categorical is not None:
            return self._schema_from_parameters(X)
        if isinstance(X, pd.DataFrame) and SCHEMA_ATTR in X.attrs:
            schema = Schema.from_dict(X.attrs[SCHEMA_ATTR])
            self._check_roles(schema, X.attrs[SCHEMA_ATTR].get("absent", ()))
            return schema
        if isinstance(X, pd.DataFrame):
            bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
            if bad:
                raise ValueError(
                    f"Columns {bad} are not numeric. Encode raw data with "
                    "sklattn.SequenceEncoder first, or name id columns in 'sequences' / "
                    "'categorical'."
                )
            names = [str(c) for c in X.columns]
        else:
            n_features = validate_data(self, X, reset=True, dtype=np.float32).shape[1]
            names = [f"x{i}" for i in range(n_features)]
        schema = Schema(numeric=names)
        self._check_roles(schema, ())
        return schema

    def _schema_from_parameters(self, X) -> Schema:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                "'sequences' / 'categorical' name DataFrame columns; X must be a pandas DataFrame."
            )
        columns = [str(c) for c in X.columns]
        sequences: dict[str, tuple[list[str], str]] = {}
        for name, vocab in (self.sequences or {}).items():
            cols = find_sequence_columns(columns, name)
            if not cols or cols == [name]:
                raise ValueError(
                    f"No numbered columns found for sequence {name!r} (e.g. {name}_1, {name}_2)."
                )
            sequences[name] = (cols, vocab)
        categorical = {c: c for c in self.categorical or ()}
        for _, vocab in sequences.values():
            if vocab in columns:
                categorical.setdefault(vocab, vocab)
        missing = [c for c in categorical if c not in columns]
        if missing:
            raise ValueError(f"Columns {missing} named in 'categorical' are not in X.")
        used = {c for cols, _ in sequences.values() for c in cols} | set(categorical)
        numeric = [c for c in columns if c not in used]
        sizes: dict[str, int] = {}
        for cols, vocab in sequences.values():
            sizes[vocab] = max(sizes.get(vocab, 2), self._max_id(X, cols) + 1)
        for col, vocab in categorical.items():
            sizes[vocab] = max(sizes.get(vocab, 2), self._max_id(X, [col]) + 1)
        schema = Schema(sequences, categorical, numeric, sizes)
        self._check_roles(schema, ())
        return schema

    @staticmethod
    def _max_id(X: pd.DataFrame, cols: list[str]) -> int:
        values = _integer_ids(X, cols)
        return int(values.max()) if values.size else 0

    def _to_arrays(self, X, *, reset: bool = False):
        """Split X into the int32 id matrix and the float32 numeric matrix."""
        schema = self.schema_
        fitted_on_array = not reset and not hasattr(self, "feature_names_in_")
        if not schema.int_columns and (not isinstance(X, pd.DataFrame) or fitted_on_array):
            # Numeric features only; a DataFrame after a fit on an array gets scikit-learn's
            # feature-name warning and is used by position.
            floats = validate_data(self, X, reset=reset, dtype=np.float32)
            return None, floats
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"{type(self).__name__} was fitted on a DataFrame with id columns; pass a "
                f"pandas DataFrame with columns {schema.columns[:5]}..."
            )
        if reset:
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            self.n_features_in_ = X.shape[1]
            self._vocab_limits = np.array(
                [schema.vocabulary_sizes[v] for v in _column_vocabularies(schema)], dtype=np.float64
            )
            position = {str(c): i for i, c in enumerate(X.columns)}
            self._int_positions = np.array([position[c] for c in schema.int_columns], dtype=int)
            self._num_positions = np.array([position[c] for c in schema.numeric], dtype=int)
        else:
            check_is_fitted(self, "model_")
            expected = list(self.feature_names_in_)
            if list(X.columns) != expected:
                missing = [c for c in expected if c not in X.columns]
                extra = [c for c in X.columns if c not in set(expected)]
                if missing or extra:
                    raise ValueError(
                        f"X does not have the columns seen in fit. Missing: {missing}; "
                        f"unexpected: {extra}."
                    )
                X = X[expected]
            absent = X.attrs.get(SCHEMA_ATTR, {}).get("absent", ())
            if absent:
                self._check_roles(schema, absent)
        if len(X) == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
            )
        try:
            values = X.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            values = None
        ids = floats = None
        if schema.int_columns:
            if values is None or not np.isfinite(v := values[:, self._int_positions]).all() or (
                (v < 0).any() or (v != np.floor(v)).any()
            ):
                # Slow path: raises an error that names the offending columns.
                v = _integer_ids(X, schema.int_columns).astype(np.float64)
            # Ids beyond a vocabulary (possible with hand-encoded input) are unseen values.
            ids = np.where(v >= self._vocab_limits, OOV_ID, v).astype(np.int32)
        if schema.numeric:
            if values is None or not np.isfinite(f := values[:, self._num_positions]).all():
                frame = X.iloc[:, self._num_positions].set_axis(schema.numeric, axis=1)
                bad = [c for c in schema.numeric if not _is_number_dtype(frame[c].dtype)]
                if bad:
                    raise ValueError(f"Numeric columns {bad} hold non-numeric values.")
                f = frame.to_numpy(dtype=np.float64, na_value=np.nan)
                cols = [schema.numeric[j] for j in np.flatnonzero(~np.isfinite(f).all(axis=0))]
                raise ValueError(
                    f"Input contains NaN or infinity in numeric columns {cols}; impute them "
                    "(SequenceEncoder's numeric_nan does this)."
                )
            floats = f.astype(np.float32)
        return ids, floats

    # ------------------------------------------------------------- predict
    def _make_predict_fn(self) -> None:
        """Trace the inference graph once; calls then skip Keras' predict loop."""
        model = self._serving_model()
        n_inputs = int(bool(self.schema_.int_columns)) + int(bool(self.schema_.numeric))
        if not TF_BACKEND:  # pragma: no cover - other Keras backends
            def run(*arrays):
                return model(list(arrays) if n_inputs > 1 else arrays[0], training=False)

            self._predict_fn = run
            return
        specs = []
        if self.schema_.int_columns:
            specs.append(tf.TensorSpec((None, len(self.schema_.int_columns)), tf.int32))
        if self.schema_.numeric:
            specs.append(tf.TensorSpec((None, len(self.schema_.numeric)), tf.float32))
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
            ids, floats = self._to_arrays(part)
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
            raise ValueError("This model has no attended sequence (no candidate column).")

        def run(ids, floats):
            out = model([a for a in (ids, floats) if a is not None], training=False)
            if isinstance(out, dict):
                return {k: np.asarray(v) for k, v in out.items()}
            return np.asarray(out)

        chunks = self._run_chunks(X, run)
        if isinstance(chunks[0], dict):
            return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        return np.concatenate(chunks)

    def _position_weights(self, X, name: str) -> pd.DataFrame:
        """Tidy frame of the per-position weights output by ``_extra_models[name]``.

        The extra model returns ``{sequence name: (batch, steps) weights}``.
        """
        check_is_fitted(self, "model_")
        if name not in self._extra_models:
            raise ValueError("This model has no attended sequence (no candidate column).")
        if not isinstance(X, pd.DataFrame):
            raise TypeError("X must be a pandas DataFrame of encoded rows.")
        outputs = self._extra_outputs(X, name)
        index = np.asarray(X.index)
        frames = []
        for seq, w in outputs.items():
            items = X[self.schema_.sequences[seq][0]].to_numpy(dtype=np.int64)
            r, t = np.nonzero(items != 0)
            frames.append(
                pd.DataFrame(
                    {
                        "row": index[r],
                        "sequence": seq,
                        "position": t + 1,
                        "item": items[r, t],
                        "weight": w[r, t].astype(np.float64),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    # ---------------------------------------------------------- persistence
    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        model = state.pop("model_", None)
        state.pop("_extra_models", None)
        state.pop("_predict_fn", None)
        if model is not None:
            state["_model_weights"] = [np.array(w) for w in model.get_weights()]
        return state

    def __setstate__(self, state):
        weights = state.pop("_model_weights", None)
        super().__setstate__(state)
        if weights is not None:
            self._build_models()
            self.model_.set_weights(weights)
            self._make_predict_fn()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.non_deterministic = self.random_state is None
        return tags


class BaseSequenceClassifier(ClassifierMixin, BaseKerasEstimator):
    """Base class of sklattn's binary click-through classifiers.

    Adds to :class:`BaseKerasEstimator` what a classifier needs: label encoding
    (``classes_``), class weights, a stratified validation split, the binary
    cross-entropy on one logit per row and ``decision_function`` /
    ``predict_proba`` / ``predict``.
    """

    _parameter_constraints: dict = {
        **BaseKerasEstimator._parameter_constraints,
        "hidden_units": ["array-like"],
        "activation": [StrOptions({"dice", "prelu", "relu", "sigmoid", "tanh", "gelu"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def _loss(self) -> keras.losses.Loss:
        return keras.losses.BinaryCrossentropy(from_logits=True)

    def fit(self, X, y, sample_weight=None) -> BaseSequenceClassifier:
        """Fit the model.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_samples, n_features)
            Encoded features (usually the output of a SequenceEncoder).
        y : array-like of shape (n_samples,)
            Binary labels (any two values; see ``classes_``).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights of the loss.

        Returns
        -------
        self
            The fitted estimator.
        """
        self._validate_params()
        reset = not (self.warm_start and hasattr(self, "model_"))
        return self._fit(X, y, sample_weight, epochs=self.epochs, reset=reset, classes=None)

    def partial_fit(self, X, y, classes=None, sample_weight=None) -> BaseSequenceClassifier:
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
        if not hasattr(self, "model_"):
            self._validate_params()
        return self._fit(
            X, y, sample_weight, epochs=1, reset=not hasattr(self, "model_"), classes=classes,
            validate=False,
        )

    def _fit(self, X, y, sample_weight, *, epochs, reset, classes, validate=True):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        ids, floats = self._prepare(X, reset=reset)
        y_enc = self._encode_y(y, reset=reset, classes=classes)
        if len(y_enc) != len(ids if ids is not None else floats):
            raise ValueError(
                f"X and y have inconsistent numbers of samples: "
                f"{len(ids if ids is not None else floats)} != {len(y_enc)}."
            )
        weights = None
        if sample_weight is not None or self.class_weight is not None:
            weights = _check_sample_weight(sample_weight, y_enc, dtype=np.float64)
            if self.class_weight is not None:
                weights = weights * compute_sample_weight(self.class_weight, y_enc)
            weights = weights.astype(np.float32)
        return self._train(
            ids, floats, y_enc, weights, epochs=epochs, reset=reset, validate=validate,
            stratify=True,
        )

    # ------------------------------------------------------------- targets
    def _encode_y(self, y, *, reset: bool, classes) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            labels = np.unique(classes if classes is not None else y)
            if len(labels) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of 2 classes; got 1 class "
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
        def score(ids, floats):
            args = [a for a in (ids, floats) if a is not None]
            return np.asarray(self._predict_fn(*args)).reshape(-1)

        logits = np.concatenate(self._run_chunks(X, score)).astype(np.float64)
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
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

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
        positive = self.decision_function(X) > 0  # checks that the model is fitted
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


def _column_vocabularies(schema: Schema) -> list[str]:
    vocabs = [vocab for cols, vocab in schema.sequences.values() for _ in cols]
    return vocabs + list(schema.categorical.values())


def _is_number_dtype(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _integer_ids(X: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Id columns as int64, with clear errors for NaN, fractions, negatives and text."""
    frame = X[cols]
    bad = [c for c in cols if not _is_number_dtype(frame[c].dtype)]
    if bad:
        raise ValueError(
            f"Id columns {bad} are not integer-encoded; encode them with SequenceEncoder."
        )
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(values).any():
        cols_nan = [cols[j] for j in np.flatnonzero(np.isnan(values).any(axis=0))]
        raise ValueError(f"Id columns {cols_nan} contain NaN; use 0 for padding.")
    if (values < 0).any() or (values != np.round(values)).any():
        cols_bad = [cols[j] for j in np.flatnonzero(
            ((values < 0) | (values != np.round(values))).any(axis=0))]
        raise ValueError(f"Id columns {cols_bad} must hold non-negative integers.")
    return values.astype(np.int64)

