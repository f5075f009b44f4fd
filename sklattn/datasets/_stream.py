"""Streams of DataFrame chunks that ``fit`` and ``predict_proba`` read in bounded memory."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd

from ._parquet import ParquetPart, parquet_parts, read_parquet_part


class DataStream:
    """A source of training or scoring rows read chunk by chunk, never all at once.

    Every sklattn estimator's ``fit`` and a classifier's ``decision_function`` /
    ``predict_proba`` / ``predict`` accept a stream in place of a DataFrame, and so
    does :class:`~sklattn.SequenceEncoder` (``fit`` learns its vocabularies in one
    pass; ``transform`` returns a stream of encoded chunks), so a whole
    ``make_pipeline(SequenceEncoder(...), DINClassifier())`` trains on data larger
    than memory. A Parquet path or ``pyarrow.dataset.Dataset``, a list of DataFrames,
    a function returning an iterator of DataFrames or a generator given to ``fit``
    directly is wrapped in a DataStream with the default settings; build one yourself
    to change them.

    Memory is bounded by ``shuffle_buffer + chunk_rows`` rows of encoded arrays and one
    raw chunk while training, and, during a model's counting pass, a sample of at most
    524,288 rows for the models that take statistics from their data (see Notes): the
    size of the data does not matter.

    Parameters
    ----------
    source : str, pathlib.Path, list, pyarrow.dataset.Dataset, callable or iterator
        Where the rows are:

        * a Parquet file, a folder of them (``*.parquet`` under it, sorted by path;
          names starting with ``_`` or ``.`` skipped), a list of files or folders, or a
          ``pyarrow.dataset.Dataset`` of Parquet files (partition columns included).
          Read with pyarrow, one row group at a time; a list column is a list-valued
          sequence;
        * a list of pandas DataFrames (or polars DataFrames, pyarrow Tables);
        * a function of no arguments that returns a new iterator of DataFrames each
          time it is called (e.g. ``lambda: pd.read_csv("log.csv", chunksize=100_000)``);
        * an iterator or generator of DataFrames. It can be read only once: enough for
          ``SequenceEncoder.fit`` or one prediction, not for a model's ``fit``, which
          reads its data once to count and once per epoch.
    label : str, default=None
        The column holding the targets (``fit(source, y="label")`` sets it). It is
        never a feature: the encoder passes it through, and prediction ignores it
        (an encoder or model fitted on a stream remembers its name; one fitted in
        memory needs it named here to read files that have the column).
    weight : str, default=None
        The column holding per-row weights of the loss, if any: like ``label``, passed
        through by the encoder and never a feature (in a Pipeline, name it here: a
        model's ``sample_weight`` is routed to the model only).
    chunk_rows : int, default=65536
        Most rows per chunk read from Parquet (a chunk never spans two row groups).
        Other sources yield their own chunks.
    columns : list of str, default=None
        The Parquet columns to read; by default every column of the first file, which
        every other file must have too.
    shuffle_buffer : int, default=262144
        Rows held for shuffling during training. Each epoch reads the parts of the
        source (Parquet row groups, list items) in a new random order, fills the buffer,
        shuffles it and trains on it; a buffer at least as large as the data is a full
        shuffle, as in memory. 0 trains on the rows in the source's order. A
        function's or iterator's chunks are always read in their order (the buffer
        still shuffles rows).
    cache : bool or str, default=False
        Keep the rows a model's ``fit`` converts in its counting pass on local disk
        (int32 ids, float32 numbers: 4 bytes per cell, about 0.4 GB per million rows
        of 100 id columns), so that each epoch reads them back instead of reading the
        source and encoding it again. True: a temporary folder; a path: a temporary
        folder under it (a fast local disk). Removed when ``fit`` ends. With a cache,
        a function's or an iterator's chunks are shuffled like parts too.
    progress : bool, default=False
        Show a progress bar of rows while a pass over the stream counts, learns
        vocabularies or predicts (training epochs show Keras' progress bar when the
        estimator's ``verbose`` is set).

    Notes
    -----
    **Validation on a stream.** An estimator's ``validation_fraction`` holds out whole
    parts of the stream: that share of the Parquet row groups (or list items, or
    chunks), drawn with the estimator's ``random_state``, at least one. A stream of a
    single part cannot be split: write the files with smaller row groups
    (``row_group_size``) or several files, or set ``validation_fraction=None``. The
    held-out parts are not stratified by label.

    **What a model learns from a stream.** Vocabulary sizes, labels and the id counts
    of the mini-batch aware L2 penalty are counted over every row before training, as
    in memory. The statistics a model takes from its training data (negative-sampling
    distributions, AFM's initial bias, DIEN's side features of sampled negatives) are
    taken from a uniform sample of at most 524,288 rows (all rows of a smaller stream),
    and ``class_weight="balanced"`` from the label counts of all rows. The only other
    difference from a fit in memory is the order of the batches (``shuffle_buffer``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import DINClassifier, SequenceEncoder
    >>> from sklattn.datasets import DataStream, make_interest_sequences
    >>> X, y = make_interest_sequences(2000, maxlen=5, random_state=0)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(2):
    ...     part = X.iloc[i * 1000 : (i + 1) * 1000].assign(label=y[i * 1000 : (i + 1) * 1000])
    ...     part.to_parquet(folder / f"part-{i}.parquet")
    >>> model = make_pipeline(
    ...     SequenceEncoder(sequences={"hist_item_": "item"}, maxlen=5),
    ...     DINClassifier(embedding_dim=4, epochs=1, random_state=0),
    ... )
    >>> model = model.fit(DataStream(folder, chunk_rows=500), y="label")
    >>> [p.shape for p in model.predict_proba(folder)]
    [(1000, 2), (1000, 2)]
    """

    def __init__(
        self,
        source,
        *,
        label: str | None = None,
        weight: str | None = None,
        chunk_rows: int = 65_536,
        columns: Sequence[str] | None = None,
        shuffle_buffer: int = 262_144,
        cache: bool | str | os.PathLike = False,
        progress: bool = False,
    ) -> None:
        self.source = source
        self.label = label
        self.weight = weight
        self.chunk_rows = chunk_rows
        self.columns = columns
        self.shuffle_buffer = shuffle_buffer
        self.cache = cache
        self.progress = progress
        self._maps: tuple[Callable[[pd.DataFrame], pd.DataFrame], ...] = ()
        self._parts_cache = None
        self._consumed = False

    def __repr__(self) -> str:
        weight = f", weight={self.weight!r}" if self.weight is not None else ""
        return f"DataStream({_describe(self.source)}, label={self.label!r}{weight})"

    # ------------------------------------------------------------ settings
    def _check(self) -> None:
        for name, low in (("chunk_rows", 1), ("shuffle_buffer", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
                raise ValueError(
                    f"DataStream's {name} must be an integer >= {low}; got {value!r}."
                )
        if not isinstance(self.cache, (bool, str, os.PathLike)):
            raise TypeError(
                f"DataStream's cache must be True, False or a folder; got {self.cache!r}."
            )
        if isinstance(self.cache, (str, os.PathLike)) and not os.path.isdir(self.cache):
            raise ValueError(f"DataStream's cache folder {str(self.cache)!r} does not exist.")
        for name in ("label", "weight"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"DataStream's {name} must be a column name; got {value!r}.")

    def with_label(self, label: str | None) -> DataStream:
        """This stream with ``label`` naming its target column (a copy)."""
        return self._with_column("label", "y", label)

    def with_weight(self, weight: str | None) -> DataStream:
        """This stream with ``weight`` naming its weight column (a copy)."""
        return self._with_column("weight", "sample_weight", weight)

    def _with_column(self, role: str, argument: str, name: str | None) -> DataStream:
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"With a stream, {argument} must be the name of its {role} column (e.g. "
                f"{argument}='{role}'), or None; got {type(name).__name__}."
            )
        current = getattr(self, role)
        if name is None or name == current:
            return self
        if current is not None:
            raise ValueError(
                f"{argument}={name!r} names another column than the stream's {role} "
                f"{current!r}."
            )
        return self._copy(**{role: name})

    def map(self, function: Callable[[pd.DataFrame], pd.DataFrame]) -> DataStream:
        """A stream of ``function(chunk)`` for every chunk of this one (lazily)."""
        return self._copy(maps=(*self._maps, function))

    def _copy(self, *, label=..., weight=..., maps=None) -> DataStream:
        other = DataStream.__new__(DataStream)
        other.__dict__.update(self.__dict__)
        if label is not ...:
            other.label = label
        if weight is not ...:
            other.weight = weight
        if maps is not None:
            other._maps = maps
        # A one-shot source is shared: reading any copy consumes it.
        other._root = getattr(self, "_root", self)
        return other

    # --------------------------------------------------------------- parts
    @property
    def reorderable(self) -> bool:
        """Whether the parts can be read in any order (Parquet, lists)."""
        return _kind(self.source) in ("parquet", "list")

    def _parts(self) -> list | None:
        """The parts (Parquet row groups, list items), or None when only reading tells."""
        kind = _kind(self.source)
        if kind == "parquet":
            if self._parts_cache is None:
                self._parts_cache = parquet_parts(self.source, self.columns)
            return self._parts_cache[0]
        if kind == "list":
            return list(range(len(self.source)))
        return None

    @property
    def n_rows(self) -> int | None:
        """Rows in the stream when known without reading it (Parquet, lists), else None."""
        kind = _kind(self.source)
        if kind == "parquet":
            return sum(p.n_rows for p in self._parts())
        if kind == "list":
            return sum(len(frame) for frame in self.source)
        return None

    def read(
        self, parts: Sequence | None = None, *, skip_empty: bool = False
    ) -> Iterator[tuple[object, str, pd.DataFrame]]:
        """``(part, origin, chunk)`` for every chunk of ``parts`` (default: all, in order).

        ``origin`` names where the chunk came from, for error messages. A part of a
        function's or an iterator's stream is the index of its chunk; asking for some
        of them still reads the others (and skips them). ``skip_empty`` leaves out
        chunks of no rows (a prediction keeps them, to stay aligned with the chunks).
        """
        for item in self._read(parts):
            if not (skip_empty and len(item[2]) == 0):
                yield item

    def _read(self, parts: Sequence | None) -> Iterator[tuple[object, str, pd.DataFrame]]:
        self._check()
        kind = _kind(self.source)
        if kind == "parquet":
            self._parts()
            columns = self._parts_cache[1]
            dataset = self.source if hasattr(self.source, "get_fragments") else None
            for part in self._parts() if parts is None else parts:
                origin = f"the Parquet file {part.path!r} (row group {part.row_group})"
                for frame in read_parquet_part(part, self.chunk_rows, columns, dataset):
                    yield part, origin, self._apply(frame, origin)
            return
        if kind == "list":
            for index in range(len(self.source)) if parts is None else parts:
                origin = f"chunk {index} of the list"
                yield index, origin, self._apply(self.source[index], origin)
            return
        wanted = None if parts is None else set(parts)
        for index, frame in enumerate(self._iterate()):
            if wanted is None or index in wanted:
                origin = f"chunk {index} of the stream"
                yield index, origin, self._apply(frame, origin)

    def _iterate(self) -> Iterable:
        kind = _kind(self.source)
        if kind == "callable":
            chunks = self.source()
            if isinstance(chunks, pd.DataFrame) or not isinstance(chunks, Iterable):
                raise TypeError(
                    "A DataStream's function must return an iterator of DataFrames; it "
                    f"returned {type(chunks).__name__}."
                )
            return chunks
        root = getattr(self, "_root", self)
        if root._consumed:
            raise ValueError(
                "This stream's iterator has already been read, and an iterator can be read "
                "only once. Pass a function that returns a new iterator (e.g. "
                "lambda: pd.read_csv(path, chunksize=100_000)), a list of DataFrames or a "
                "Parquet folder instead."
            )
        root._consumed = True
        return self.source

    def _apply(self, frame, origin: str) -> pd.DataFrame:
        frame = _as_pandas(frame, origin)
        for function in self._maps:
            try:
                frame = function(frame)
            except (ValueError, TypeError) as error:
                raise annotate(origin, error) from error
        return frame


def annotate(origin: str, error: Exception) -> Exception:
    """A ValueError or TypeError saying where a chunk's ``error`` came from."""
    kind = TypeError if isinstance(error, TypeError) else ValueError
    return kind(f"In {origin}: {error}")


def _as_pandas(frame, origin: str) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        return frame
    module = type(frame).__module__.split(".")[0]
    if module in ("polars", "pyarrow") and hasattr(frame, "to_pandas"):
        from ..preprocessing._encoder import to_pandas

        return to_pandas(frame)  # an encoder's polars output keeps its schema
    raise TypeError(
        f"{origin} is a {type(frame).__module__}.{type(frame).__name__}, not a DataFrame: a "
        "stream's chunks must be pandas or polars DataFrames or pyarrow Tables."
    )


def _kind(source) -> str:
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "get_fragments"):
        return "parquet"
    if isinstance(source, (list, tuple)):
        if source and all(isinstance(s, (str, os.PathLike)) for s in source):
            return "parquet"
        return "list"
    if isinstance(source, Iterator):
        return "iterator"
    if callable(source):
        return "callable"
    raise TypeError(
        "A DataStream's source must be a Parquet path, a list of paths or DataFrames, a "
        "pyarrow.dataset.Dataset, a function returning an iterator of DataFrames, or an "
        f"iterator; got {type(source).__name__}."
    )


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(str(source))
    if isinstance(source, (list, tuple)):
        return f"<list of {len(source)}>"
    return f"<{type(source).__name__}>"


def _frame_like(item) -> bool:
    if isinstance(item, pd.DataFrame):
        return True
    module = type(item).__module__.split(".")[0]
    return module in ("polars", "pyarrow") and hasattr(item, "to_pandas")


def as_stream(X, y=None) -> DataStream | None:
    """X as a :class:`DataStream` when it is a streaming source, else None.

    ``y`` naming a column (a string) makes it the stream's label. A string ``y`` with
    an in-memory X is an error that says what to pass instead.
    """
    if isinstance(X, DataStream):
        return X.with_label(y)
    stream = None
    if isinstance(X, (str, os.PathLike)) or hasattr(X, "get_fragments"):
        stream = DataStream(X)
    elif isinstance(X, (list, tuple)) and X and (
        all(_frame_like(item) for item in X)
        or all(isinstance(item, (str, Path)) for item in X)
    ):
        stream = DataStream(list(X))
    elif isinstance(X, Iterator) and not hasattr(X, "shape"):
        stream = DataStream(X)
    elif (
        callable(X) and not isinstance(X, type) and not hasattr(X, "shape")
        and not hasattr(X, "get_params") and not hasattr(X, "columns")
    ):
        stream = DataStream(X)
    if stream is None:
        if isinstance(y, str):
            raise ValueError(
                f"y={y!r} names a column, which works only when X is a stream (a Parquet "
                "path, a DataStream, a list of DataFrames...). For a DataFrame, pass the "
                f"labels themselves: y = X.pop({y!r})."
            )
        return None
    return stream.with_label(y)


def split_label(frame: pd.DataFrame, label: str | None, weight: str | None = None,
                *, required: bool = False):
    """``(features, labels, weights)`` of a chunk: the label and weight columns taken out.

    A missing label column is an error when ``required`` (training), else ignored.
    """
    labels = weights = None
    drop = []
    if label is not None:
        if label in frame.columns:
            drop.append(label)
        elif required:
            raise ValueError(
                f"The label column {label!r} is not in the stream; its columns are "
                f"{list(frame.columns)[:8]}."
            )
    if weight is not None:
        if weight not in frame.columns:
            raise ValueError(f"The sample_weight column {weight!r} is not in the stream.")
        drop.append(weight)
    if not drop:
        return frame, None, None
    from .._data import take_columns

    features, values = take_columns(frame, drop)
    labels = values.get(label) if label is not None else None
    if weight is not None:
        try:
            weights = np.asarray(values[weight], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"The weight column {weight!r} holds non-numeric values.") from None
    return features, labels, weights


class RowProgress:
    """A one-line progress bar of rows read (stderr), redrawn at most twice a second."""

    def __init__(self, total: int | None, what: str = "rows") -> None:
        self.total, self.what, self.done = total, what, 0
        self.start = self.shown = time.perf_counter()

    def add(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.shown >= 0.5 or (self.total is not None and self.done >= self.total):
            self.shown = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        if self.total:
            width = 30
            filled = min(width, int(width * self.done / self.total))
            bar = "[" + "=" * filled + "." * (width - filled) + "] "
            count = f"{self.done:,}/{self.total:,}"
        else:
            bar, count = "", f"{self.done:,}"
        end = "\n" if self.total is not None and self.done >= self.total else ""
        sys.stderr.write(f"\r{bar}{count} {self.what} - {rate:,.0f} {self.what}/s{end}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.total is None or self.done < self.total:
            self._draw(time.perf_counter())
            sys.stderr.write("\n")


__all__ = ["DataStream", "ParquetPart", "RowProgress", "annotate", "as_stream", "split_label"]
