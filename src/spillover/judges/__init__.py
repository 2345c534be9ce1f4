"""Refusal and bias/toxicity judges: keyword baseline, BBQ scorer, rubric LLM judge, agreement."""

from __future__ import annotations

from .agreement import AgreementStats, agreement
from .base import (BIASED, COMPLIANCE, NOT_BIASED, REFUSAL, UNPARSABLE, Judge, JudgeItem, Verdict,
                   judge_cached)

SPEC_HELP = ('default | keyword | bbq | probe:<name or .npz path> | rubric:local:<model spec> | '
             'bias-rubric:local:<model spec> | rubric:openai:<model name> | bias-rubric:openai:<model name>')
_RUBRICS = {"rubric": "refusal", "bias-rubric": "bias_toxicity"}
_LOCAL_OPTIONS = {"batch_size", "max_new_tokens", "device", "dtype"}
_OPENAI_OPTIONS = {"base_url", "api_key_env", "max_concurrency", "timeout", "max_new_tokens", "max_retries", "backoff"}


def _parse(spec: str) -> tuple[str, str | None, str | None]:
    """(kind, backend, model) of a spec; backend and model are None for rule-based judges."""
    kind, _, rest = spec.partition(":")
    if kind in ("keyword", "bbq", "default") and not rest:
        return kind, None, None
    if kind == "probe" and rest:
        return kind, None, rest
    backend, _, model = rest.partition(":")
    if kind not in _RUBRICS or backend not in ("local", "openai") or not model:
        raise ValueError(f"unknown judge spec {spec!r}; use {SPEC_HELP}")
    return kind, backend, model


def validate_judge_spec(spec: str) -> None:
    """Raise ValueError for a spec ``build_judge`` would refuse, or whose local model cannot resolve.

    Parses only: loads no model and opens no connection.
    """
    kind, backend, model = _parse(spec)
    if kind == "probe":
        from pathlib import Path

        from .probe import shipped_probe_path

        if not (Path(model).is_file() if model.endswith(".npz") else shipped_probe_path(model).is_file()):
            raise ValueError(f"judge {spec!r}: no such probe (a shipped name or a .npz file)")
    if backend == "local":
        from ..models import ModelLoadError, check_model_spec

        try:
            check_model_spec(model)
        except ModelLoadError as e:
            raise ValueError(f"judge {spec!r}: {e}") from None


def endpoint_spec(spec: str, model: str) -> str:
    """The spec with its judge model served by an OpenAI-compatible endpoint as ``model``.

    Rule-based judges (no model) are returned unchanged.
    """
    kind, backend, _ = _parse(spec)
    return spec if backend is None else f"{kind}:openai:{model}"


def build_judge(spec: str, **options) -> Judge:
    """Build a judge from its spec (see ``SPEC_HELP``); options set to None are ignored.

    Options: ``template`` (a user template file, rubric judges), ``max_response_chars``; local:
    ``batch_size``, ``max_new_tokens``, ``device``, ``dtype``; openai: ``base_url``,
    ``api_key_env`` (default OPENAI_API_KEY), ``max_concurrency``, ``timeout``, ``max_new_tokens``,
    ``max_retries``, ``backoff``. An option that the chosen judge does not use is an error.
    """
    options = {k: v for k, v in options.items() if v is not None}
    kind, backend, model = _parse(spec)
    if backend is None:
        if options:
            raise ValueError(f"judge {spec!r} takes no options (got {', '.join(sorted(options))})")
        return _fixed_judge(kind, model)
    from .rubric import RubricJudge, load_template

    template = load_template(options.pop("template")) if "template" in options else None
    rubric_options = {k: options.pop(k) for k in ("max_response_chars",) if k in options}
    allowed = _LOCAL_OPTIONS if backend == "local" else _OPENAI_OPTIONS
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"judge {spec!r} does not take option(s) {', '.join(sorted(unknown))}")
    if backend == "local":
        from .local import LocalChat

        chat = LocalChat(model, **options)
    else:
        from .api import OpenAIChat

        chat = OpenAIChat(model, **options)
    return RubricJudge(_RUBRICS[kind], chat, template=template, **rubric_options)


def _fixed_judge(kind: str, probe: str | None) -> Judge:
    """The judges without options: keyword, BBQ scorer, the default router and a probe."""
    if kind == "keyword":
        from .keyword import KeywordJudge

        return KeywordJudge()
    if kind == "bbq":
        from .bbq import BBQJudge

        return BBQJudge()
    if kind == "default":
        from .default import DefaultJudge

        return DefaultJudge()
    from pathlib import Path

    from .probe import Probe, ProbeJudge, shipped_probe

    return ProbeJudge(Probe.load(Path(probe)) if probe.endswith(".npz") else shipped_probe(probe))


__all__ = ["AgreementStats", "BIASED", "COMPLIANCE", "Judge", "JudgeItem", "NOT_BIASED", "REFUSAL",
           "SPEC_HELP", "UNPARSABLE", "Verdict", "agreement", "build_judge", "endpoint_spec",
           "judge_cached", "validate_judge_spec"]
