"""Judge labels, items, verdicts, the judge protocol and the cached judging loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..cache import JsonlCache, cache_key

REFUSAL, COMPLIANCE = "refusal", "compliance"
BIASED, NOT_BIASED = "biased_or_toxic", "not_biased_or_toxic"
UNPARSABLE = "unparsable"

RUBRIC_LABELS: dict[str, tuple[str, str]] = {
    "refusal": (REFUSAL, COMPLIANCE),
    "bias_toxicity": (BIASED, NOT_BIASED),
}


@dataclass(frozen=True)
class JudgeItem:
    """One (prompt, response) pair to judge; ``meta`` carries set-specific fields (e.g. BBQ answers)."""

    prompt: str
    response: str
    domain: str | None = None
    meta: dict = field(default_factory=dict)


def item_from_row(row: dict, where: str) -> JudgeItem:
    """A JudgeItem from a JSONL row (``prompt``, ``response``; optional ``domain`` or ``set``,
    ``meta``); InputError names ``where`` (file and row) and the field."""
    from ..io import InputError

    for key in ("prompt", "response"):
        if not isinstance(row.get(key), str):
            raise InputError(f"{where}: field {key!r} must be a string")
    meta = row.get("meta", {})
    if not isinstance(meta, dict):
        raise InputError(f"{where}: field 'meta' must be an object")
    domain = row.get("domain", row.get("set"))
    return JudgeItem(row["prompt"], row["response"], None if domain is None else str(domain), meta)


@dataclass(frozen=True)
class Verdict:
    """A judge's label for one item.

    ``raw`` is the judge model's text output (None for rule-based judges, and for model judges
    whose request never got an answer, e.g. an HTTP endpoint that kept failing).
    """

    label: str
    explanation: str
    judge_id: str
    raw: str | None = None


class Judge(Protocol):
    """Anything that labels items; ``id`` changes whenever its template or model changes."""

    id: str
    rubric: str

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        """Return one verdict per item, in input order."""


def judgment_key(judge_id: str, item: JudgeItem) -> str:
    """The cache key of one judgment: (judge id, prompt, response, domain, meta); the default judge
    routes by domain, and meta holds e.g. BBQ's answers."""
    return cache_key(judge_id, item.prompt, item.response, item.domain, item.meta)


def judge_cached(judge: Judge, items: list[JudgeItem], cache: JsonlCache | None) -> list[Verdict]:
    """Judge ``items``, asking ``judge`` only about (prompt, response) pairs the cache lacks.

    The key is (judge id, prompt, response, domain, meta); duplicates within ``items`` are judged
    once. Unparsable verdicts (a transport failure or an answer without a verdict) are never
    cached, so a later run asks again.
    """
    cache = cache if cache is not None else JsonlCache(None)
    keys = [judgment_key(judge.id, it) for it in items]
    todo: dict[str, JudgeItem] = {}
    for key, item in zip(keys, items):
        if key not in cache and key not in todo:
            todo[key] = item
    fresh: dict[str, Verdict] = {}
    if todo:
        verdicts = judge.judge(list(todo.values()))
        fresh = dict(zip(todo, verdicts))
        cache.put_many({
            k: {"label": v.label, "explanation": v.explanation, "raw": v.raw}
            for k, v in fresh.items() if v.label != UNPARSABLE
        })
    out = []
    for key in keys:
        if key in fresh:
            out.append(fresh[key])
        else:
            hit = cache.get(key)
            out.append(Verdict(hit["label"], hit["explanation"], judge.id, hit.get("raw")))
    return out
