"""The LLM 7-pillar classifier (local model or OpenAI-compatible endpoint, cached) and its agreement statistics."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field

from ..cache import JsonlCache, cache_key
from ..config import StrictModel
from .pillars import DEFINITIONS, Pillar

SYSTEM_PROMPT = (
    "You sort user requests sent to an AI assistant into policy categories. The categories are:\n"
    + "\n".join(f"- {name}: {meaning}" for name, meaning in DEFINITIONS.values())
    + "\nReply with exactly one category name from the list and nothing else."
)


class PillarJudge(StrictModel):
    """Which chat model labels prompts with a pillar."""

    backend: Literal["hf", "openai"] = "hf"
    #: hf: a model spec for ``load_backend`` (hub id, local dir, embedded:ALIAS); openai: the model name.
    model: str = "embedded:qwen2.5-coder-1.5b-instruct"
    #: openai: the endpoint base, e.g. http://localhost:8000/v1 (the path /chat/completions is appended).
    base_url: str | None = None
    #: openai: environment variable holding the API key (never stored).
    api_key_env: str = "OPENAI_API_KEY"
    max_new_tokens: int = Field(12, ge=1)
    batch_size: int = Field(8, ge=1)
    device: str = "auto"
    #: JSONL cache of raw answers; None keeps it in memory.
    cache: str | None = None


def user_message(prompt: str) -> str:
    return f"Request:\n\"\"\"\n{prompt}\n\"\"\"\nCategory:"


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split())


#: Every accepted spelling (normalised) of each pillar: its classifier name and its value.
_SPELLINGS = [(_norm(form), p) for p, (name, _) in DEFINITIONS.items() for form in {name, p.value}]


def parse_answer(answer: str) -> Pillar | None:
    """The pillar named first in the answer, ignoring case and punctuation ("Medical/Legal" works)."""
    low = f" {_norm(answer)} "
    hits = [(low.find(f" {form} "), p) for form, p in _SPELLINGS if f" {form} " in low]
    return min(hits, key=lambda h: h[0])[1] if hits else None


def _openai_answers(prompts: list[str], judge: PillarJudge, cache: JsonlCache) -> list[str]:
    """Answers from the endpoint through the judges' retrying client; answers are cached, and a
    prompt that still gets none raises ``EndpointError``."""
    from ..generation.base import as_messages
    from ..judges.api import EndpointError, OpenAIChat
    from ..judges.rubric import ChatFailure

    if not judge.base_url:
        raise ValueError("PillarJudge.base_url is required for the openai backend")
    keys = [cache_key("openai", judge.base_url, judge.model, SYSTEM_PROMPT, p, judge.max_new_tokens) for p in prompts]
    todo = {k: p for k, p in zip(keys, prompts) if k not in cache}
    if todo:
        chat = OpenAIChat(judge.model, base_url=judge.base_url, api_key_env=judge.api_key_env, timeout=120.0,
                          max_new_tokens=judge.max_new_tokens, description="pillar classification (api)")
        answers = chat.complete([as_messages(user_message(p), SYSTEM_PROMPT) for p in todo.values()])
        cache.put_many({k: a for k, a in zip(todo, answers) if not isinstance(a, ChatFailure)})
        failed = [a for a in answers if isinstance(a, ChatFailure)]
        if failed:
            raise EndpointError(f"{chat.base_url}: {len(failed)} of {len(todo)} prompts got no pillar "
                                f"({failed[0].reason}); the others are cached")
    return [cache.get(k) for k in keys]


def classify_pillars(prompts: list[str], judge: PillarJudge, backend=None) -> tuple[list[Pillar], list[str]]:
    """Label each prompt with a pillar; returns (pillars, raw answers). Unparseable answers count as ``other``.

    ``backend`` (a ``GenerationBackend``) replaces the one ``judge`` would load.
    """
    cache = JsonlCache(judge.cache)
    if judge.backend == "openai" and backend is None:
        answers = _openai_answers(prompts, judge, cache)
    else:
        from ..generation import Decoding, generate_responses
        from ..generation.loading import load_backend

        engine = backend or load_backend("hf", judge.model, device=judge.device, batch_size=judge.batch_size)
        decoding = Decoding(max_new_tokens=judge.max_new_tokens, temperature=0.0, system_prompt=SYSTEM_PROMPT)
        outs = generate_responses(engine, [user_message(p) for p in prompts], decoding, cache,
                                  batch_size=judge.batch_size, description="pillar classification")
        answers = [o[0] for o in outs]
    return [parse_answer(a) or Pillar.OTHER for a in answers], answers


def agreement(a: list[Pillar], b: list[Pillar]) -> dict:
    """Raw agreement, Cohen's kappa (None when chance agreement is 1) and the confusion table
    ``{a_label: {b_label: n}}`` of two labelings, through the judges' one implementation."""
    from ..judges.agreement import agreement as compare

    if len(a) != len(b):
        raise ValueError(f"labelings differ in length ({len(a)} vs {len(b)})")
    if not a:
        return {"n": 0, "agreement": None, "kappa": None, "confusion": {}}
    stats = compare([p.value for p in a], [p.value for p in b])
    kappa = None if math.isnan(stats.kappa) else round(stats.kappa, 4)
    return {"n": stats.n, "agreement": round(stats.accuracy, 4), "kappa": kappa, "confusion": stats.confusion}
