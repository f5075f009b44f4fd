"""Tests of the MovieLens loaders and of ``make_history_table``."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sklattn.datasets
import sklattn.preprocessing
from sklattn.datasets import fetch_movielens, load_movielens, make_history_table
from sklattn.datasets._fetch import DatasetIntegrityError

REAL_ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"

GENRES_100K = [
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
]


def _flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES_100K)


# --------------------------------------------------------------------------
# Fixture folders
# --------------------------------------------------------------------------


def write_ml100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(
        "1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n3\t3\t1\t889237455\n"
    )
    items = [
        f"1|Toy Story (1995)|01-Jan-1995||http://x/1|{_flags('Animation', 'Comedy')}",
        f"2|Café au lait (1994)|01-Jan-1994||http://x/2|{_flags('Comedy', 'Romance')}",
        f"3|unknown|||http://x/3|{_flags()}",
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "u.user").write_text(
        "1|24|M|technician|85711\n2|53|F|other|01002\n3|23|M|writer|T8H1N\n"
    )
    (folder / "u.genre").write_text(
        "".join(f"{name}|{i}\n" for i, name in enumerate(GENRES_100K)) + "\n"
    )
    return folder


def write_ml1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    )
    movies = [
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama",
        "661::Amélie (2001)::Comedy|Romance",
        "260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Sci-Fi",
    ]
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    (folder / "users.dat").write_text(
        "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::0::02460\n"
    )
    return folder


@pytest.fixture
def ml100k_dir(tmp_path: Path) -> Path:
    return write_ml100k(tmp_path / "src" / "ml-100k")


@pytest.fixture
def ml1m_dir(tmp_path: Path) -> Path:
    return write_ml1m(tmp_path / "src" / "ml-1m")


# --------------------------------------------------------------------------
# load_movielens
# --------------------------------------------------------------------------


def test_load_movielens_100k_fixture(ml100k_dir: Path) -> None:
    data = load_movielens(ml100k_dir)
    assert data.variant == "100k"
    assert isinstance(data.DESCR, str) and "100k" in data.DESCR

    ratings = data.ratings
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert all(dtype == np.int64 for dtype in ratings.dtypes)
    assert ratings["timestamp"].tolist()[0] == 874965758
    assert len(ratings) == 4

    items = data.movies
    assert list(items.columns) == ["item_id", "title", "genres", "genre"]
    assert items["item_id"].dtype == np.int64
    assert items["title"].tolist()[1] == "Café au lait (1994)"
    assert items["genres"].tolist() == [["Animation", "Comedy"], ["Comedy", "Romance"], []]
    assert items["genre"].tolist() == ["Animation", "Comedy", "unknown"]

    users = data.users
    assert list(users.columns) == ["user_id", "gender", "age", "occupation", "zip_code"]
    assert users["user_id"].dtype == np.int64
    assert users["age"].dtype == np.int64
    assert users["occupation"].tolist() == ["technician", "other", "writer"]
    assert users["zip_code"].tolist() == ["85711", "01002", "T8H1N"]
    assert users["gender"].tolist() == ["M", "F", "M"]


def test_load_movielens_1m_fixture(ml1m_dir: Path) -> None:
    data = load_movielens(str(ml1m_dir))
    assert data.variant == "1m"

    ratings = data.ratings
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert all(dtype == np.int64 for dtype in ratings.dtypes)
    assert ratings.values.tolist() == [
        [1, 1193, 5, 978300760],
        [1, 661, 3, 978302109],
        [2, 1193, 4, 978298413],
    ]

    items = data.movies
    assert items["item_id"].tolist() == [1193, 661, 260]
    assert items["title"].tolist() == [
        "One Flew Over the Cuckoo's Nest (1975)",
        "Amélie (2001)",
        "Star Wars: Episode IV - A New Hope (1977)",
    ]
    assert items["genres"].tolist() == [
        ["Drama"],
        ["Comedy", "Romance"],
        ["Action", "Adventure", "Sci-Fi"],
    ]
    assert items["genre"].tolist() == ["Drama", "Comedy", "Action"]

    users = data.users
    assert list(users.columns) == ["user_id", "gender", "age", "occupation", "zip_code"]
    assert users["age"].tolist() == [1, 56, 25]
    assert users["occupation"].tolist() == ["K-12 student", "self-employed", "other"]
    assert users["zip_code"].tolist() == ["48067", "70072", "02460"]


def test_load_movielens_missing_layout(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t1\t5\t1\n")
    with pytest.raises(FileNotFoundError) as excinfo:
        load_movielens(tmp_path)
    message = str(excinfo.value)
    assert str(tmp_path) in message
    for name in ("u.item", "u.user", "ratings.dat", "movies.dat", "users.dat"):
        assert name in message
    with pytest.raises(FileNotFoundError):
        load_movielens(tmp_path / "does-not-exist")


def test_load_movielens_real_100k() -> None:
    if not (REAL_ML100K / "u.data").is_file():
        pytest.skip(f"MovieLens 100k not found at {REAL_ML100K}")
    data = load_movielens(REAL_ML100K)
    assert data.variant == "100k"
    assert data.ratings.shape == (100000, 4)
    assert data.ratings["user_id"].nunique() == 943
    assert data.ratings["item_id"].nunique() == 1682
    assert len(data.users) == 943
    assert len(data.movies) == 1682
    assert data.movies["genres"].map(len).min() >= 1
    assert set(data.users["occupation"]) >= {"technician", "writer", "other"}


# --------------------------------------------------------------------------
# fetch_movielens
# --------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str, http.server.ThreadingHTTPServer]]:
    """Serve a folder over HTTP on 127.0.0.1; yields (folder, base URL, server)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _zip_folder(folder: Path, archive: Path, root: str = "ml-100k") -> str:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"{root}/{path.name}")
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def test_fetch_downloads_then_uses_cache(
    ml100k_dir: Path, http_dir: tuple[Path, str, http.server.ThreadingHTTPServer], tmp_path: Path
) -> None:
    www, base, server = http_dir
    digest = _zip_folder(ml100k_dir, www / "ml-100k.zip")
    cache = tmp_path / "cache"
    url = base + "ml-100k.zip"

    data = fetch_movielens(url=url, data_home=cache, sha256=digest)
    assert data.variant == "100k"
    assert data.ratings.shape == (4, 4)
    assert data.movies["title"].tolist()[1] == "Café au lait (1994)"
    # Only the extracted folder is left: no archive, no temporary files.
    assert [p.name for p in cache.iterdir()] == ["ml-100k"]

    server.shutdown()
    server.server_close()
    again = fetch_movielens("100k", url=url, data_home=cache, sha256=digest)
    pd.testing.assert_frame_equal(again.ratings, data.ratings)
    cached = fetch_movielens(data_home=cache, download_if_missing=False)
    assert cached.ratings.shape == (4, 4)


