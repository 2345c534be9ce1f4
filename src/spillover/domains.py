"""The seven responsible-AI domains of the study, with aliases and plot colours."""

from __future__ import annotations

from enum import Enum


class Domain(str, Enum):
    """A responsible-AI domain (the paper's "concept")."""

    CYBERSECURITY = "cybersecurity"
    SAFETY = "safety"
    TOXICITY = "toxicity"
    BIAS = "bias"
    SENSITIVE = "sensitive"
    MEDICAL_LEGAL = "medical_legal"
    PRIVACY = "privacy"

    @property
    def label(self) -> str:
        return LABELS[self]

    @property
    def colour(self) -> str:
        return COLOURS[self]


DOMAINS: tuple[Domain, ...] = tuple(Domain)

#: Evaluation sets that are not domains: over-refusal and utility.
XSTEST = "xstest"
MMLU = "mmlu"

LABELS = {
    Domain.CYBERSECURITY: "Cybersecurity",
    Domain.SAFETY: "Safety",
    Domain.TOXICITY: "Toxicity",
    Domain.BIAS: "Bias",
    Domain.SENSITIVE: "Sensitive Content",
    Domain.MEDICAL_LEGAL: "Medical/Legal",
    Domain.PRIVACY: "Privacy",
}

COLOURS = {
    Domain.CYBERSECURITY: "#1f77b4",
    Domain.SAFETY: "#d62728",
    Domain.TOXICITY: "#9467bd",
    Domain.BIAS: "#ff7f0e",
    Domain.SENSITIVE: "#8c564b",
    Domain.MEDICAL_LEGAL: "#2ca02c",
    Domain.PRIVACY: "#17becf",
}

_ALIASES = {
    "cyber": Domain.CYBERSECURITY,
    "cybersecurity": Domain.CYBERSECURITY,
    "safety": Domain.SAFETY,
    "physical_safety": Domain.SAFETY,
    "toxicity": Domain.TOXICITY,
    "toxic": Domain.TOXICITY,
    "bias": Domain.BIAS,
    "sensitive": Domain.SENSITIVE,
    "sensitive_content": Domain.SENSITIVE,
    "medical_legal": Domain.MEDICAL_LEGAL,
    "medical/legal": Domain.MEDICAL_LEGAL,
    "medical": Domain.MEDICAL_LEGAL,
    "legal": Domain.MEDICAL_LEGAL,
    "privacy": Domain.PRIVACY,
}


def parse_domain(name: str | Domain) -> Domain:
    """Return the Domain for a name or alias (case-insensitive); ValueError lists valid names."""
    if isinstance(name, Domain):
        return name
    key = name.strip().lower().replace("-", "_").replace(" ", "_").replace("&", "")
    try:
        return _ALIASES[key]
    except KeyError:
        valid = ", ".join(d.value for d in DOMAINS)
        raise ValueError(f"unknown domain {name!r}; valid domains: {valid}") from None


def parse_domains(spec: str | list[str]) -> list[Domain]:
    """Parse 'all', a comma-separated string or a list of names into domains (order kept)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    if len(items) == 1 and str(items[0]).strip().lower() == "all":
        return list(DOMAINS)
    out: list[Domain] = []
    for item in items:
        d = parse_domain(item)
        if d not in out:
            out.append(d)
    return out
