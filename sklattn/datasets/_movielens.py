"""MovieLens loaders.

The MovieLens data sets are distributed by GroupLens under their own terms of
use; they are never shipped with this package.  :func:`load_movielens` reads a
local copy and :func:`fetch_movielens` downloads and caches the official archive.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._fetch import DatasetIntegrityError, _data_home, _fetch_archive

__all__ = [
    "DatasetIntegrityError",
    "fetch_movielens",
    "load_movielens",
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

    _fetch_archive(
        url or BASE_URL + archive_name,
        home,
        archive_name=archive_name,
        folder_name=folder_name,
        marker_file=ratings_file,
        description=f"MovieLens {key}",
        sha256=sha256,
        marker_sha256=RATINGS_SHA256.get(key),
    )
    return load_movielens(target)