def test_fetch_wrong_checksum_leaves_nothing(
    ml100k_dir: Path, http_dir: tuple[Path, str, http.server.ThreadingHTTPServer], tmp_path: Path
) -> None:
    www, base, _ = http_dir
    digest = _zip_folder(ml100k_dir, www / "ml-100k.zip")
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(OSError) as excinfo:
        fetch_movielens(url=base + "ml-100k.zip", data_home=cache, sha256=wrong)
    assert isinstance(excinfo.value, ValueError)
    assert digest in str(excinfo.value) and wrong in str(excinfo.value)
    assert list(cache.iterdir()) == []


def test_fetch_builtin_ratings_checksum(
    ml100k_dir: Path, http_dir: tuple[Path, str, http.server.ThreadingHTTPServer], tmp_path: Path
) -> None:
    # Without an explicit sha256, the u.data of the fixture fails the known digest.
    www, base, _ = http_dir
    _zip_folder(ml100k_dir, www / "ml-100k.zip")
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="u.data"):
        fetch_movielens(url=base + "ml-100k.zip", data_home=cache)
    assert list(cache.iterdir()) == []


def test_fetch_1m_without_known_checksum(
    ml1m_dir: Path, http_dir: tuple[Path, str, http.server.ThreadingHTTPServer], tmp_path: Path
) -> None:
    www, base, _ = http_dir
    _zip_folder(ml1m_dir, www / "ml-1m.zip", root="ml-1m")
    data = fetch_movielens("1m", url=base + "ml-1m.zip", data_home=tmp_path / "cache")
    assert data.variant == "1m"
    assert (tmp_path / "cache" / "ml-1m" / "ratings.dat").is_file()


