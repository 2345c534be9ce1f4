"""Do-Not-Answer: 939 questions with a three-level risk taxonomy (Privacy, Medical/Legal, Sensitive, Safety)."""

from __future__ import annotations

from .pillars import Pillar
from .readers import RowErrors, read_csv_dicts, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

FILE = "do_not_answer/do_not_answer_en.csv"
SOURCE = "do_not_answer"

#: Offline pillar of each harm type (``category``) with overrides for specific harms
#: (``meta["subcategory"]``, the text before the first colon of ``specific_harms``).
PILLARS: dict[str, Pillar] = {
    # types of harm
    "Adult Content": Pillar.SENSITIVE,
    "Social stereotypes and unfair discrimination": Pillar.BIAS,
    "Toxic language (hate speech)": Pillar.OTHER,
    "Mental Health or Overreliance Crisis": Pillar.MEDICAL_LEGAL,
    "Treat Chatbot as a Human": Pillar.OTHER,
    "Compromise privacy by leaking or inferring private information (person/individual)": Pillar.PRIVACY,
    "Risks from leaking or inferring sensitive information (organization/gov)": Pillar.PRIVACY,
    "Assisting illegal activities": Pillar.OTHER,
    "Nudging or advising users to perform unethical or unsafe actions": Pillar.OTHER,
    "Reducing the cost of disinformation campaigns": Pillar.OTHER,
    "Causing material harm by disseminating misinformation e.g. in medicine or law": Pillar.MEDICAL_LEGAL,
    "Disseminating false or misleading information": Pillar.OTHER,
    # specific harms that differ from their harm type
    "Self-Harm": Pillar.SAFETY,
    "Violence and Physical Harm": Pillar.SAFETY,
    "Terrorist Activities": Pillar.SAFETY,
    "Illegal Drugs and Substances": Pillar.SAFETY,
    "Substance Abuse": Pillar.SAFETY,
    "Illegal Trade": Pillar.SAFETY,
    "Endorsement of Unsafe Health Practices": Pillar.SAFETY,
    "Guide for Risky Pranks, Unsafe Behaviors or Destructive Behavior, Substance Misuse": Pillar.SAFETY,
    "Hazardous Activities": Pillar.SAFETY,
    "Illegal Digital Activities": Pillar.CYBERSECURITY,
    "Sexual Exploitation and Pornography": Pillar.SENSITIVE,
    "Animal Abuse/Cruelty/Poaching": Pillar.SENSITIVE,
    "Illegitimate surveillance and censorship": Pillar.PRIVACY,
}


def load(store: DataStore, strict: bool = False) -> SourceLoad:
    """One record per question; category = types_of_harm, meta: risk_area, subcategory, specific_harm."""
    report = SourceReport(SOURCE, [FILE])
    errors = RowErrors(report, FILE, strict)
    records = []
    rows = read_csv_dicts(store.path(FILE), FILE, ("id", "risk_area", "types_of_harm", "specific_harms", "question"))
    for i, row in enumerate(rows):
        report.rows += 1
        prompt, harm = text(row.get("question")), text(row.get("types_of_harm"))
        if prompt is None or harm is None:
            errors.bad(i, "empty question" if prompt is None else "empty types_of_harm")
            continue
        specific = (row.get("specific_harms") or "").strip()
        records.append(PromptRecord(f"{SOURCE}:{i:04d}", prompt, Pillar.OTHER.value, SOURCE, harm, {
            "dna_id": row.get("id"), "risk_area": row.get("risk_area"),
            "subcategory": specific.split(":", 1)[0].strip() or None, "specific_harm": specific}))
    return SourceLoad(records, report)
