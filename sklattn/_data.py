"""X to model arrays: the one module that reads an encoded frame.

A model reads two arrays: the int32 id matrix (columns :attr:`Schema.int_columns`)
and the float32 numeric matrix (:attr:`Schema.numeric`). This module resolves which
column plays which role (:func:`resolve_schema`), checks the input and converts it
(:func:`to_arrays`), and is the only reader of what a
:class:`~sklattn.SequenceEncoder` attaches to its output's ``attrs``
(:func:`absent_columns`, :func:`vocabulary_labels`). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import weakref
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted, validate_data

from ._schema import FIRST_ID, OOV_ID, SCHEMA_ATTR, Schema
from .preprocessing import find_sequence_columns
from .preprocessing._encoder import POLARS_SCHEMA_ATTRIBUTE, to_pandas

__all__ = [
    "absent_columns", "as_frame", "check_vocabularies", "list_columns", "require_frame",
    "resolve_schema", "take_columns", "to_arrays", "vocabulary_fingerprint",
    "vocabulary_labels",
]


def take_columns(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, dict]:
    """``frame`` without ``columns`` (its encoder schema kept) and their values."""
    # pandas deep-copies attrs into every frame and column derived from one: 26 ms per
    # copy with a 200,000-item vocabulary in the encoder's attrs. Taken off meanwhile.
    attrs = frame.attrs
    frame.attrs = {}
    try:
        values = {c: frame[c].to_numpy() for c in columns}
        rest = frame.drop(columns=columns)
    finally:
        frame.attrs = attrs
    rest.attrs = attrs
    return rest, values


# ------------------------------------------------------------------ the encoder's attrs
def _encoded(X) -> dict | None:
    if isinstance(X, pd.DataFrame):
        return X.attrs.get(SCHEMA_ATTR)
    return getattr(X, POLARS_SCHEMA_ATTRIBUTE, None)  # a polars frame from the encoder


def as_frame(X):
    """pandas as it is; a polars DataFrame or a pyarrow Table as pandas (the encoder's
    schema carried over); anything else (arrays, lists) unchanged."""
    if isinstance(X, pd.DataFrame) or type(X).__module__.split(".")[0] not in (
        "polars", "pyarrow"
    ):
        return X
    return to_pandas(X)


def _strip_prefix(X: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """X with ``{prefix}__{column}`` renamed ``{column}`` when every one of ``columns`` is
    there under one prefix; X unchanged otherwise (the column check then names what is
    missing)."""
    names = [str(c) for c in X.columns]
    prefixes = {n[: -len(c)] for c in columns for n in names if n.endswith("__" + c)}
    for prefix in sorted(prefixes):
        if all(prefix + c in names for c in columns):
            renamed = X.rename(columns={prefix + c: c for c in columns})
            renamed.attrs = X.attrs
            return renamed
    return X


def require_frame(estimator, X) -> pd.DataFrame:
    """X as a pandas DataFrame (polars and pyarrow converted), or a TypeError for a model
    that reads only encoded DataFrames."""
    X = as_frame(X)
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{type(estimator).__name__} needs a pandas DataFrame of encoded columns (a "
            f"SequenceEncoder's output, or integer ids named in 'sequences'); got "
            f"{type(X).__name__}."
        )
    return X


def _restore_prefixed_columns(X: pd.DataFrame, encoded: dict) -> pd.DataFrame:
    """The encoder's columns as it named them. A ColumnTransformer prefixes them
    (``"enc__hist_item_1"``) and pandas keeps the attrs of a lone frame: when every
    encoded column is there under one prefix, the prefix is removed."""
    schema = Schema.from_dict(encoded)
    if all(c in X.columns for c in schema.columns):
        return X
    X = _strip_prefix(X, schema.columns)
    if all(c in X.columns for c in schema.columns):
        return X
    missing = [c for c in schema.columns if c not in X.columns]
    raise ValueError(
        f"X carries a SequenceEncoder schema but lacks its columns {missing[:5]}: a step "
        "between the encoder and the model renamed or dropped them. Put the model directly "
        "after the encoder."
    )


def absent_columns(X) -> tuple[str, ...]:
    """Columns the encoder filled with padding because X lacked them (e.g. a candidate
    column at serving time)."""
    encoded = _encoded(X)
    return tuple(encoded.get("absent", ())) if encoded else ()


def vocabulary_labels(X) -> Mapping[str, np.ndarray] | None:
    """The encoder's original values of each vocabulary (id ``k + FIRST_ID`` is value
    ``k``), or None when X did not come from a SequenceEncoder."""
    encoded = _encoded(X)
    return encoded.get("labels") if encoded else None


#: Fingerprints of the vocabularies an encoder's output carried, by labels object: an
#: encoder hands the same object to every transform, so a model checks each object once.
_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def vocabulary_fingerprint(labels: Mapping[str, np.ndarray]) -> dict[str, str]:
    """A digest of each vocabulary's values, in id order: equal digests, equal ids."""
    try:
        return _FINGERPRINTS[labels]
    except (KeyError, TypeError):
        pass
    out = {
        vocab: hashlib.sha1(
            pickle.dumps(np.asarray(labels[vocab], dtype=object).tolist(), protocol=4)
        ).hexdigest()
        for vocab in labels
    }
    try:
        _FINGERPRINTS[labels] = out
    except TypeError:  # a plain dict of labels: not weakly referable
        pass
    return out


