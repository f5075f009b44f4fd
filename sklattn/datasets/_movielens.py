"""MovieLens loaders and the "wide history" transformation.

The MovieLens data sets are distributed by GroupLens under their own terms of
use; they are never shipped with this package.  :func:`load_movielens` reads a
local copy, :func:`fetch_movielens` downloads and caches the official archive
and :func:`make_history_table` turns any event log into one row per event with
the user's previous items as columns.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = [
    "DatasetIntegrityError",
    "fetch_movielens",
    "load_movielens",
    "make_history_table",
]

BASE_URL = "https://files.grouplens.org/datasets/movielens/"

#: Archive name, extracted folder name and ratings file of each variant.
_VARIANTS: dict[str, tuple[str, str, str]] = {
    "100k": ("ml-100k.zip", "ml-100k", "u.data"),
    "1m": ("ml-1m.zip", "ml-1m", "ratings.dat"),
}

#: Known SHA-256 digests of the extracted ratings file of each variant.
RATINGS_SHA256: dict[str, str] = {
    "100k": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
}

_LAYOUTS: dict[str, tuple[str, str, str]] = {
    "100k": ("u.data", "u.item", "u.user"),
    "1m": ("ratings.dat", "movies.dat", "users.dat"),
}

#: Genre names of MovieLens 100k, in the order of the flag columns of ``u.item``.
_GENRES_100K: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

#: Occupation codes of MovieLens 1M (from the README of the archive).
OCCUPATIONS_1M: dict[int, str] = {
    0: "other",
    1: "academic/educator",
    2: "artist",
    3: "clerical/admin",
    4: "college/grad student",
    5: "customer service",
    6: "doctor/health care",
    7: "executive/managerial",
    8: "farmer",
    9: "homemaker",
    10: "K-12 student",
    11: "lawyer",
    12: "programmer",
    13: "retired",
    14: "sales/marketing",
    15: "scientist",
    16: "self-employed",
    17: "technician/engineer",
    18: "tradesman/craftsman",
    19: "unemployed",
    20: "writer",
}

_DESCR = {
    "100k": (
        "MovieLens 100k (GroupLens): 100,000 ratings (1-5) from 943 users on 1,682 "
        "movies, collected 1997-1998; each user rated at least 20 movies. Timestamps "
        "are Unix seconds; items carry 19 genre flags; users carry age, gender, "
        "occupation and zip code."
    ),
    "1m": (
        "MovieLens 1M (GroupLens): about 1,000,209 ratings (1-5) from 6,040 users on "
        "about 3,900 movies, collected 2000-2003; each user rated at least 20 movies. "
        "Timestamps are Unix seconds; age is the bucket code of the README and "
        "occupation codes are mapped to their names."
    ),
}


class DatasetIntegrityError(OSError, ValueError):
    """Raised when a downloaded archive fails verification or is unsafe to extract.

    It derives from both :class:`OSError` and :class:`ValueError`.

    Examples
    --------
    >>> issubclass(DatasetIntegrityError, OSError)
    True
    """


# --------------------------------------------------------------------------
# Local loading
# --------------------------------------------------------------------------


def _detect_variant(folder: Path) -> str:
    if not folder.is_dir():
        looked = " or ".join(", ".join(files) for files in _LAYOUTS.values())
        raise FileNotFoundError(
            f"MovieLens folder {str(folder)!r} does not exist or is not a directory "
            f"(expected it to contain {looked})."
        )
    for variant, files in _LAYOUTS.items():
        if all((folder / name).is_file() for name in files):
            return variant
    details = []
    for variant, files in _LAYOUTS.items():
        missing = [name for name in files if not (folder / name).is_file()]
        details.append(f"{variant}: {', '.join(files)} (missing: {', '.join(missing)})")
    raise FileNotFoundError(
        f"No MovieLens data found in {str(folder)!r}; looked for the files of "
        + "; ".join(details)
        + "."
    )


def _read_double_colon(path: Path, columns: dict[str, type]) -> pd.DataFrame:
    """Read a '::'-separated file whose fields never contain ':' with the C parser.

    Splitting on ':' gives an empty field between the two colons of each
    separator; only the even fields are kept.
    """
    names = list(columns)
    usecols = [2 * i for i in range(len(names))]
    frame = pd.read_csv(
        path,
        sep=":",
        header=None,
        usecols=usecols,
        encoding="latin-1",
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        dtype={2 * i: dtype for i, dtype in enumerate(columns.values())},
    )
    frame = frame[usecols]
    frame.columns = names
    return frame


def _genre_lists(flags: np.ndarray, names: list[str]) -> list[list[str]]:
    rows, cols = np.nonzero(flags)
    counts = np.bincount(rows, minlength=flags.shape[0])
    name_arr = np.asarray(names, dtype=object)
    chunks = np.split(name_arr[cols], np.cumsum(counts)[:-1])
    return [list(chunk) for chunk in chunks]


def _finish_items(item_id: np.ndarray, title: pd.Series, genres: list[list[str]]) -> pd.DataFrame:
    first = [g[0] if g else "unknown" for g in genres]
    return pd.DataFrame(
        {
            "item_id": np.asarray(item_id, dtype=np.int64),
            "title": title.to_numpy(),
            "genres": pd.Series(genres, dtype=object),
            "genre": first,
        }
    )


def _load_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(
        folder / "u.data",
        sep="\t",
        header=None,
        names=["user_id", "item_id", "rating", "timestamp"],
        dtype=np.int64,
    )

    genre_names = list(_GENRES_100K)
    genre_file = folder / "u.genre"
    if genre_file.is_file():
        table = pd.read_csv(
            genre_file,
            sep="|",
            header=None,
            names=["name", "index"],
            encoding="latin-1",
            quoting=csv.QUOTE_NONE,
            dtype={"name": str},
        ).dropna()
        table = table.sort_values("index", kind="stable")
        genre_names = [str(name) for name in table["name"]]

    raw = pd.read_csv(
        folder / "u.item",
        sep="|",
        header=None,
        encoding="latin-1",
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        dtype=str,
    )
    n_flags = raw.shape[1] - 5
    if n_flags != len(genre_names):
        if n_flags == len(_GENRES_100K):
            genre_names = list(_GENRES_100K)
        else:
            raise ValueError(
                f"u.item has {n_flags} genre columns but {len(genre_names)} genre names are known."
            )
    flags = raw.iloc[:, 5:].replace("", "0").astype(np.int64).to_numpy() == 1
    items = _finish_items(
        raw[0].astype(np.int64).to_numpy(), raw[1], _genre_lists(flags, genre_names)
    )

    users = pd.read_csv(
        folder / "u.user",
        sep="|",
        header=None,
        names=["user_id", "age", "gender", "occupation", "zip_code"],
        encoding="latin-1",
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        dtype={
            "user_id": np.int64,
            "age": np.int64,
            "gender": str,
            "occupation": str,
            "zip_code": str,
        },
    )
    users = users[["user_id", "gender", "age", "occupation", "zip_code"]]
    return ratings, items, users


def _load_1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read_double_colon(
        folder / "ratings.dat",
        {"user_id": np.int64, "item_id": np.int64, "rating": np.int64, "timestamp": np.int64},
    )

    # Titles may contain ':' (never '::'): split on the first and the last '::'.
    text = (folder / "movies.dat").read_text(encoding="latin-1")
    lines = pd.Series([line for line in text.splitlines() if line.strip()], dtype=object)
    head = lines.str.split("::", n=1, expand=True)
    tail = head[1].str.rsplit("::", n=1, expand=True)
    genres = [
        [g for g in str(value).split("|") if g] if isinstance(value, str) else []
        for value in tail[1].tolist()
    ]
    items = _finish_items(
        head[0].str.strip().astype(np.int64).to_numpy(), tail[0].astype(str), genres
    )

    users = _read_double_colon(
        folder / "users.dat",
        {
            "user_id": np.int64,
            "gender": str,
            "age": np.int64,
            "occupation": np.int64,
            "zip_code": str,
        },
    )
    users["occupation"] = users["occupation"].map(OCCUPATIONS_1M).fillna("other").astype(str)
    return ratings, items, users


def load_movielens(path: str | os.PathLike) -> Bunch:
    """Load a local MovieLens 100k or 1M folder.

    The variant is detected from the files present: ``u.data``, ``u.item`` and
    ``u.user`` (MovieLens 100k, tab/pipe separated) or ``ratings.dat``,
    ``movies.dat`` and ``users.dat`` (MovieLens 1M, ``'::'`` separated). Text
    files are decoded as latin-1.

    Parameters
    ----------
    path : str or os.PathLike
        Folder holding the raw files of the archive (e.g. ``.../ml-100k``).

    Returns
    -------
    data : sklearn.utils.Bunch
        Dictionary-like object with the keys below (also attributes).

        ratings : pandas.DataFrame
            Columns ``user_id``, ``item_id``, ``rating``, ``timestamp`` (all
            ``int64``; the timestamp is in Unix seconds), in file order.
        movies : pandas.DataFrame
            Columns ``item_id`` (``int64``), ``title`` (str), ``genres`` (list of
            genre names) and ``genre`` (first genre name, ``"unknown"`` when the
            item has none). In 100k the genres follow the order of ``u.genre``;
            in 1M the order of ``movies.dat``.
        users : pandas.DataFrame
            Columns ``user_id`` (``int64``), ``gender`` (str), ``age`` (``int64``;
            the age bucket code in 1M), ``occupation`` (occupation name, str) and
            ``zip_code`` (str).
        variant : str
            ``"100k"`` or ``"1m"``.
        DESCR : str
            Short description of the data set.

    Raises
    ------
    FileNotFoundError
        If the folder holds neither layout; the message names the folder and the
        files looked for.

    Examples
    --------
    >>> from sklattn.datasets import load_movielens
    >>> data = load_movielens("ml-100k")  # doctest: +SKIP
    >>> data.ratings.shape  # doctest: +SKIP
    (100000, 4)
    >>> data.movies[["item_id", "genre"]].head(1)  # doctest: +SKIP
       item_id      genre
    0        1  Animation
    """
    folder = Path(path).expanduser()
    variant = _detect_variant(folder)
    if variant == "100k":
        ratings, items, users = _load_100k(folder)
    else:
        ratings, items, users = _load_1m(folder)
    return Bunch(
        ratings=ratings.reset_index(drop=True),
        movies=items.reset_index(drop=True),
        users=users.reset_index(drop=True),
        variant=variant,
        DESCR=_DESCR[variant],
    )


# --------------------------------------------------------------------------
# Download and cache
# --------------------------------------------------------------------------


def _sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_home(data_home: str | os.PathLike | None) -> Path:
    if data_home is None:
        data_home = os.environ.get("SKLATTN_DATA") or os.path.join("~", "sklattn_data")
    return Path(data_home).expanduser()


def _check_member(name: str) -> None:
    normalised = name.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    if (
        normalised.startswith("/")
        or (len(normalised) > 1 and normalised[1] == ":")
        or ".." in parts
    ):
        raise DatasetIntegrityError(
            f"Refusing to extract archive member {name!r}: absolute path or '..' component."
        )


def _safe_extract(archive: Path, destination: Path) -> None:
    root = destination.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DatasetIntegrityError(f"{str(archive)!r} is not a valid zip archive.") from exc
    with zf:
        members = zf.infolist()
        for member in members:
            _check_member(member.filename)
            target = (destination / member.filename).resolve()
            if target != root and root not in target.parents:
                raise DatasetIntegrityError(
                    f"Refusing to extract archive member {member.filename!r} outside "
                    f"{str(destination)!r}."
                )
        for member in members:
            zf.extract(member, destination)


def _find_dataset_folder(root: Path, ratings_file: str) -> Path | None:
    if (root / ratings_file).is_file():
        return root
    candidates = sorted(p.parent for p in root.glob(f"*/{ratings_file}"))
    return candidates[0] if candidates else None


def _download(url: str, target: Path) -> None:
    """Download ``url`` to a temporary file beside ``target``, then rename it."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fetch_movielens(
    variant: str = "100k",
    *,
    data_home: str | os.PathLike | None = None,
    download_if_missing: bool = True,
    url: str | None = None,
    sha256: str | None = None,
) -> Bunch:
    """Load MovieLens, downloading and caching the official archive if needed.

    The archive is extracted to ``<data_home>/ml-100k`` (or ``ml-1m``). When that
    folder already exists it is loaded without any network access.

    Parameters
    ----------
    variant : {"100k", "1m"}, default="100k"
        Which MovieLens release to fetch.
    data_home : str or os.PathLike, default=None
        Cache folder. Defaults to the ``SKLATTN_DATA`` environment variable, or
        ``~/sklattn_data`` when that is unset.
    download_if_missing : bool, default=True
        If False and the data are not cached, raise :class:`OSError` instead of
        downloading.
    url : str, default=None
        Address of the zip archive; defaults to the GroupLens URL of the variant
        (``https://files.grouplens.org/datasets/movielens/ml-100k.zip``, ...).
    sha256 : str, default=None
        Expected SHA-256 digest of the downloaded zip archive. When given it
        replaces the built-in check of the extracted ratings file (see
        ``RATINGS_SHA256``; only known for 100k, so 1M is not verified unless
        ``sha256`` is passed).

    Returns
    -------
    data : sklearn.utils.Bunch
        The output of :func:`load_movielens` on the extracted folder.

    Raises
    ------
    ValueError
        If ``variant`` is unknown.
    OSError
        If the data are not cached and ``download_if_missing`` is False, or the
        download fails. A failed checksum or an unsafe archive member raises
        :class:`DatasetIntegrityError` (an ``OSError`` and a ``ValueError``) after
        deleting the bad download.

    Examples
    --------
    >>> from sklattn.datasets import fetch_movielens
    >>> data = fetch_movielens("100k", data_home="~/sklattn_data")  # doctest: +SKIP
    >>> data.ratings["user_id"].nunique()  # doctest: +SKIP
    943
    """
    key = str(variant).lower()
    if key not in _VARIANTS:
        raise ValueError(
            f"Unknown MovieLens variant {variant!r}; allowed variants are "
            + ", ".join(repr(v) for v in _VARIANTS)
            + "."
        )
    archive_name, folder_name, ratings_file = _VARIANTS[key]
    home = _data_home(data_home)
    target = home / folder_name

    if target.is_dir():
        return load_movielens(target)
    if not download_if_missing:
        raise OSError(
            f"MovieLens {key} is not cached in {str(home)!r} and download_if_missing=False."
        )

    home.mkdir(parents=True, exist_ok=True)
    archive = home / archive_name
    _download(url or BASE_URL + archive_name, archive)
    workdir = Path(tempfile.mkdtemp(prefix=f".{folder_name}.", suffix=".tmp", dir=home))
    try:
        if sha256 is not None:
            actual = _sha256(archive)
            if actual.lower() != sha256.strip().lower():
                raise DatasetIntegrityError(
                    f"SHA-256 mismatch for {archive_name} downloaded from "
                    f"{url or BASE_URL + archive_name}: expected {sha256.strip().lower()}, "
                    f"got {actual}. The download was deleted."
                )
        _safe_extract(archive, workdir)
        found = _find_dataset_folder(workdir, ratings_file)
        if found is None:
            raise DatasetIntegrityError(
                f"The archive {archive_name} holds no {ratings_file}; it is not MovieLens {key}."
            )
        expected = RATINGS_SHA256.get(key) if sha256 is None else None
        if expected is not None:
            actual = _sha256(found / ratings_file)
            if actual != expected:
                raise DatasetIntegrityError(
                    f"SHA-256 mismatch for {ratings_file} of MovieLens {key}: expected "
                    f"{expected}, got {actual}. The download was deleted."
                )
        try:
            os.replace(found, target)
        except OSError:
            # Another process may have finished the same download first.
            if not target.is_dir():
                raise
    except BaseException:
        archive.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    archive.unlink(missing_ok=True)
    return load_movielens(target)


