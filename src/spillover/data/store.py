"""Find a dataset file: user cache, then a mirror directory, then a download; always checksum it."""

from __future__ import annotations

import os
from pathlib import Path

from ..io import InputError, atomic_path, sha256_file
from .registry import FILES, FileInfo

#: Environment variable naming a dataset mirror directory.
DATA_DIR_ENV = "SPILLOVER_DATA_DIR"


class DatasetError(InputError):
    """A dataset file is missing, unreadable or fails its checksum."""


def default_cache_dir() -> Path:
    from ..models import cache_root

    return cache_root() / "datasets"


class DataStore:
    """Resolves registry file names (e.g. ``"bbq/Religion.jsonl"``) to verified local paths.

    Lookup order: ``cache_dir`` (the user cache), ``data_dir`` (a mirror; defaults to
    ``$SPILLOVER_DATA_DIR``), then the canonical URL when ``online``; a download is written into
    the cache. Every file found is checked against its registered sha256 (hashes are remembered
    per path, size and mtime, so repeated lookups do not re-read the file).
    """

    def __init__(self, data_dir: Path | str | None = None, cache_dir: Path | str | None = None,
                 online: bool = True, files: dict[str, FileInfo] | None = None):
        env = os.environ.get(DATA_DIR_ENV)
        self.data_dir = Path(data_dir) if data_dir is not None else (Path(env) if env else None)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.online = online
        self.files = files if files is not None else FILES
        self._verified: dict[tuple[str, int, int], str] = {}

    def info(self, name: str) -> FileInfo:
        try:
            return self.files[name]
        except KeyError:
            raise DatasetError(f"{name}: not a registered dataset file") from None

    def path(self, name: str) -> Path:
        """The verified local path of ``name``; DatasetError says where it looked and the URL."""
        info = self.info(name)
        looked: list[str] = []
        for root in (self.cache_dir, self.data_dir):
            if root is None:
                continue
            candidate = root / name
            looked.append(str(candidate))
            if candidate.is_file():
                self._check(candidate, name, info)
                return candidate
        if self.online:
            target = self.cache_dir / name
            self._download(info.url, target, name)
            try:
                self._check(target, name, info)
            except DatasetError:
                target.unlink()  # never leave unverified bytes in the cache
                raise
            return target
        raise DatasetError(
            f"{name}: file not found; looked in {', '.join(looked) or 'no directory'}; "
            f"download it from {info.url} or pass --data-dir (or set {DATA_DIR_ENV}) to a mirror")

    def sha256(self, name: str) -> str:
        return self.info(name).sha256

    def _check(self, path: Path, name: str, info: FileInfo) -> None:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        digest = self._verified.get(key) or sha256_file(path)
        if digest != info.sha256:
            raise DatasetError(
                f"{name}: checksum mismatch for {path} (sha256 {digest}, expected {info.sha256}); "
                f"delete or replace it with the original from {info.url}")
        self._verified[key] = digest

    @staticmethod
    def _download(url: str, target: Path, name: str) -> None:
        import httpx

        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as resp:
                resp.raise_for_status()
                with atomic_path(target) as tmp, tmp.open("wb") as f:
                    for chunk in resp.iter_bytes():
                        f.write(chunk)
        except httpx.HTTPError as e:
            raise DatasetError(f"{name}: not found locally and the download from {url} failed ({e})") from None