def check_vocabularies(estimator, X) -> None:
    """Raise when X was encoded with other vocabularies than the rows ``fit`` saw (an
    encoder fitted again on other data gives the same ids to other values)."""
    seen = getattr(estimator, "_vocabulary_fingerprint", None)
    labels = vocabulary_labels(X)
    if not seen or labels is None:
        return  # hand-encoded input, or a model fitted before the check existed
    now = vocabulary_fingerprint(labels)
    changed = [v for v, digest in seen.items() if v in now and now[v] != digest]
    if changed:
        raise ValueError(
            f"X was encoded with other vocabularies {changed[:5]}"
            f"{'...' if len(changed) > 5 else ''} than the rows "
            f"{type(estimator).__name__} was fitted on: the same id now means another "
            "value. Transform X with the SequenceEncoder the model was fitted after (in "
            "a Pipeline, or frozen with sklearn.frozen.FrozenEstimator)."
        )


# ------------------------------------------------------------------ roles
def resolve_schema(estimator, X) -> Schema:
    """Column roles of a fresh fit, in order of precedence: the estimator's
    ``sequences`` / ``categorical`` parameters (already-encoded integer input), the
    schema a SequenceEncoder attached to X, or every column numeric."""
    X = require_frame(estimator, X) if estimator._requires_dataframe else as_frame(X)
    absent = absent_columns(X)
    if estimator.sequences is not None or estimator.categorical is not None:
        schema = _schema_from_parameters(estimator, X)
    elif (encoded := _encoded(X)) is not None:
        schema = Schema.from_dict(encoded)
        X = _restore_prefixed_columns(X, encoded)
        extra = [c for c in X.columns if c not in set(schema.columns)]
        if extra:
            raise ValueError(
                f"Columns {extra[:5]} of X are not in the SequenceEncoder's output the model "
                "reads; encode them with the encoder (e.g. 'numeric' or 'categorical'), or "
                "drop them."
            )
    else:
        schema = _numeric_schema(estimator, X)
    estimator._check_roles(schema, absent, training=True)
    return schema


#: A numbered column as the encoder writes it: ``{name}_{position}``.
_NUMBERED = re.compile(r"^(.*[A-Za-z].*?)_(\d+)$")


def _numeric_schema(estimator, X) -> Schema:
    if isinstance(X, pd.DataFrame):
        bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise ValueError(
                f"Columns {bad} are not numeric. Encode raw data with "
                "sklattn.SequenceEncoder first, or name id columns in 'sequences' / "
                "'categorical'."
            )
        _refuse_encoded_looking(estimator, X)
        names = [str(c) for c in X.columns]
    else:
        n_features = validate_data(estimator, X, reset=True, dtype=np.float32).shape[1]
        names = [f"x{i}" for i in range(n_features)]
    return Schema(numeric=names)


