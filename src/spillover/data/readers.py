"""Raw file readers shared by the source loaders; file-level problems raise, row-level ones are reported."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .records import SourceReport
from .store import DatasetError


class RowErrors:
    """Handles a malformed row of ``file``: an error naming file and row (``strict``) or a counted skip."""

    def __init__(self, report: SourceReport, file: str, strict: bool):
        self.report, self.file, self.strict = report, file, strict

    def bad(self, index: int, reason: str) -> None:
        """``index`` is the 0-based data row; messages use 1-based row numbers."""
        if self.strict:
            raise DatasetError(f"{self.file}, row {index + 1}: {reason}")
        self.report.skip(self.file, index + 1, reason)


def read_json_list(path: Path, name: str) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{name}: invalid JSON ({e})") from None
    if not isinstance(data, list):
        raise DatasetError(f"{name}: expected a JSON list, got {type(data).__name__}")
    return data


def read_jsonl_rows(path: Path, name: str) -> list[Any]:
    """Every non-blank line parsed; a line that is not JSON becomes a ``ValueError`` in its place."""
    out: list[Any] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                out.append(ValueError(f"invalid JSON ({e.msg})"))
    return out


def read_csv_dicts(path: Path, name: str, columns: tuple[str, ...]) -> list[dict[str, str | None]]:
    """CSV rows as dicts; the header must hold ``columns``. A short row has None for missing cells."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{name}: missing column(s) {', '.join(missing)} in header {reader.fieldnames}")
        return list(reader)


def read_csv_lists(path: Path) -> list[list[str]]:
    """CSV rows without a header."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def read_lines(path: Path) -> list[str]:
    """Non-blank lines (trailing newline removed)."""
    return [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def text(value: Any) -> str | None:
    """A non-empty stripped string, or None."""
    return value.strip() if isinstance(value, str) and value.strip() else None
