"""Vocabularies and id look-ups on Arrow string columns, without Python objects.

pandas' string columns (the default ``str`` dtype of pandas 3, ``string[pyarrow]`` and
``ArrowDtype`` strings, which Parquet files, polars and pyarrow Tables give) already hold
their values in Arrow buffers. Counting and looking them up there runs in Arrow's C++
hash tables; the object-array path that every other column takes converts each value to a
Python string first (about 10x slower on histories of string ids, see the README's
"SequenceEncoder throughput"). Both paths give the same vocabularies and ids: values
counted in order of first appearance reading the rows one after the other (a sequence's
positions left to right, then the next row), missing values (null, NaN or ``""``)
dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _arrow_string_type(dtype) -> bool:
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "pyarrow"
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        kind = dtype.pyarrow_dtype
        return pa.types.is_string(kind) or pa.types.is_large_string(kind)
    return False


#: Whether string columns take the Arrow path (the object path is kept for every other
#: column; benchmarks switch this off to time it on the same data).
ENABLED = True


def string_columns(frame: pd.DataFrame | pd.Series) -> list | None:
    """Each column of ``frame`` as a ``large_string`` Arrow array, or None unless every
    column is a string column: Arrow-backed, or of object dtype holding only strings and
    missing values (converted once, about 40 ns a value). None too without pyarrow."""
    if not ENABLED:
        return None
    columns = [frame] if isinstance(frame, pd.Series) else [frame[c] for c in frame.columns]
    if not columns:
        return None
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is optional
        return None
    out = []
    for column in columns:
        if _arrow_string_type(column.dtype):
            array = pa.array(column.array)
        elif column.dtype == object:
            values = column.to_numpy()
            # Strings and missing values only (NaN, None, pd.NA become nulls); bytes would
            # turn into str, so they stay on the object path with every other type.
            if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
                return None
            try:
                array = pa.array(values, type=pa.large_string(), from_pandas=True)
            except (pa.ArrowException, UnicodeEncodeError):  # e.g. a lone surrogate
                return None
        else:
            return None
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        out.append(array.cast(pa.large_string()) if array.type != pa.large_string() else array)
    return out


def count_strings(columns: list, *, keep_codes: bool = False) -> tuple:
    """The distinct non-missing values of ``columns`` (equally long arrays, read row by
    row) in order of first appearance, and their counts.

    Returns ``(values as an object array of str, counts, codes)``: with ``keep_codes``,
    ``codes`` is ``(rows, len(columns))``, each cell's index in ``values`` (-1 where
    missing), else None.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n_rows, n_cols = len(columns[0]), len(columns)
    nothing = np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    if not n_rows:
        return (*nothing, np.full((0, n_cols), -1, dtype=np.int64) if keep_codes else None)
    encoded = pa.chunked_array(columns, type=pa.large_string()).dictionary_encode()
    # Arrow gives every chunk the final dictionary; unify (0.13 s on 10M values) only if not.
    if len({len(c.dictionary) for c in encoded.chunks}) > 1:
        encoded = pa.table({"v": encoded}).unify_dictionaries().column("v")
    dictionary = encoded.chunk(0).dictionary
    codes = np.concatenate(
        [c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in encoded.chunks]
    ).astype(np.int64, copy=False)
    empty = pc.index(dictionary, "").as_py()
    if empty >= 0:  # "" is missing, as in the object path
        codes[codes == empty] = -1
    codes = codes.reshape(n_cols, n_rows).T  # row by row
    flat = codes.ravel()
    flat = flat[flat >= 0]
    if not len(flat):
        return (*nothing, np.full((n_rows, n_cols), -1, dtype=np.int64) if keep_codes else None)
    first_seen = pd.unique(flat)  # hash-based, in order of first appearance
    counts = np.bincount(flat, minlength=len(dictionary))[first_seen]
    values = dictionary.take(pa.array(first_seen)).to_numpy(zero_copy_only=False)
    if keep_codes:
        # Dictionary index -> index in values; the extra last entry maps -1 to -1.
        position = np.full(len(dictionary) + 1, -1, dtype=np.int64)
        position[first_seen] = np.arange(len(first_seen))
        codes = position[codes]
    return values.astype(object, copy=False), counts, codes if keep_codes else None


def lookup_strings(columns: list, value_set, first_id: int, oov_id: int, pad_id: int) -> tuple:
    """Ids of the values of ``columns`` in ``value_set`` (the vocabulary as an Arrow
    ``large_string`` array; value ``k`` gets ``first_id + k``), ``oov_id`` for values not
    in it and ``pad_id`` for missing ones. Returns
    ``(ids, present)``, both ``(rows, len(columns))``; ``present`` is False where a value
    is missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n_rows = len(columns[0])
    # One hash look-up over all the columns (an Arrow call per column cost 2 ms). Not
    # found (and null) is -1, so with sklattn's ids (oov_id = first_id - 1) "+ first_id"
    # is the whole mapping: no extra pass.
    found = pc.index_in(pa.chunked_array(columns, type=pa.large_string()), value_set=value_set)
    ids = np.concatenate(
        [c.fill_null(-1).to_numpy(zero_copy_only=False) for c in found.chunks]
    ).astype(np.int64).reshape(len(columns), n_rows).T + first_id
    if oov_id != first_id - 1:
        ids[ids == first_id - 1] = oov_id
    # Missing: null, or "" (a zero-length value: read off the offsets, no string compare).
    missing = np.empty((n_rows, len(columns)), dtype=bool)
    for j, column in enumerate(columns):
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)
        offsets = offsets[column.offset : column.offset + n_rows + 1]
        missing[:, j] = offsets[1:] == offsets[:-1]
        if column.null_count:
            missing[:, j] |= column.is_null().to_numpy(zero_copy_only=False)
    ids[missing] = pad_id
    return ids, ~missing


def values_at(columns: list, mask: np.ndarray) -> np.ndarray:
    """The values where ``mask`` (``(rows, len(columns))``) is True, read row by row, as
    an object array."""
    import pyarrow as pa

    rows, cols = np.nonzero(mask)  # row-major order
    out = np.empty(len(rows), dtype=object)
    for j, column in enumerate(columns):
        where = np.flatnonzero(cols == j)
        if len(where):
            out[where] = column.take(pa.array(rows[where])).to_numpy(zero_copy_only=False)
    return out