# --------------------------------------------------------------------------
# Wide history table
# --------------------------------------------------------------------------


def _as_masked(values: pd.Series) -> tuple[np.ndarray, np.ndarray, str]:
    """Split a column into a numpy data array, a missing mask and an output kind.

    The kind is ``"Int64"`` for integers, ``"Float64"`` for floats, ``"boolean"``
    for booleans and ``"object"`` for anything else. An empty column gives one
    missing placeholder so that gathers with index 0 stay valid.
    """
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        kind, np_dtype, fill = "boolean", bool, False
    elif pd.api.types.is_integer_dtype(dtype):
        kind, np_dtype, fill = "Int64", np.int64, 0
    elif pd.api.types.is_float_dtype(dtype):
        kind, np_dtype, fill = "Float64", np.float64, np.nan
    else:
        kind, np_dtype, fill = "object", object, None
    if len(values) == 0:
        return np.array([fill], dtype=np_dtype), np.ones(1, dtype=bool), kind
    return values.to_numpy(dtype=np_dtype, na_value=fill), values.isna().to_numpy(), kind


def _window_columns(
    data_us: np.ndarray,
    na_us: np.ndarray,
    kind: str,
    rows: np.ndarray,
    rows_rank: np.ndarray,
    names: list[str],
) -> dict[str, object]:
    """Build the window columns from per-user sorted values.

    ``data_us``/``na_us`` are ordered by (user, time, original row); ``rows`` are
    the positions, in that order, of the output rows and ``rows_rank`` the number
    of previous events of their user. Column ``j`` of ``names`` (0-based) holds
    the event ``len(names) - j`` steps back.
    """
    builders = {
        "Int64": pd.arrays.IntegerArray,
        "Float64": pd.arrays.FloatingArray,
        "boolean": pd.arrays.BooleanArray,
    }
    maxlen = len(names)
    columns: dict[str, object] = {}
    for j, name in enumerate(names):
        lag = maxlen - j
        src = np.maximum(rows - lag, 0)
        mask = (rows_rank < lag) | na_us[src]
        data = data_us[src]
        if kind == "object":
            data[mask] = None
            # An explicit object dtype: pandas would otherwise infer a string dtype.
            columns[name] = pd.Series(data, dtype=object, copy=False)
        else:
            columns[name] = builders[kind](data, mask)
    return columns


