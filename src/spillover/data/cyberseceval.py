"""CyberSecEval: MITRE ATT&CK helpfulness prompts and Interpreter Abuse prompts (Cybersecurity)."""

from __future__ import annotations

from ..domains import Domain
from .readers import RowErrors, read_json_list, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

MITRE_FILE = "cyberseceval/mitre_benchmark_100_per_category.json"
INTERPRETER_FILE = "cyberseceval/interpreter.json"


def load_mitre(store: DataStore, strict: bool = False) -> SourceLoad:
    """One record per item with a ``user_prompt``; ``meta["system_prompt"]`` keeps the benchmark's system turn."""
    source = "cyberseceval_mitre"
    report = SourceReport(source, [MITRE_FILE])
    errors = RowErrors(report, MITRE_FILE, strict)
    records = []
    for i, item in enumerate(read_json_list(store.path(MITRE_FILE), MITRE_FILE)):
        report.rows += 1
        prompt = text(item.get("user_prompt")) if isinstance(item, dict) else None
        if prompt is None:
            errors.bad(i, "no user_prompt")
            continue
        records.append(PromptRecord(f"{source}:{i:04d}", prompt, Domain.CYBERSECURITY.value, source,
                                    text(item.get("category")), {"system_prompt": item.get("system_prompt")}))
    return SourceLoad(records, report)


def load_interpreter(store: DataStore, strict: bool = False) -> SourceLoad:
    """One record per item; category = the attack type."""
    source = "cyberseceval_interpreter"
    report = SourceReport(source, [INTERPRETER_FILE])
    errors = RowErrors(report, INTERPRETER_FILE, strict)
    records = []
    for i, item in enumerate(read_json_list(store.path(INTERPRETER_FILE), INTERPRETER_FILE)):
        report.rows += 1
        prompt = text(item.get("mutated_prompt")) if isinstance(item, dict) else None
        if prompt is None:
            errors.bad(i, "no mutated_prompt")
            continue
        kinds = item.get("attack_type")
        category = ", ".join(kinds) if isinstance(kinds, list) else text(kinds)
        records.append(PromptRecord(f"{source}:{i:04d}", prompt, Domain.CYBERSECURITY.value, source, category, {}))
    return SourceLoad(records, report)
