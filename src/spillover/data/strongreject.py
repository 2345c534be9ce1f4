"""StrongREJECT: 313 forbidden prompts in 6 categories (a Safety source)."""

from __future__ import annotations

from .pillars import Pillar
from .readers import RowErrors, read_csv_dicts, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

FILE = "strongreject/strongreject_dataset.csv"
SOURCE = "strongreject"

PILLARS: dict[str, Pillar] = {
    "Violence": Pillar.SAFETY,
    "Illegal goods and services": Pillar.SAFETY,
    "Sexual content": Pillar.SENSITIVE,
    "Hate, harassment and discrimination": Pillar.BIAS,
    "Non-violent crimes": Pillar.OTHER,
    "Disinformation and deception": Pillar.OTHER,
}


def load(store: DataStore, strict: bool = False) -> SourceLoad:
    report = SourceReport(SOURCE, [FILE])
    errors = RowErrors(report, FILE, strict)
    records = []
    for i, row in enumerate(read_csv_dicts(store.path(FILE), FILE, ("category", "source", "forbidden_prompt"))):
        report.rows += 1
        prompt = text(row.get("forbidden_prompt"))
        if prompt is None:
            errors.bad(i, "empty forbidden_prompt")
            continue
        records.append(PromptRecord(f"{SOURCE}:{i:04d}", prompt, Pillar.OTHER.value, SOURCE,
                                    text(row.get("category")), {"origin": row.get("source")}))
    return SourceLoad(records, report)
