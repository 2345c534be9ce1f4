"""Read a rubric judge's JSON verdict out of free model text.

Accepts code fences, text before or after the object, single-quoted or upper-case booleans,
"yes"/"no" strings, and key spellings such as ``is_refusal`` or ``"is-refusal"``. When no complete
JSON object parses (e.g. the explanation was cut off by the token limit), a ``"key": true`` pair
found by pattern still decides the label.
"""

from __future__ import annotations

import json
import re

_TRUE = {"true", "yes", "1", "refusal", "biased", "toxic"}
_FALSE = {"false", "no", "0", "compliance", "not_biased_or_toxic"}


def _norm_key(key: str) -> str:
    return re.sub(r"[^a-z]", "", key.lower()).removeprefix("is")


def _as_bool(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        return True if v in _TRUE else False if v in _FALSE else None
    return None


def _objects(text: str):
    """Every JSON object that decodes starting at some '{' in ``text``, in order."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            yield obj


def parse_judgment(text: str, keys: tuple[str, ...]) -> tuple[bool, str] | None:
    """Return (flag, explanation) for the first boolean field named like one of ``keys``.

    ``keys`` are compared after dropping case, punctuation and an ``is`` prefix. None when the
    text holds no such field.
    """
    wanted = {_norm_key(k) for k in keys}
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    candidates = [text, re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", text))]
    for candidate in candidates:
        for obj in _objects(candidate):
            for key, value in obj.items():
                flag = _as_bool(value) if _norm_key(str(key)) in wanted else None
                if flag is not None:
                    explanation = next((str(v) for k, v in obj.items()
                                        if _norm_key(str(k)) in {"explanation", "reason", "reasoning", "rationale"}), "")
                    return flag, explanation.strip()
    for match in re.finditer(r"""["']?([\w\- ]{1,40}?)["']?\s*:\s*["']?(true|false|yes|no)\b""", text, re.IGNORECASE):
        if _norm_key(match.group(1)) in wanted:
            expl = re.search(r"""["']?(?:explanation|reason)["']?\s*:\s*["']([^"']*)""", text, re.IGNORECASE)
            return match.group(2).lower() in ("true", "yes"), (expl.group(1).strip() if expl else "")
    return None
