"""XSTest v2: 250 safe prompts that sound unsafe (over-refusal) and 200 unsafe contrast prompts."""

from __future__ import annotations

from ..domains import XSTEST
from .readers import RowErrors, read_csv_dicts, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

FILE = "xstest/xstest_prompts.csv"
SOURCE = "xstest"
XSTEST_UNSAFE = "xstest_unsafe"


def load(store: DataStore, strict: bool = False) -> SourceLoad:
    """label safe -> set "xstest", unsafe -> "xstest_unsafe"; category = the prompt type."""
    report = SourceReport(SOURCE, [FILE])
    errors = RowErrors(report, FILE, strict)
    records = []
    for i, row in enumerate(read_csv_dicts(store.path(FILE), FILE, ("id", "prompt", "type", "label"))):
        report.rows += 1
        prompt, label = text(row.get("prompt")), (row.get("label") or "").strip()
        if prompt is None or label not in ("safe", "unsafe"):
            errors.bad(i, "empty prompt" if prompt is None else f"label {label!r} is not safe/unsafe")
            continue
        records.append(PromptRecord(f"{SOURCE}:{i:04d}", prompt, XSTEST if label == "safe" else XSTEST_UNSAFE,
                                    SOURCE, text(row.get("type")), {
                                        "xstest_id": row.get("id"), "label": label,
                                        "focus": row.get("focus"), "note": row.get("note")}))
    return SourceLoad(records, report)
