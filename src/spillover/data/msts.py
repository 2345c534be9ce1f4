"""MSTS English text-only prompts (a Safety source): the unsafe meaning is fully in the text."""

from __future__ import annotations

from .pillars import Pillar
from .readers import RowErrors, read_csv_dicts, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

FILE = "msts/english_textonly.csv"
SOURCE = "msts"

#: hazard_category -> pillar, with hazard_subcategory overrides.
PILLARS: dict[str, Pillar] = {
    "Violent Crimes": Pillar.SAFETY,
    "Suicide & Self-Harm": Pillar.SAFETY,
    "Sex-Related Crimes": Pillar.SENSITIVE,
    "Non-Violent Crimes": Pillar.OTHER,
    "Other": Pillar.OTHER,
    "Gross behaviour": Pillar.SENSITIVE,
}


def load(store: DataStore, strict: bool = False) -> SourceLoad:
    """category = hazard_category, meta["subcategory"] = hazard_subcategory."""
    report = SourceReport(SOURCE, [FILE])
    errors = RowErrors(report, FILE, strict)
    records = []
    columns = ("hazard_category", "hazard_subcategory", "prompt_id", "prompt_text", "prompt_type")
    for i, row in enumerate(read_csv_dicts(store.path(FILE), FILE, columns)):
        report.rows += 1
        prompt = text(row.get("prompt_text"))
        if prompt is None:
            errors.bad(i, "empty prompt_text")
            continue
        records.append(PromptRecord(f"{SOURCE}:{i:04d}", prompt, Pillar.OTHER.value, SOURCE,
                                    text(row.get("hazard_category")), {
                                        "subcategory": text(row.get("hazard_subcategory")),
                                        "prompt_id": row.get("prompt_id"), "case_id": row.get("case_id"),
                                        "prompt_type": row.get("prompt_type")}))
    return SourceLoad(records, report)