def make_history_table(
    ratings: pd.DataFrame,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    maxlen: int = 20,
    prefix: str | None = None,
    item_features: pd.DataFrame | None = None,
    min_history: int = 0,
) -> pd.DataFrame:
    """Add each event's window of the user's previous items as columns.

    Events are ordered by ``time_col``; ties are broken by the original row order
    (stable sort). For every event the ``maxlen`` items the same user interacted
    with strictly before it (in that order) become the columns
    ``{prefix}_1 .. {prefix}_{maxlen}``: the highest number holds the most recent
    previous item and ``{prefix}_1`` the oldest item of the window. Positions with
    no previous event are missing (the windows are right-aligned).

    Parameters
    ----------
    ratings : pandas.DataFrame
        Event log, one row per interaction. All its columns are kept.
    user_col, item_col, time_col : str, default="user_id", "item_id", "timestamp"
        Names of the user, item and time columns.
    maxlen : int, default=20
        Number of previous items per event.
    prefix : str, default=None
        Prefix of the history columns; defaults to ``f"hist_{item_col}"``.
    item_features : pandas.DataFrame, default=None
        Item attributes, indexed by item id or holding a column named
        ``item_col``. Each other column ``f`` is looked up for every history
        position and added as ``hist_{f}_1 .. hist_{f}_{maxlen}`` (same ordering
        and missing rules; items absent from ``item_features`` give missing).
    min_history : int, default=0
        Drop events with fewer than ``min_history`` previous items of the same user.

    Returns
    -------
    table : pandas.DataFrame
        The events sorted by (time, original row order) with a fresh
        ``RangeIndex``, the original columns first, then the history columns,
        then the feature history columns. Integer item ids (and integer
        features) give nullable ``"Int64"`` columns with ``<NA>``; float
        features give ``"Float64"``, booleans ``"boolean"``; anything else gives
        ``object`` columns with ``None``.

    Raises
    ------
    ValueError
        If a column is missing, ``maxlen < 1``, ``min_history < 0``, the user or
        time column has missing values, ``item_features`` has duplicated item
        ids, or an output column already exists.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklattn.datasets import make_history_table
    >>> log = pd.DataFrame({"user_id": [1, 1, 1, 2],
    ...                     "item_id": [10, 11, 12, 10],
    ...                     "timestamp": [1, 2, 3, 2]})
    >>> make_history_table(log, maxlen=2)
       user_id  item_id  timestamp  hist_item_id_1  hist_item_id_2
    0        1       10          1            <NA>            <NA>
    1        1       11          2            <NA>              10
    2        2       10          2            <NA>            <NA>
    3        1       12          3              10              11
    """
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}.")
    missing_cols = [c for c in (user_col, item_col, time_col) if c not in ratings.columns]
    if missing_cols:
        raise ValueError(
            f"Column(s) {missing_cols} not found in ratings; available columns: "
            f"{list(ratings.columns)}."
        )
    if isinstance(maxlen, bool) or not isinstance(maxlen, int | np.integer) or maxlen < 1:
        raise ValueError(f"maxlen must be an integer >= 1, got {maxlen!r}.")
    if isinstance(min_history, bool) or not isinstance(min_history, int | np.integer):
        raise ValueError(f"min_history must be an integer >= 0, got {min_history!r}.")
    if min_history < 0:
        raise ValueError(f"min_history must be an integer >= 0, got {min_history!r}.")
    for col in (user_col, time_col):
        if ratings[col].isna().any():
            raise ValueError(f"Column {col!r} has missing values.")
    maxlen = int(maxlen)
    if prefix is None:
        prefix = f"hist_{item_col}"

    features: pd.DataFrame | None = None
    if item_features is not None:
        if not isinstance(item_features, pd.DataFrame):
            raise TypeError("item_features must be a pandas DataFrame.")
        features = item_features
        if item_col in features.columns:
            features = features.set_index(item_col)
        if features.index.has_duplicates:
            raise ValueError("item_features has duplicated item ids.")

    hist_names = [f"{prefix}_{j}" for j in range(1, maxlen + 1)]
    new_names = list(hist_names)
    if features is not None:
        for feat in features.columns:
            new_names.extend(f"hist_{feat}_{j}" for j in range(1, maxlen + 1))
    clash = sorted(set(new_names) & {str(c) for c in ratings.columns})
    dupes = len(new_names) != len(set(new_names))
    if clash or dupes:
        raise ValueError(
            f"Output column(s) {clash or 'with duplicated names'} would collide; choose "
            "another prefix or rename the columns."
        )

    # Global order: time, then original row order.
    frame = ratings.sort_values(time_col, kind="stable").reset_index(drop=True)
    n = len(frame)

    # Per-user order (stable, so it keeps the time order within each user).
    codes = pd.factorize(frame[user_col])[0]
    perm = np.argsort(codes, kind="stable")  # user-sorted position -> frame row
    sorted_codes = codes[perm]
    positions = np.arange(n)
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_codes[1:] != sorted_codes[:-1]
    first_of_group = np.maximum.accumulate(np.where(starts, positions, 0))
    rank_us = positions - first_of_group  # number of previous events of the user
    inv = np.empty(n, dtype=np.intp)
    inv[perm] = positions  # frame row -> user-sorted position

    keep = np.flatnonzero(rank_us[inv] >= min_history) if min_history > 0 else positions
    rows = inv[keep]
    rows_rank = rank_us[rows]

    data, na, kind = _as_masked(frame[item_col])
    new_columns = _window_columns(data[perm], na[perm], kind, rows, rows_rank, hist_names)
    if features is not None:
        lookup_us = features.index.get_indexer(frame[item_col])[perm]
        unknown_us = lookup_us < 0
        safe_us = np.where(unknown_us, 0, lookup_us)
        for feat in features.columns:
            data, na, kind = _as_masked(features[feat])
            names = [f"hist_{feat}_{j}" for j in range(1, maxlen + 1)]
            new_columns.update(
                _window_columns(
                    data[safe_us], na[safe_us] | unknown_us, kind, rows, rows_rank, names
                )
            )

    out = pd.concat(
        [
            frame.take(keep).reset_index(drop=True),
            pd.DataFrame(new_columns, index=pd.RangeIndex(len(keep))),
        ],
        axis=1,
    )
    return out
