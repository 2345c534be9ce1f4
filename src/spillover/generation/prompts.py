"""Prompt files in, response files out."""

from __future__ import annotations

from pathlib import Path

from ..io import InputError, read_jsonl, write_jsonl
from .base import Messages


def read_prompt_file(path: Path) -> tuple[list[dict], list[str | Messages]]:
    """Read rows holding 'prompt' (str) or 'messages' (list of {role, content}); validate each."""
    rows = read_jsonl(path)
    if not rows:
        raise InputError(f"{path}: no prompts (the file is empty)")
    convs: list[str | Messages] = []
    for i, row in enumerate(rows, 1):
        if isinstance(row.get("prompt"), str) and row["prompt"].strip():
            convs.append(row["prompt"])
        elif isinstance(row.get("messages"), list) and all(
            isinstance(m, dict) and {"role", "content"} <= m.keys() for m in row["messages"]
        ):
            convs.append(row["messages"])
        else:
            raise InputError(f"{path}, row {i}: needs a non-empty string field 'prompt' or a list field 'messages'")
    return rows, convs


def write_responses(path: Path, rows: list[dict], outs: list[list[str]]) -> None:
    """Write each row with its first response (and all samples when there are several)."""
    def merged():
        for row, samples in zip(rows, outs):
            extra = {"response": samples[0]}
            if len(samples) > 1:
                extra["responses"] = samples
            yield {**row, **extra}

    write_jsonl(path, merged())
