"""Alpaca benign instructions: instructions only (alpaca.json) or with responses (alpaca_en_demo.json)."""

from __future__ import annotations

from .readers import RowErrors, read_json_list, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

BENIGN = "benign"
FILES = {"alpaca": "alpaca/alpaca.json", "alpaca_en_demo": "alpaca/alpaca_en_demo.json"}


def load(store: DataStore, source: str = "alpaca_en_demo", strict: bool = False) -> SourceLoad:
    """prompt = instruction (+ blank line + input when there is one); meta["response"] when the file has outputs."""
    if source not in FILES:
        raise ValueError(f"unknown Alpaca source {source!r}; valid: {', '.join(FILES)}")
    file = FILES[source]
    report = SourceReport(source, [file])
    errors = RowErrors(report, file, strict)
    records = []
    for i, item in enumerate(read_json_list(store.path(file), file)):
        report.rows += 1
        instruction = text(item.get("instruction")) if isinstance(item, dict) else None
        if instruction is None:
            errors.bad(i, "no instruction")
            continue
        extra = text(item.get("input"))
        meta = {}
        if "output" in item:
            response = text(item.get("output"))
            if response is None:
                errors.bad(i, "empty output")
                continue
            meta["response"] = response
        prompt = f"{instruction}\n\n{extra}" if extra else instruction
        records.append(PromptRecord(f"{source}:{i:05d}", prompt, BENIGN, source, None, meta))
    return SourceLoad(records, report)
