"""Parquet logs read in bounded chunks of rows (for ``partial_fit`` passes and streams)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import pandas as pd


def _files(source) -> list[Path]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            # As pyarrow.dataset: names starting with "_" or "." (_temporary/, .crc files)
            # are not data.
            files = sorted(
                p for p in path.rglob("*.parquet") if p.is_file()
                and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
            )
            if not files:
                raise ValueError(f"No *.parquet file under the folder {str(path)!r}.")
            return files
        if not path.exists():
            raise FileNotFoundError(f"No such Parquet file or folder: {str(path)!r}.")
        return [path]
    if isinstance(source, Sequence) and all(isinstance(p, (str, Path)) for p in source):
        if not source:
            raise ValueError("The list of Parquet files is empty.")
        # A file named twice (a folder and a file in it) is read once.
        return list(dict.fromkeys(p.resolve() for s in source for p in _files(s)))
    raise TypeError(
        "source must be a Parquet file or folder path, a list of paths or a "
        f"pyarrow.dataset.Dataset of files; got {type(source).__name__}."
    )


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq
    except ImportError as error:  # pragma: no cover - pyarrow is in the arrow extra
        raise ImportError("Reading Parquet needs pyarrow: pip install 'sklattn[arrow]'.") from error
    return pa, ds, pq


@dataclass(frozen=True)
class ParquetPart:
    """One row group of one Parquet file: the unit a stream shuffles and holds out."""

    path: str
    row_group: int
    n_rows: int
    fragment: object = None  # a pyarrow dataset's fragment of this row group


def parquet_parts(source, columns: Sequence[str] | None = None) -> tuple[list[ParquetPart], list]:
    """Every row group of ``source`` (metadata only) and the columns to read.

    Every file is opened once here, so that a corrupt or empty file, or one that lacks
    columns, is an error naming it before any row is read.
    """
    pa, ds, pq = _pyarrow()
    if hasattr(source, "get_fragments"):  # a pyarrow.dataset.Dataset
        files = [(fragment.path, fragment) for fragment in source.get_fragments()]
        partitioning = getattr(source, "partitioning", None)
        partition_columns = list(partitioning.schema.names) if partitioning is not None else []
        expected = list(columns) if columns is not None else list(source.schema.names)
        if not files:
            raise ValueError("The pyarrow dataset holds no files.")
    else:
        files = [(str(path), None) for path in _files(source)]
        partition_columns = []
        expected = list(columns) if columns is not None else None
    parts: list[ParquetPart] = []
    first = None
    for path, fragment in files:
        try:
            if fragment is None:
                with pq.ParquetFile(path) as parquet:
                    names = parquet.schema_arrow.names
                    metadata = parquet.metadata
                    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
                groups = [None] * len(sizes)
            else:
                names = [*fragment.physical_schema.names, *partition_columns]
                groups = list(fragment.split_by_row_group())
                sizes = [group.count_rows() for group in groups]
        except (pa.ArrowException, OSError) as error:
            raise ValueError(f"{path!r} is not a readable Parquet file: {error}") from None
        if expected is None:
            expected = list(names)
        first = first or path
        missing = [c for c in expected if c not in names]
        extra = [c for c in names if c not in expected] if columns is None else []
        if missing or extra:
            raise ValueError(
                f"The Parquet file {path!r} lacks the columns {missing}"
                + (f" and has columns {extra} that {first!r} has not" if extra else "")
                + "."
            )
        if sum(sizes) == 0:
            raise ValueError(f"The Parquet file {path!r} holds no rows.")
        parts.extend(
            ParquetPart(path, i, n, group)
            for i, (n, group) in enumerate(zip(sizes, groups, strict=True)) if n
        )
    return parts, expected


def read_parquet_part(
    part: ParquetPart, batch_rows: int, columns: list, dataset=None
) -> Iterator[pd.DataFrame]:
    """The rows of one row group as DataFrames of at most ``batch_rows`` rows."""
    pa, ds, pq = _pyarrow()
    parquet = None
    try:
        if part.fragment is None:
            parquet = pq.ParquetFile(part.path)
            batches = parquet.iter_batches(
                batch_size=int(batch_rows), row_groups=[part.row_group], columns=columns
            )
        else:
            batches = ds.Scanner.from_fragment(
                part.fragment, schema=dataset.schema, columns=columns, batch_size=int(batch_rows)
            ).to_batches()
        for batch in batches:
            yield batch.to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"Reading the Parquet file {part.path!r} failed: {error}") from None
    finally:
        if parquet is not None:
            parquet.close()


def iter_parquet(
    source, *, batch_rows: int = 65_536, columns: Sequence[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Read Parquet data as DataFrames of at most ``batch_rows`` rows, one file at a time.

    Memory stays bounded by one chunk whatever the size of the data: feed the chunks to
    ``SequenceEncoder.partial_fit`` (a first pass, for the vocabularies), then encode
    each chunk and feed it to a model's ``partial_fit`` (one epoch per pass); or give
    the source to ``fit`` itself (see :class:`~sklattn.datasets.DataStream`). String
    columns arrive as pandas' Arrow-backed strings (pandas 3; object strings on pandas
    2), which the encoder counts on its columnar path; a Parquet list column is read as
    a list-valued sequence. Rows are numbered across the whole source.

    Parameters
    ----------
    source : str, pathlib.Path, list of paths or pyarrow.dataset.Dataset
        A Parquet file, a folder (every ``*.parquet`` file under it, sorted by path, so
        zero-pad numbered names; names starting with ``_`` or ``.`` are skipped, as
        pyarrow does), a list of files or folders, or a ``pyarrow.dataset.Dataset`` of
        Parquet files (read fragment by fragment, partition columns included).
    batch_rows : int, default=65536
        Most rows per chunk (a chunk never spans two row groups).
    columns : list of str, default=None
        The columns to read; by default those of the first file, which every other
        file must have too.

    Yields
    ------
    pandas.DataFrame
        The next chunk of rows.

    Raises
    ------
    ValueError
        Naming the file: one that is not readable Parquet, holds no rows, or lacks
        columns (or, with ``columns=None``, has other columns than the first file).
        Every file's metadata is read before the first chunk, so these come before
        any row.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklattn.datasets import iter_parquet, make_interest_sequences
    >>> X, y = make_interest_sequences(1000, maxlen=5, random_state=0)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> X.assign(label=y).to_parquet(folder / "part-0.parquet")
    >>> [len(chunk) for chunk in iter_parquet(folder, batch_rows=400)]
    [400, 400, 200]
    """
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, Integral) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a positive integer; got {batch_rows!r}.")
    parts, expected = parquet_parts(source, columns)
    dataset = source if hasattr(source, "get_fragments") else None
    start = 0
    for part in parts:
        for frame in read_parquet_part(part, batch_rows, expected, dataset):
            # Rows numbered across the whole source, not from 0 in every chunk.
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield frame
