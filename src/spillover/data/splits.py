"""Seeded, machine-independent train/test splits and duplicate removal."""

from __future__ import annotations

import hashlib
import math
import random

from .records import PromptRecord


def seeded_rng(seed: int, name: str) -> random.Random:
    """A Random seeded from (seed, name) through sha256, identical on every machine and Python."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def shuffled(records: list[PromptRecord], seed: int, name: str) -> list[PromptRecord]:
    """Records sorted by id, then shuffled with ``seeded_rng(seed, name)``."""
    out = sorted(records, key=lambda r: r.id)
    seeded_rng(seed, name).shuffle(out)
    return out


def test_size_for(n: int, wanted: int, max_test_fraction: float) -> int:
    """``wanted`` test items, capped at ``floor(max_test_fraction * n)`` so some remain for training."""
    return max(0, min(wanted, n, math.floor(max_test_fraction * n)))


def split(records: list[PromptRecord], test_size: int, seed: int, name: str) -> dict[str, list[PromptRecord]]:
    """{"train": ..., "test": ...}: the first ``test_size`` of the seeded shuffle are test, both in shuffled order."""
    order = shuffled(records, seed, name)
    return {"train": order[test_size:], "test": order[:test_size]}


def normalise(prompt: str) -> str:
    return " ".join(prompt.split()).casefold()


def dedupe(records: list[PromptRecord]) -> tuple[list[PromptRecord], list[str]]:
    """Keep the first record (by id) of each prompt text (whitespace and case ignored); return (kept, dropped ids)."""
    seen: set[str] = set()
    kept, dropped = [], []
    for r in sorted(records, key=lambda r: r.id):
        key = normalise(r.prompt)
        if key in seen:
            dropped.append(r.id)
        else:
            seen.add(key)
            kept.append(r)
    return kept, dropped