def _refuse_encoded_looking(estimator, X: pd.DataFrame) -> None:
    """Raise when X looks like a SequenceEncoder's output that lost its schema (numbered
    integer columns: a behaviour sequence of ids), instead of training on raw ids as
    numbers. ``categorical=[]`` says the columns really are numeric."""
    groups: dict[str, dict[int, str]] = {}
    for c in X.columns:
        m = _NUMBERED.match(str(c))
        if m:
            groups.setdefault(m.group(1), {})[int(m.group(2))] = str(c)
    # The encoder's layout, so that ordinary numeric frames (one-hot columns hour_0..23,
    # counts f1, f2, pixel_0_0..) pass: positions exactly 1..N (N >= 2), integer ids >= 0
    # with at least one real id (>= 2), every row left-padded (zeros only before ids).
    sequences = {}
    for name, numbered in groups.items():
        if len(numbered) < 2 or sorted(numbered) != list(range(1, len(numbered) + 1)):
            continue
        cols = [numbered[i] for i in range(1, len(numbered) + 1)]
        if all(_id_like(X[c]) for c in cols) and _left_padded_ids(X[cols]):
            sequences[name] = cols
    if sequences:
        name, cols = next(iter(sequences.items()))
        raise ValueError(
            f"X looks like an encoded behaviour log without its schema: columns {cols[:3]}... "
            f"are integer ids of a sequence {name!r}, which {type(estimator).__name__} would "
            "otherwise read as numbers. The SequenceEncoder's schema was lost on the way "
            "(e.g. a ColumnTransformer, or a frame rebuilt by hand): put the model directly "
            "after the encoder, or name the roles, e.g. "
            f"{type(estimator).__name__}(sequences={{{name!r}: <candidate column>}}, "
            "categorical=[<other id columns>]). If these columns are numeric features, pass "
            "categorical=[]."
        )


def _id_like(column: pd.Series) -> bool:
    """Integer values >= 0, of an integer or a float dtype (a frame rebuilt from
    ``to_numpy()`` turns the encoder's ids into floats)."""
    if not (pd.api.types.is_integer_dtype(column.dtype)
            or pd.api.types.is_float_dtype(column.dtype)):
        return False
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return bool(len(values)) and bool(
        np.all(np.isfinite(values) & (values >= 0) & (values == np.floor(values)))
    )


def _left_padded_ids(frame: pd.DataFrame) -> bool:
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    seen = np.maximum.accumulate(values != 0, axis=1)  # an id has appeared in the row
    return bool((values >= 2).any()) and not bool((seen & (values == 0)).any())


def _schema_from_parameters(estimator, X) -> Schema:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            "'sequences' / 'categorical' name DataFrame columns; X must be a pandas DataFrame."
        )
    columns = [str(c) for c in X.columns]
    sequences: dict[str, tuple[list[str], str]] = {}
    for name, vocab in (estimator.sequences or {}).items():
        cols = find_sequence_columns(columns, name)
        if not cols or cols == [name]:
            raise ValueError(
                f"No numbered columns found for sequence {name!r} (e.g. {name}_1, {name}_2)."
            )
        sequences[name] = (cols, vocab)
    categorical = {c: c for c in estimator.categorical or ()}
    for _, vocab in sequences.values():
        if vocab in columns:
            categorical.setdefault(vocab, vocab)
    missing = [c for c in categorical if c not in columns]
    if missing:
        raise ValueError(f"Columns {missing} named in 'categorical' are not in X.")
    used = {c for cols, _ in sequences.values() for c in cols} | set(categorical)
    numeric = [c for c in columns if c not in used]
    # A vocabulary holds at least padding and the unseen id; larger ids at predict time
    # are unseen values.
    sizes: dict[str, int] = {}
    for cols, vocab in sequences.values():
        sizes[vocab] = max(sizes.get(vocab, FIRST_ID), _max_id(X, cols) + 1)
    for col, vocab in categorical.items():
        sizes[vocab] = max(sizes.get(vocab, FIRST_ID), _max_id(X, [col]) + 1)
    return Schema(sequences, categorical, numeric, sizes)


def _max_id(X: pd.DataFrame, cols: list[str]) -> int:
    values = _integer_ids(X, cols)
    return int(values.max()) if values.size else 0


