"""SG-Bench base malicious instructions (a Safety source); ``safety_type`` is normalised to e.g. "O6: Malicious Use"."""

from __future__ import annotations

import re

from .pillars import Pillar
from .readers import RowErrors, read_json_list, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

FILE = "sg_bench/malicious_instruction.json"
SOURCE = "sg_bench"
_TYPE = re.compile(r"\[\s*(O\d+)\s*:\s*([^\]\n]+?)\s*\]")

PILLARS: dict[str, Pillar] = {
    "O1: Toxic content": Pillar.OTHER,
    "O2: Stereotyping & Bias": Pillar.BIAS,
    "O3: Misinformation": Pillar.OTHER,
    "O4: Privacy leak & Privacy infringement": Pillar.PRIVACY,
    "O5: Dissemination of dangerous information": Pillar.SAFETY,
    "O6: Malicious Use": Pillar.OTHER,
}


def normalise_safety_type(raw: str) -> str | None:
    """The first ``[On: Name]`` in the labeller's free text, as ``"On: Name"``; None when absent."""
    match = _TYPE.search(raw or "")
    return f"{match.group(1)}: {match.group(2)}" if match else None


def load(store: DataStore, strict: bool = False) -> SourceLoad:
    """category = normalised safety_type; meta keeps the raw label and the finer categories when present."""
    report = SourceReport(SOURCE, [FILE])
    errors = RowErrors(report, FILE, strict)
    records = []
    for i, item in enumerate(read_json_list(store.path(FILE), FILE)):
        report.rows += 1
        if not isinstance(item, dict) or text(item.get("query")) is None:
            errors.bad(i, "no query")
            continue
        category = normalise_safety_type(item.get("safety_type") or "")
        if category is None:
            errors.bad(i, f"safety_type without an [On: ...] label: {item.get('safety_type')!r}")
            continue
        meta = {"safety_type_raw": item.get("safety_type"), "related_topics": item.get("related_topics")}
        meta.update({k: item[k] for k in ("1-category", "2-category", "3-category") if k in item})
        records.append(PromptRecord(f"{SOURCE}:{i:04d}", text(item["query"]), Pillar.OTHER.value, SOURCE, category, meta))
    return SourceLoad(records, report)
