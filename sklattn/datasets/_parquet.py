"""Parquet logs read in bounded chunks of rows (for ``partial_fit`` passes)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from numbers import Integral
from pathlib import Path

import pandas as pd


def _files(source) -> list[Path]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
            if not files:
                raise ValueError(f"No *.parquet file under the folder {str(path)!r}.")
            return files
        if not path.exists():
            raise FileNotFoundError(f"No such Parquet file or folder: {str(path)!r}.")
        return [path]
    if type(source).__module__.startswith("pyarrow") and hasattr(source, "files"):
        return [Path(f) for f in source.files]  # a pyarrow.dataset.FileSystemDataset
    if isinstance(source, Sequence) and all(isinstance(p, (str, Path)) for p in source):
        if not source:
            raise ValueError("The list of Parquet files is empty.")
        return [p for s in source for p in _files(s)]
    raise TypeError(
        "source must be a Parquet file or folder path, a list of paths or a "
        f"pyarrow.dataset.Dataset of files; got {type(source).__name__}."
    )


def iter_parquet(
    source, *, batch_rows: int = 65_536, columns: Sequence[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Read Parquet data as DataFrames of at most ``batch_rows`` rows, one file at a time.

    Memory stays bounded by one chunk whatever the size of the data: feed the chunks to
    ``SequenceEncoder.partial_fit`` (a first pass, for the vocabularies), then encode
    each chunk and feed it to a model's ``partial_fit`` (one epoch per pass). String
    columns arrive in Arrow-backed form, which the encoder counts without Python
    objects; a Parquet list column is read as a list-valued sequence.

    Parameters
    ----------
    source : str, pathlib.Path, list of paths or pyarrow.dataset.Dataset
        A Parquet file, a folder (every ``*.parquet`` file under it, in path order), a
        list of files or folders, or a file-based ``pyarrow.dataset.Dataset``.
    batch_rows : int, default=65536
        Most rows per chunk (a chunk never spans two files).
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
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:  # pragma: no cover - pyarrow is in the arrow extra
        raise ImportError(
            "Reading Parquet needs pyarrow: pip install 'sklattn[arrow]'."
        ) from error
    expected = list(columns) if columns is not None else None
    for path in _files(source):
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise ValueError(f"{str(path)!r} is not a readable Parquet file: {error}") from None
        names = parquet.schema_arrow.names
        if expected is None:
            expected, first = list(names), path
        missing = [c for c in expected if c not in names]
        extra = [c for c in names if c not in expected] if columns is None else []
        if missing or extra:
            raise ValueError(
                f"The Parquet file {str(path)!r} lacks the columns {missing}"
                + (f" and has columns {extra} that {str(first)!r} has not" if extra else "")
                + "."
            )
        if parquet.metadata.num_rows == 0:
            raise ValueError(f"The Parquet file {str(path)!r} holds no rows.")
        try:
            for batch in parquet.iter_batches(batch_size=int(batch_rows), columns=expected):
                yield batch.to_pandas()
        except (pa.ArrowException, OSError) as error:
            raise ValueError(f"Reading the Parquet file {str(path)!r} failed: {error}") from None