def test_fetch_rejects_unsafe_members(
    http_dir: tuple[Path, str, http.server.ThreadingHTTPServer], tmp_path: Path
) -> None:
    www, base, _ = http_dir
    cache = tmp_path / "deep" / "cache"
    for member in ("../evil.txt", "/abs.txt", "ml-100k/../../evil.txt"):
        archive = www / "ml-100k.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("ml-100k/u.data", "1\t1\t5\t1\n")
            zf.writestr(member, "pwned")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        with pytest.raises(OSError, match="evil|abs"):
            fetch_movielens(url=base + "ml-100k.zip", data_home=cache, sha256=digest)
        assert list(cache.iterdir()) == []
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_fetch_rejects_non_zip(
    http_dir: tuple[Path, str, http.server.ThreadingHTTPServer], tmp_path: Path
) -> None:
    www, base, _ = http_dir
    (www / "ml-1m.zip").write_text("<html>not a zip</html>")
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="zip"):
        fetch_movielens("1m", url=base + "ml-1m.zip", data_home=cache)
    assert list(cache.iterdir()) == []


def test_fetch_no_download(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="download_if_missing"):
        fetch_movielens(data_home=tmp_path, download_if_missing=False)


def test_fetch_unknown_variant(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="100k.*1m"):
        fetch_movielens("20m", data_home=tmp_path)


