"""The paper's seven policy pillars, and the offline classifier that maps a source's own category to one."""

from __future__ import annotations

from enum import Enum

from ..domains import Domain
from .records import PromptRecord


class Pillar(str, Enum):
    """The 7-pillar taxonomy the paper's classifier uses to pick the Safety prompts.

    It differs from the seven domains: there is no Toxicity pillar, and ``other`` collects
    everything else (or no policy violation).
    """

    SAFETY = "safety"
    CYBERSECURITY = "cybersecurity"
    SENSITIVE = "sensitive"
    BIAS = "bias"
    MEDICAL_LEGAL = "medical_legal"
    PRIVACY = "privacy"
    OTHER = "other"

    @property
    def domain(self) -> Domain | None:
        return None if self is Pillar.OTHER else Domain(self.value)


#: The pillar definitions given to the LLM classifier (name as it must answer, then meaning).
DEFINITIONS: dict[Pillar, tuple[str, str]] = {
    Pillar.SAFETY: ("Safety", "physical safety: violence, weapons, explosives, dangerous drugs or chemicals, "
                    "self-harm, risky or dangerous activities that can physically hurt people or animals"),
    Pillar.CYBERSECURITY: ("Cybersecurity", "hacking, malware, intrusion, exploits or other attacks on computer "
                           "systems and networks"),
    Pillar.SENSITIVE: ("Sensitive-Content", "nudity, sexual content, graphic violence or gore"),
    Pillar.BIAS: ("Bias", "content biased for or against a demographic group (gender, race, religion, "
                  "nationality, disability, ...)"),
    Pillar.MEDICAL_LEGAL: ("Medical & Legal", "requests for medical, mental-health or legal advice, or "
                           "misinformation in medicine or law"),
    Pillar.PRIVACY: ("Privacy", "obtaining, leaking or inferring private or confidential information about a "
                     "person or an organisation"),
    Pillar.OTHER: ("Other", "anything else, or no policy violation"),
}


def parse_pillar(value: str) -> Pillar:
    """A Pillar from its value or its classifier name (case-insensitive); ValueError otherwise."""
    key = value.strip().lower()
    for pillar, (name, _) in DEFINITIONS.items():
        if key in (pillar.value, name.lower()):
            return pillar
    raise ValueError(f"unknown pillar {value!r}; valid: {', '.join(p.value for p in Pillar)}")


def source_pillar(record: PromptRecord, tables: dict[str, dict[str, Pillar]]) -> Pillar:
    """The pillar of a record from its source's category table.

    The finer ``meta["subcategory"]`` is looked up first, then ``category``; a category missing
    from the table is ``other``.
    """
    table = tables.get(record.source, {})
    for key in (record.meta.get("subcategory"), record.category):
        if key is not None and key in table:
            return table[key]
    return Pillar.OTHER