def list_columns(estimator, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """The request codes and the initial ranks (None without a rank column) of X's rows,
    for a list-wise model (``Schema.group`` / ``Schema.rank``); a ColumnTransformer's
    ``enc__`` prefixes are undone as in :func:`to_arrays`."""
    schema = estimator.schema_
    if any(c not in X.columns for c in schema.list_columns):
        X = _strip_prefix(X, schema.columns)
    missing = [c for c in schema.list_columns if c not in X.columns]
    if missing:
        raise ValueError(f"X lacks the list columns {missing} (request id, initial rank).")
    groups = X[schema.group].to_numpy()
    ranks = X[schema.rank].to_numpy(dtype=np.float64) if schema.rank is not None else None
    return groups, ranks


# ------------------------------------------------------------------ conversion
def to_arrays(estimator, X, *, reset: bool = False, training: bool = False):
    """Split X into the int32 id matrix and the float32 numeric matrix.

    ``reset`` (a fresh fit) records the input columns and their positions on the
    estimator (``feature_names_in_``, ``n_features_in_``); otherwise X is checked
    against them. ``training`` says whether the rows are for training, which some
    models need more columns for (``_check_roles``). Either array is None when the
    schema has no such columns.
    """
    schema = estimator.schema_
    X = as_frame(X)
    if isinstance(X, pd.DataFrame) and any(c not in X.columns for c in schema.columns):
        X = _strip_prefix(X, schema.columns)  # a ColumnTransformer's "enc__" names
    fitted_on_array = not reset and not hasattr(estimator, "feature_names_in_")
    if not schema.int_columns and (not isinstance(X, pd.DataFrame) or fitted_on_array):
        # Numeric features only; a DataFrame after a fit on an array gets scikit-learn's
        # feature-name warning and is used by position.
        floats = validate_data(estimator, X, reset=reset, dtype=np.float32)
        return None, floats
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{type(estimator).__name__} was fitted on a DataFrame with id columns; pass a "
            f"pandas DataFrame with columns {schema.columns[:5]}..."
        )
    if reset:
        estimator.feature_names_in_ = np.asarray(X.columns, dtype=object)
        estimator.n_features_in_ = X.shape[1]
        estimator._vocab_limits = np.array(
            [schema.vocabulary_sizes[v] for v in schema.column_vocabularies], dtype=np.float64
        )
        position = {str(c): i for i, c in enumerate(X.columns)}
        estimator._int_positions = np.array([position[c] for c in schema.int_columns], int)
        estimator._num_positions = np.array([position[c] for c in schema.numeric], int)
        labels = vocabulary_labels(X)
        estimator._vocabulary_fingerprint = (
            vocabulary_fingerprint(labels) if labels is not None else None
        )
    else:
        # A stream's later chunks are converted before the model is built.
        check_is_fitted(estimator, "feature_names_in_")
        check_vocabularies(estimator, X)
        expected = list(estimator.feature_names_in_)
        if list(X.columns) != expected:
            missing = [c for c in expected if c not in X.columns]
            extra = [c for c in X.columns if c not in set(expected)]
            if missing or extra:
                raise ValueError(
                    f"X does not have the columns seen in fit. Missing: {missing}; "
                    f"unexpected: {extra}."
                )
            X = X[expected]
        absent = absent_columns(X)
        if absent:
            estimator._check_roles(schema, absent, training=training)
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
        if values is None or not np.isfinite(v := values[:, estimator._int_positions]).all() or (
            (v < 0).any() or (v != np.floor(v)).any()
        ):
            # Slow path: raises an error that names the offending columns.
            v = _integer_ids(X, schema.int_columns).astype(np.float64)
        # Ids beyond a vocabulary (possible with hand-encoded input) are unseen values.
        ids = np.where(v >= estimator._vocab_limits, OOV_ID, v).astype(np.int32)
    if schema.numeric:
        if values is None or not np.isfinite(f := values[:, estimator._num_positions]).all():
            frame = X.iloc[:, estimator._num_positions].set_axis(schema.numeric, axis=1)
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
    if not np.isfinite(values).all():
        cols_nan = [cols[j] for j in np.flatnonzero(~np.isfinite(values).all(axis=0))]
        raise ValueError(f"Id columns {cols_nan} contain NaN or infinity; use 0 for padding.")
    if (values < 0).any() or (values != np.round(values)).any():
        cols_bad = [cols[j] for j in np.flatnonzero(
            ((values < 0) | (values != np.round(values))).any(axis=0))]
        raise ValueError(f"Id columns {cols_bad} must hold non-negative integers.")
    return values.astype(np.int64)