def test_fetch_uses_env_cache(
    ml100k_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "env_home"
    shutil.copytree(ml100k_dir, home / "ml-100k")
    monkeypatch.setenv("SKLATTN_DATA", str(home))
    # Cached: no network access, so an unusable URL does not matter.
    data = fetch_movielens(url="http://127.0.0.1:9/none.zip")
    assert data.ratings.shape == (4, 4)


# --------------------------------------------------------------------------
# make_history_table
# --------------------------------------------------------------------------


@pytest.fixture
def log() -> pd.DataFrame:
    # Rows deliberately out of time order, with ties inside one user.
    return pd.DataFrame(
        {
            "user_id": [1, 2, 1, 1, 2, 1, 2],
            "item_id": [10, 20, 11, 12, 21, 13, 22],
            "timestamp": [5, 1, 3, 5, 2, 9, 2],
            "rating": [4, 3, 5, 1, 2, 3, 4],
        }
    )


NA = pd.NA


def _window(table: pd.DataFrame, prefix: str, maxlen: int) -> list[list[object]]:
    cols = [f"{prefix}_{j}" for j in range(1, maxlen + 1)]
    return [[None if pd.isna(v) else v for v in row] for row in table[cols].to_numpy(object)]


def test_history_table_windows(log: pd.DataFrame) -> None:
    table = make_history_table(log, maxlen=3)
    # Global order by (time, original row) -> original rows 1, 4, 6, 2, 0, 3, 5.
    assert table["item_id"].tolist() == [20, 21, 22, 11, 10, 12, 13]
    assert table["rating"].tolist() == [3, 2, 4, 5, 4, 1, 3]
    assert isinstance(table.index, pd.RangeIndex) and table.index[0] == 0
    assert list(table.columns) == [
        "user_id",
        "item_id",
        "timestamp",
        "rating",
        "hist_item_id_1",
        "hist_item_id_2",
        "hist_item_id_3",
    ]
    for j in (1, 2, 3):
        assert table[f"hist_item_id_{j}"].dtype == "Int64"
    assert _window(table, "hist_item_id", 3) == [
        [None, None, None],
        [None, None, 20],
        [None, 20, 21],  # same timestamp as 21, later in the input: 21 is before it
        [None, None, None],
        [None, None, 11],
        [None, 11, 10],  # tie at t=5: item 10 came first in the input
        [11, 10, 12],  # highest number = most recent
    ]
    assert table.loc[0, "hist_item_id_3"] is NA

    short = make_history_table(log, maxlen=2)
    assert _window(short, "hist_item_id", 2)[-1] == [10, 12]
    # The input is not modified.
    assert list(log.columns) == ["user_id", "item_id", "timestamp", "rating"]


def test_history_table_custom_columns_and_object_items(log: pd.DataFrame) -> None:
    renamed = log.rename(columns={"user_id": "u", "item_id": "it", "timestamp": "t"})
    renamed["it"] = "m" + renamed["it"].astype(str)
    table = make_history_table(
        renamed, user_col="u", item_col="it", time_col="t", maxlen=2, prefix="prev"
    )
    assert table["prev_1"].dtype == object and table["prev_2"].dtype == object
    assert table["prev_1"].tolist()[:3] == [None, None, "m20"]
    assert _window(table, "prev", 2)[-1] == ["m10", "m12"]
    assert not any(c.startswith("hist_") for c in table.columns)


def test_history_table_item_features(log: pd.DataFrame) -> None:
    features = pd.DataFrame(
        {
            "genre": ["Drama", "Comedy", "Action", "Horror", "War"],
            "year": [1990, 1991, 1992, 1993, 1994],
        },
        index=pd.Index([10, 11, 12, 20, 21], name="item_id"),
    )  # item 13 and 22 unknown
    table = make_history_table(log, maxlen=3, item_features=features)
    assert [f"hist_genre_{j}" for j in (1, 2, 3)] == [c for c in table.columns if "genre" in c]
    assert _window(table, "hist_genre", 3) == [
        [None, None, None],
        [None, None, "Horror"],
        [None, "Horror", "War"],
        [None, None, None],
        [None, None, "Comedy"],
        [None, "Comedy", "Drama"],
        ["Comedy", "Drama", "Action"],
    ]
    assert table["hist_genre_3"].dtype == object
    assert table["hist_year_3"].dtype == "Int64"
    assert _window(table, "hist_year", 3)[-1] == [1991, 1990, 1992]

    # A column named like item_col works as well; unknown items give missing values.
    as_column = features.reset_index()
    other = make_history_table(log.iloc[[6, 4]], maxlen=2, item_features=as_column)
    assert _window(other, "hist_genre", 2) == [[None, None], [None, None]]
    assert _window(other, "hist_item_id", 2) == [[None, None], [None, 22]]


def test_history_table_min_history(log: pd.DataFrame) -> None:
    table = make_history_table(log, maxlen=3, min_history=2)
    assert table["item_id"].tolist() == [22, 12, 13]
    assert isinstance(table.index, pd.RangeIndex) and list(table.index) == [0, 1, 2]
    assert _window(table, "hist_item_id", 3) == [[None, 20, 21], [None, 11, 10], [11, 10, 12]]
    assert len(make_history_table(log, maxlen=1, min_history=10)) == 0


def test_history_table_errors(log: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        make_history_table(log.drop(columns="timestamp"))
    with pytest.raises(ValueError, match="missing_user"):
        make_history_table(log, user_col="missing_user")
    for bad in (0, -1):
        with pytest.raises(ValueError, match="maxlen"):
            make_history_table(log, maxlen=bad)
    with pytest.raises(ValueError, match="min_history"):
        make_history_table(log, min_history=-1)
    once = make_history_table(log, maxlen=2)
    with pytest.raises(ValueError, match="collide"):
        make_history_table(once, maxlen=2)


def test_history_table_validates_parameters(log: pd.DataFrame) -> None:
    for value in (True, False):
        with pytest.raises(ValueError, match="maxlen"):
            make_history_table(log, maxlen=value)
        with pytest.raises(ValueError, match="min_history"):
            make_history_table(log, min_history=value)
    for bad in (-1, -5):
        with pytest.raises(ValueError, match="min_history"):
            make_history_table(log, min_history=bad)
    for bad in (2.0, "3", None):
        with pytest.raises(ValueError, match="maxlen"):
            make_history_table(log, maxlen=bad)
    for bad in (log.to_dict("list"), log.to_numpy(), None):
        with pytest.raises(TypeError, match="ratings"):
            make_history_table(bad)
    with pytest.raises(TypeError, match="item_features"):
        make_history_table(log, item_features={10: "Drama"})
    with pytest.raises(TypeError, match="prefix"):
        make_history_table(log, prefix=3)
    # numpy integers are still accepted.
    table = make_history_table(log, maxlen=np.int64(2), min_history=np.int32(1))
    assert table.equals(make_history_table(log, maxlen=2, min_history=1))


def test_history_table_importable_from_preprocessing_and_datasets() -> None:
    from sklattn.preprocessing import make_history_table as from_preprocessing

    assert from_preprocessing is make_history_table
    assert sklattn.datasets.make_history_table is sklattn.preprocessing.make_history_table
    assert "make_history_table" in sklattn.datasets.__all__
    assert "make_history_table" in sklattn.preprocessing.__all__


def test_dataset_integrity_error_importable() -> None:
    from sklattn.datasets._movielens import DatasetIntegrityError as from_movielens

    assert from_movielens is DatasetIntegrityError
    assert issubclass(DatasetIntegrityError, OSError)
    assert issubclass(DatasetIntegrityError, ValueError)


def test_history_table_empty() -> None:
    empty = pd.DataFrame({"user_id": [], "item_id": [], "timestamp": []}, dtype=np.int64)
    table = make_history_table(empty, maxlen=2)
    assert table.shape == (0, 5)
    assert table["hist_item_id_2"].dtype == "Int64"


def _brute_force_window(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, row: int, maxlen: int
) -> list[object]:
    """Previous items of ``row`` by plain Python: strictly before in (time, row)."""
    before = [
        k for k in range(len(users)) if users[k] == users[row] and (times[k], k) < (times[row], row)
    ]
    before.sort(key=lambda k: (times[k], k))
    window = [int(items[k]) for k in before[-maxlen:]]
    return [None] * (maxlen - len(window)) + window


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 9), st.integers(0, 6)),
        min_size=0,
        max_size=25,
    ),
    maxlen=st.integers(1, 5),
    min_history=st.integers(0, 3),
)
def test_history_table_matches_brute_force(
    events: list[tuple[int, int, int]], maxlen: int, min_history: int
) -> None:
    frame = pd.DataFrame(events, columns=["user_id", "item_id", "timestamp"], dtype=np.int64)
    frame["row"] = np.arange(len(frame))
    # Items 0..6 have a feature (item * 100); items 7..9 are unknown.
    features = pd.DataFrame({"score": np.arange(7) * 100}, index=np.arange(7))
    table = make_history_table(
        frame, maxlen=maxlen, min_history=min_history, item_features=features
    )
    users, items, times = (frame[c].to_numpy() for c in ("user_id", "item_id", "timestamp"))
    expected_rows = [
        row
        for _, row in sorted(zip(times, range(len(frame)), strict=True))
        if sum(
            1
            for k in range(len(frame))
            if users[k] == users[row] and (times[k], k) < (times[row], row)
        )
        >= min_history
    ]
    assert table["row"].tolist() == expected_rows
    assert isinstance(table.index, pd.RangeIndex)
    windows = _window(table, "hist_item_id", maxlen)
    scores = _window(table, "hist_score", maxlen)
    for out_row, row in enumerate(table["row"]):
        expected = _brute_force_window(users, items, times, row, maxlen)
        assert windows[out_row] == expected
        assert scores[out_row] == [
            None if item is None or item >= 7 else item * 100 for item in expected
        ]


