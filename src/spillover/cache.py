"""An append-only JSONL key-value cache shared by responses and judgments.

Each line is ``{"key": ..., "value": ...}``. Lines are flushed as soon as they are added, so a
killed run loses at most the work in flight; a torn last line (crash mid-write) is skipped.
Appends hold an exclusive ``flock`` on the file, so workers sharing a study never interleave lines.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from .io import stable_hash


def cache_key(*parts: Any) -> str:
    """A stable key for any JSON-serialisable parts."""
    return stable_hash(list(parts))


class JsonlCache:
    """A dict-like cache persisted to ``path`` (None keeps it in memory only)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._data: dict[str, Any] = {}
        if self.path is not None and self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self._data[row["key"]] = row["value"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a torn line from an interrupted write

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def put_many(self, items: dict[str, Any]) -> None:
        """Store items and append them to disk in one flushed write."""
        self._data.update(items)
        if self.path is None or not items:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        blob = "".join(json.dumps({"key": k, "value": v}, ensure_ascii=False) + "\n" for k, v in items.items())
        data = blob.encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock

    def put(self, key: str, value: Any) -> None:
        self.put_many({key: value})
