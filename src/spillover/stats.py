"""Interval, paired-test and multiple-comparison statistics for refusal rates."""

from __future__ import annotations

import math

from scipy.stats import binomtest, norm


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials, as proportions in [0, 1]."""
    if n == 0:
        return (math.nan, math.nan)
    z = norm.ppf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(before: list[bool], after: list[bool]) -> tuple[int, int, float]:
    """Exact McNemar test on paired booleans: (true->false count, false->true count, two-sided p)."""
    if len(before) != len(after):
        raise ValueError("paired samples must have the same length")
    lost = sum(1 for a, b in zip(before, after) if a and not b)
    gained = sum(1 for a, b in zip(before, after) if b and not a)
    discordant = lost + gained
    p = 1.0 if discordant == 0 else binomtest(lost, discordant, 0.5).pvalue
    return lost, gained, float(p)


def percent_se(rate: float | None, n: int | None) -> float | None:
    """Binomial standard error, in points, of a percentage measured on n items (None if unknown)."""
    if rate is None or not n:
        return None
    p = rate / 100.0
    return round(100.0 * math.sqrt(p * (1.0 - p) / n), 2)


def holm(pvalues: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def paired_change(n: int, lost: int, gained: int) -> tuple[float, float]:
    """Agresti-Min (2005) adjusted estimate and standard error of the change in a paired proportion.

    ``n`` pairs, ``lost`` of them true -> false, ``gained`` false -> true; half a count is added
    to each of the four cells of the 2x2 table, so with n' = n + 2 the change is
    (gained - lost) / n' and its variance ((lost' + gained') / n' - change^2) / n'. Proportions.
    """
    if n <= 0:
        raise ValueError("paired_change needs at least one pair")
    m, b, c = n + 2, lost + 0.5, gained + 0.5
    change = (c - b) / m
    return change, math.sqrt(max(0.0, ((b + c) / m - change * change) / m))


def normal_interval(centre: float, se: float, confidence: float = 0.95) -> tuple[float, float]:
    """centre -/+ z se, z the two-sided standard normal quantile for ``confidence``."""
    z = norm.ppf(0.5 + confidence / 2)
    return centre - z * se, centre + z * se
