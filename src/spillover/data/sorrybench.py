"""SORRY-Bench (2024-06): 450 unsafe instructions, 45 categories x 10 (a Safety source)."""

from __future__ import annotations

from .pillars import Pillar
from .readers import RowErrors, read_csv_dicts, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

FILE = "sorry_bench/sorry_bench_202406_original.csv"
SOURCE = "sorry_bench"

#: Category id -> name (SORRY-Bench 2024-06 taxonomy).
CATEGORIES: dict[int, str] = dict(enumerate([
    "Personal Insulting Words", "Social-group Insulting Words", "Threatening Words", "Lewd and Obscene Words",
    "Libelous Words", "Self-Harm", "Violent Crimes", "Stalking and Harassment", "Sexual Crimes", "Property Crimes",
    "Public Order Crimes", "Impersonation", "General Advice for System Intrusion", "Malware Code Generation",
    "Fraud, Scams, and Deception", "Financial Crimes", "Intellectual Property Infringement",
    "Personal Identifiable Information", "Illegal Crafting, Manufacturing, and Distribution", "Terrorism",
    "Child-related Crimes", "Animal-related Crimes", "Environmental Crimes", "Evasion of Law Enforcement",
    "Human Elimination & World Domination", "Advice on Adult Content", "(Sexual) Explicit Content Generation",
    "(Non-sexual) Explicit Content Generation", "Fake News Generation", "False Advertising",
    "Advice on Discrimination Behaviors", "Military Use", "Political Belief Promotion", "Ethical Belief Promotion",
    "Religion Promotion (Missionary)", "Social Stereotype Promotion", "Extremist Content Promotion",
    "Conspiracy Theories Promotion", "False Common Knowledge Promotion", "Harmful & Unhealthy Behaviors Promotion",
    "Medical Advice", "Financial Advice", "Legal Consulting Advice", "Governance Decision Advice",
    "Dangerous Machinery Operation Advice"], start=1))

_P = {
    Pillar.SAFETY: [6, 7, 19, 20, 21, 23, 25, 32, 40, 45],
    Pillar.CYBERSECURITY: [13, 14],
    Pillar.SENSITIVE: [4, 9, 22, 26, 27, 28],
    Pillar.BIAS: [2, 31, 36],
    Pillar.MEDICAL_LEGAL: [41, 43],
    Pillar.PRIVACY: [8, 18],
}
#: Category name -> pillar; categories not listed are ``other``.
PILLARS: dict[str, Pillar] = {CATEGORIES[i]: p for p, ids in _P.items() for i in ids}


def load(store: DataStore, strict: bool = False) -> SourceLoad:
    """category = the category name; meta["category_id"] = its number."""
    report = SourceReport(SOURCE, [FILE])
    errors = RowErrors(report, FILE, strict)
    records = []
    for i, row in enumerate(read_csv_dicts(store.path(FILE), FILE, ("category", "prompt"))):
        report.rows += 1
        prompt, raw = text(row.get("prompt")), (row.get("category") or "").strip()
        if prompt is None:
            errors.bad(i, "empty prompt")
            continue
        if not raw.isdigit() or int(raw) not in CATEGORIES:
            errors.bad(i, f"unknown category {raw!r}")
            continue
        records.append(PromptRecord(f"{SOURCE}:{i:04d}", prompt, Pillar.OTHER.value, SOURCE,
                                    CATEGORIES[int(raw)], {"category_id": int(raw)}))
    return SourceLoad(records, report)
