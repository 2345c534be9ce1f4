"""Training examples: (prompt, response) -> token ids with response-only labels, and a collator.

The prompt is rendered with the tokenizer's own chat template (``add_generation_prompt=True``);
the response part is whatever the template adds after it for the full conversation, so an
end-of-turn token the template appends after the assistant message (``<|im_end|>``,
``<|eot_id|>``) is part of the response and trained on. Trailing whitespace after it is dropped
(the model never generates it: generation stops at the end-of-turn token).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from ..generation.base import as_messages, render_chat
from ..io import InputError, read_jsonl, write_jsonl

IGNORE = -100
ExampleKind = Literal["forget", "retain", "finetune", "pair"]


@dataclass(frozen=True)
class Example:
    """One training pair; ``kind`` says which set it belongs to.

    A preference pair (kind "pair") has the preferred answer in ``response`` and the
    dispreferred one in ``rejected``.
    """

    id: str
    prompt: str
    response: str
    kind: ExampleKind = "forget"
    rejected: str | None = None


def read_examples(path: str | Path, kind: ExampleKind) -> list[Example]:
    """Read JSONL rows {id, prompt, response} (id optional; kind "pair" also needs ``rejected``).

    Bad rows raise InputError naming the row and field.
    """
    path = Path(path)
    out = []
    fields = ("prompt", "response", "rejected") if kind == "pair" else ("prompt", "response")
    for i, row in enumerate(read_jsonl(path, required=fields), 1):
        for key in fields:
            if not isinstance(row[key], str) or not row[key].strip():
                raise InputError(f"{path}, row {i}: field {key!r} must be a non-empty string")
        out.append(Example(str(row.get("id", f"{path.stem}-{i}")), row["prompt"], row["response"], kind,
                           row.get("rejected") if kind == "pair" else None))
    if not out:
        raise InputError(f"{path}: no examples")
    return out


def write_examples(path: str | Path, examples: list[Example]) -> int:
    """Write examples as JSONL rows {id, prompt, response, kind} (and ``rejected`` of pairs); return the count."""
    return write_jsonl(path, ({k: v for k, v in asdict(e).items() if k != "rejected" or v is not None}
                              for e in examples))


@dataclass(frozen=True)
class Encoded:
    """Token ids of prompt + response; ``labels`` is -100 on the prompt part."""

    input_ids: list[int]
    labels: list[int]

    @property
    def n_prompt(self) -> int:
        return sum(1 for x in self.labels if x == IGNORE)


def render_pair(tokenizer, prompt: str, response: str, system_prompt: str | None = None) -> tuple[str, str]:
    """Return (prompt text, response text) such that their concatenation is the chat-formatted pair."""
    messages = as_messages(prompt, system_prompt)
    head = render_chat(tokenizer, messages)
    full = render_chat(tokenizer, [*messages, {"role": "assistant", "content": response}], add_generation_prompt=False)
    if not full.startswith(head):
        raise ValueError(
            "the chat template renders the conversation with a different prefix than the prompt "
            "alone (e.g. it rewrites earlier turns); response-only masking needs a stable prefix"
        )
    return head, full[len(head):].rstrip()


def encode_example(tokenizer, prompt: str, response: str, max_length: int,
                   system_prompt: str | None = None) -> Encoded:
    """Tokenise one pair; labels mask the prompt.

    Prompt and response are tokenised separately (as at generation time, when the response
    tokens follow the prompt tokens). Over ``max_length`` the response keeps at least half the
    budget and is cut at its end; the prompt loses tokens from its start.
    """
    head, tail = render_pair(tokenizer, prompt, response, system_prompt)
    p = tokenizer(head, add_special_tokens=False)["input_ids"]
    r = tokenizer(tail, add_special_tokens=False)["input_ids"]
    if not r:
        raise ValueError("empty response after chat formatting")
    if len(p) + len(r) > max_length:
        keep_r = min(len(r), max(max_length - len(p), max_length // 2))
        r = r[:keep_r]
        p = p[len(p) - (max_length - keep_r):]
    return Encoded(input_ids=p + r, labels=[IGNORE] * len(p) + r)


class EncodedSet:
    """Examples encoded once; indexable by position.

    With ``pairs`` each example's ``rejected`` response is encoded too, and batches carry it
    under ``rejected_input_ids`` / ``rejected_attention_mask`` / ``rejected_labels``.
    """

    def __init__(self, examples: list[Example], tokenizer, max_length: int, system_prompt: str | None = None,
                 pairs: bool = False):
        self.examples = examples
        self.items, self.rejected = [], []
        for i, ex in enumerate(examples):
            try:
                self.items.append(encode_example(tokenizer, ex.prompt, ex.response, max_length, system_prompt))
                if pairs:
                    self.rejected.append(encode_example(tokenizer, ex.prompt, ex.rejected, max_length, system_prompt))
            except ValueError as e:
                raise InputError(f"{ex.kind} example {i} (id {ex.id!r}): {e}") from None

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
        index = torch.tensor(indices, dtype=torch.long)
        out = collate([self.items[i] for i in indices], pad_id, index)
        if self.rejected:
            rejected = collate([self.rejected[i] for i in indices], pad_id, index)
            out.update({f"rejected_{k}": rejected[k] for k in ("input_ids", "attention_mask", "labels")})
        return out


def collate(items: list[Encoded], pad_id: int, index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Right-pad a list of encoded examples.

    Returns input_ids (B, T), attention_mask (B, T), labels (B, T) with -100 on prompt and
    padding, and index (B,) (positions in the set, for cached reference log-probs).
    """
    width = max(len(e.input_ids) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, e in enumerate(items):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    out["index"] = index if index is not None else torch.arange(len(items))
    return out
