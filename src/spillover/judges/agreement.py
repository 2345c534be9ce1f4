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
    matrix = [[confusion[x][y] for y in labels] for x in labels]
    observed = sum(confusion[x][x] for x in labels) / n
    return AgreementStats(n, labels, confusion, observed, kappa_from_confusion(matrix),
                          [i for i, (x, y) in enumerate(zip(a, b)) if x != y])


def kappa_from_confusion(matrix) -> float:
    """Cohen's kappa of a square confusion matrix (rows: labelling A, columns: B; counts).

    NaN when chance agreement is 1 (both sides used one and the same label throughout).
    """
    n = sum(sum(row) for row in matrix)
    k = len(matrix)
    observed = sum(matrix[i][i] for i in range(k)) / n
    chance = sum((sum(matrix[i]) / n) * (sum(matrix[j][i] for j in range(k)) / n) for i in range(k))
    return float("nan") if chance >= 1.0 else (observed - chance) / (1.0 - chance)
