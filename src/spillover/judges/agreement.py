"""Agreement between two labelings of the same items: confusion, accuracy, Cohen's kappa."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgreementStats:
    """``confusion[a_label][b_label]`` counts items; ``disagreements`` are indices where a != b.

    ``kappa`` is Cohen's kappa over all labels present (unparsable included, as its own label);
    it is NaN when chance agreement is 1 (both sides used one and the same label throughout).
    """

    n: int
    labels: list[str]
    confusion: dict[str, dict[str, int]]
    accuracy: float
    kappa: float
    disagreements: list[int]


def agreement(a: list[str], b: list[str]) -> AgreementStats:
    """Compare two equally long label lists."""
    if len(a) != len(b):
        raise ValueError(f"label lists differ in length: {len(a)} vs {len(b)}")
    if not a:
        raise ValueError("no labels to compare")
    n = len(a)
    labels = sorted(set(a) | set(b))
    confusion = {x: {y: 0 for y in labels} for x in labels}
    for x, y in zip(a, b):
        confusion[x][y] += 1
    observed = sum(confusion[x][x] for x in labels) / n
    chance = sum((sum(confusion[x].values()) / n) * (sum(confusion[y][x] for y in labels) / n) for x in labels)
    kappa = float("nan") if chance >= 1.0 else (observed - chance) / (1.0 - chance)
    return AgreementStats(n, labels, confusion, observed, kappa, [i for i, (x, y) in enumerate(zip(a, b)) if x != y])