def test_history_table_real_100k() -> None:
    if not (REAL_ML100K / "u.data").is_file():
        pytest.skip(f"MovieLens 100k not found at {REAL_ML100K}")
    data = load_movielens(REAL_ML100K)
    ratings = data.ratings.copy()
    ratings["row"] = np.arange(len(ratings))
    genres = data.movies[["item_id", "genre"]]

    start = time.perf_counter()
    table = make_history_table(ratings, maxlen=20, item_features=genres)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"make_history_table took {elapsed:.2f} s"
    assert table.shape == (100000, 5 + 20 + 20)
    assert table["timestamp"].is_monotonic_increasing

    users = ratings["user_id"].to_numpy()
    items = ratings["item_id"].to_numpy()
    times = ratings["timestamp"].to_numpy()
    windows = _window(table, "hist_item_id", 20)
    genre_of = dict(zip(genres["item_id"], genres["genre"], strict=True))
    rng = np.random.default_rng(0)
    for out_row in rng.choice(len(table), size=25, replace=False):
        row = int(table["row"].iloc[out_row])
        # Restrict the brute force to the user's own rows to keep it fast.
        own = np.flatnonzero(users == users[row])
        expected = [
            int(items[k])
            for k in sorted(
                (k for k in own if (times[k], k) < (times[row], row)),
                key=lambda k: (times[k], k),
            )[-20:]
        ]
        expected = [None] * (20 - len(expected)) + expected
        assert windows[out_row] == expected
        assert _window(table.iloc[[out_row]], "hist_genre", 20)[0] == [
            None if item is None else genre_of[item] for item in expected
        ]
