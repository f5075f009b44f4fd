"""Download, verify, extract and cache a data set archive.

Generic plumbing for the ``fetch_*`` loaders: the cache folder, a download that
never leaves a partial file behind, SHA-256 checks and a zip extraction that
refuses members outside the destination.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["DatasetIntegrityError"]


class DatasetIntegrityError(OSError, ValueError):
    """Raised when a downloaded archive fails verification or is unsafe to extract.

    It derives from both :class:`OSError` and :class:`ValueError`.

    Examples
    --------
    >>> issubclass(DatasetIntegrityError, OSError)
    True
    """


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


def _fetch_archive(
    url: str,
    home: Path,
    *,
    archive_name: str,
    folder_name: str,
    marker_file: str,
    description: str,
    sha256: str | None = None,
    marker_sha256: str | None = None,
) -> Path:
    """Download a zip archive, verify it and install its data folder in ``home``.

    The archive is downloaded to ``home / archive_name`` and extracted into a
    temporary folder of ``home``; the folder holding ``marker_file`` (the
    extraction root or one of its subfolders) is then renamed to
    ``home / folder_name``. When ``sha256`` is given the archive must have that
    digest; otherwise, when ``marker_sha256`` is given, ``marker_file`` must have
    it. On any failure the archive and the temporary folder are deleted. The
    archive is deleted after a successful install as well.

    ``description`` names the data set in error messages (e.g.
    ``"MovieLens 100k"``).

    Returns
    -------
    target : pathlib.Path
        ``home / folder_name``.

    Raises
    ------
    OSError
        If the download fails. A failed checksum, an unsafe archive member or an
        archive without ``marker_file`` raises :class:`DatasetIntegrityError`.
    """
    target = home / folder_name
    home.mkdir(parents=True, exist_ok=True)
    archive = home / archive_name
    _download(url, archive)
    workdir = Path(tempfile.mkdtemp(prefix=f".{folder_name}.", suffix=".tmp", dir=home))
    try:
        if sha256 is not None:
            actual = _sha256(archive)
            if actual.lower() != sha256.strip().lower():
                raise DatasetIntegrityError(
                    f"SHA-256 mismatch for {archive_name} downloaded from "
                    f"{url}: expected {sha256.strip().lower()}, "
                    f"got {actual}. The download was deleted."
                )
        _safe_extract(archive, workdir)
        found = _find_dataset_folder(workdir, marker_file)
        if found is None:
            raise DatasetIntegrityError(
                f"The archive {archive_name} holds no {marker_file}; it is not {description}."
            )
        expected = marker_sha256 if sha256 is None else None
        if expected is not None:
            actual = _sha256(found / marker_file)
            if actual != expected:
                raise DatasetIntegrityError(
                    f"SHA-256 mismatch for {marker_file} of {description}: expected "
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
    return target
