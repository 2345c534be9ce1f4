"""The typed prompt record every loader returns, and the per-source load report."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

log = logging.getLogger("spillover.data")


@dataclass(frozen=True)
class PromptRecord:
    """One prompt of the suite.

    ``id`` is stable and unique (``"<source>:<row>"``, 0-based data row of the file); ``set`` is a
    Domain value or one of ``xstest``, ``xstest_unsafe``, ``mmlu``, ``benign`` (loaders of the
    pillar-classified sources say ``other`` until the suite assigns a domain); ``category`` is the
    source's own category; ``meta`` holds source-specific fields.
    """

    id: str
    prompt: str
    set: str
    source: str
    category: str | None = None
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PromptRecord:
        return cls(id=str(d["id"]), prompt=str(d["prompt"]), set=str(d["set"]), source=str(d["source"]),
                   category=d.get("category"), meta=dict(d.get("meta") or {}))


@dataclass
class SourceReport:
    """What happened to every data row of a source: loaded, or skipped with the reason."""

    source: str
    files: list[str]
    rows: int = 0
    skipped: list[dict] = field(default_factory=list)   # {"file", "row", "reason"}

    @property
    def loaded(self) -> int:
        return self.rows - len(self.skipped)

    def skip(self, file: str, row: int, reason: str) -> None:
        """Record a malformed row (``row`` is 1-based among the file's data rows)."""
        self.skipped.append({"file": file, "row": row, "reason": reason})

    def warn_skipped(self) -> None:
        """Log one warning per reason: how many rows were skipped and which."""
        by_reason: dict[tuple[str, str], list[int]] = {}
        for s in self.skipped:
            by_reason.setdefault((s["file"], s["reason"]), []).append(s["row"])
        for (file, reason), rows in by_reason.items():
            shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
            log.warning("%s: skipped %d row(s) (%s): rows %s", file, len(rows), reason, shown)

    def to_dict(self) -> dict:
        return {"source": self.source, "files": self.files, "rows": self.rows, "loaded": self.loaded,
                "skipped": len(self.skipped), "skipped_rows": self.skipped}


@dataclass
class SourceLoad:
    """A loader's result: the records it built and its report."""

    records: list[PromptRecord]
    report: SourceReport

    def __post_init__(self) -> None:
        self.report.warn_skipped()
