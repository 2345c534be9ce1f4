"""Off-target spill-over from a study's score rows: the EMA matrix and the method x domain table.

Both read rows of ``results/scores.csv`` (as the results stage writes them, or as the report
parses them: missing values are "" or None) and import nothing heavy, so the results files and
the report are computed from the same table by the same code.

Changes are in points, trained minus aligned, on the prompts both runs judged: the observed
change (refusals gained - lost) / pairs, and a 95% Agresti-Min interval (``stats.paired_change``).
A mean over several cells (independent prompt sets) takes the mean of the adjusted changes with
the standard error sqrt(sum se_i^2) / k.
"""

from __future__ import annotations

import math

from .domains import DOMAINS, MMLU, XSTEST
from .stats import holm, normal_interval, paired_change
from .variants import VARIANT_TABLE

DOMAIN_VALUES = tuple(d.value for d in DOMAINS)
#: ema_matrix.csv: one row per off-target (target, domain) cell of each variant and seed.
EMA_COLUMNS = ["variant", "seed", "target", "domain", "n", "aligned_rate", "rate", "delta", "p_mcnemar", "p_holm",
               "family", "verdict"]
#: methods.csv: per variant and seed, one row per target and one over all targets ("all").
METHOD_COLUMNS = ["variant", "seed", "target", "target_delta", "target_ci_low", "target_ci_high", "target_p_mcnemar",
                  "off_target_cells", "off_target_mean_delta", "off_target_mean_ci_low", "off_target_mean_ci_high",
                  "worst_target", "worst_domain", "worst_delta", "worst_ci_low", "worst_ci_high", "worst_p_holm",
                  "holm_drops", "xstest_delta", "mmlu_delta"]
PAIRED = ("n_paired", "refusals_lost", "refusals_gained")


def _off_target(r: dict) -> bool:
    return r["variant"] != "aligned" and r["set"] in DOMAIN_VALUES and r["set"] != r["target"]


def ema_matrix_rows(scores: list[dict], alpha: float = 0.05) -> list[dict]:
    """The spill-over matrix: every off-target domain cell of a variant and seed, with its exact
    McNemar p-value Holm-corrected over all of that variant's and seed's off-target cells (42 for
    seven targets), and a verdict: ``drop`` or ``rise`` when the corrected p is below ``alpha``,
    else ``inconclusive`` (this n cannot tell a change from none)."""
    aligned = {r["set"]: r["rate"] for r in scores if r["variant"] == "aligned"}
    cells = [r for r in scores if _off_target(r)]
    out = []
    for family in sorted({(r["variant"], r["seed"]) for r in cells}, key=str):
        members = [r for r in cells if (r["variant"], r["seed"]) == family]
        for r, p_adj in zip(members, holm([r["p_mcnemar"] for r in members])):
            verdict = "inconclusive" if p_adj >= alpha else ("drop" if r["delta"] < 0 else "rise")
            out.append({"variant": r["variant"], "seed": r["seed"], "target": r["target"], "domain": r["set"],
                        "n": r["n"], "aligned_rate": aligned.get(r["set"], ""), "rate": r["rate"],
                        "delta": r["delta"], "p_mcnemar": r["p_mcnemar"], "p_holm": round(p_adj, 6),
                        "family": len(members), "verdict": verdict})
    return out


def _given(v) -> bool:
    return v is not None and v != ""


def has_paired_counts(scores: list[dict]) -> bool:
    """Whether every trained refusal-set row carries n_paired, refusals_lost and refusals_gained."""
    rows = [r for r in scores if r["variant"] != "aligned" and r["set"] != MMLU]
    return bool(rows) and all(_given(r.get(c)) for r in rows for c in PAIRED)


def mean_change(rows: list[dict], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """(observed mean change, interval low, high) in points over ``rows``' paired counts (module docstring)."""
    parts = [(int(r["n_paired"]), int(r["refusals_lost"]), int(r["refusals_gained"])) for r in rows
             if _given(r.get("n_paired")) and int(r["n_paired"]) > 0]
    if not parts:
        return None
    observed = sum((g - lost) / n for n, lost, g in parts) / len(parts)
    adjusted = [paired_change(n, lost, g) for n, lost, g in parts]
    centre = sum(c for c, _ in adjusted) / len(adjusted)
    se = math.sqrt(sum(s * s for _, s in adjusted)) / len(adjusted)
    low, high = normal_interval(centre, se, confidence)
    return round(100 * observed, 2), round(max(-100.0, 100 * low), 2), round(min(100.0, 100 * high), 2)


def _mean(values: list) -> float | None:
    given = [float(v) for v in values if _given(v)]
    return round(sum(given) / len(given), 2) if given else None


def _summary(variant, seed, target: str, runs: dict[str, dict[str, dict]], matrix: dict) -> dict:
    """One methods.csv row over the runs {target: {set: score row}} (one target, or all of them)."""
    own = [sets[t] for t, sets in runs.items() if t in sets]
    off = [(t, r) for t, sets in runs.items() for r in sets.values() if _off_target(r)]
    row: dict = {"variant": variant, "seed": seed, "target": target, "off_target_cells": len(off),
                 "holm_drops": sum(matrix.get((variant, seed, t, r["set"]), {}).get("verdict") == "drop" for t, r in off),
                 "xstest_delta": _mean([s[XSTEST]["delta"] for s in runs.values() if XSTEST in s]),
                 "mmlu_delta": _mean([s[MMLU]["delta"] for s in runs.values() if MMLU in s])}
    for prefix, rows in (("target", own), ("off_target_mean", [r for _, r in off])):
        got = mean_change(rows)
        row[f"{prefix}_delta"], row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"] = got or (None, None, None)
    row["target_p_mcnemar"] = own[0]["p_mcnemar"] if len(own) == 1 else None
    scored = [(mean_change([r]), t, r) for t, r in off]
    scored = [x for x in scored if x[0] is not None]
    if scored:
        (delta, low, high), t, r = min(scored, key=lambda x: x[0][0])  # the first of equal drops
        row.update(worst_target=t, worst_domain=r["set"], worst_delta=delta, worst_ci_low=low, worst_ci_high=high,
                   worst_p_holm=matrix.get((variant, seed, t, r["set"]), {}).get("p_holm"))
    return {c: row.get(c) for c in METHOD_COLUMNS}


def method_rows(scores: list[dict], alpha: float = 0.05) -> list[dict]:
    """The method x domain spill-over table: per variant and seed, each target's row and (with
    several targets) an "all" row: the target's change, the mean and the worst off-target change
    with 95% intervals, the worst cell's Holm-corrected p (``ema_matrix_rows``' family), how many
    off-target cells are Holm-significant drops at ``alpha``, and the XSTest and MMLU deltas.
    Empty when the rows carry no paired counts (results written before they existed)."""
    if not has_paired_counts(scores):
        return []
    matrix = {(r["variant"], r["seed"], r["target"], r["domain"]): r for r in ema_matrix_rows(scores, alpha)}
    runs: dict[tuple, dict[str, dict[str, dict]]] = {}
    for r in scores:
        if r["variant"] != "aligned":
            runs.setdefault((r["variant"], r["seed"]), {}).setdefault(r["target"], {})[r["set"]] = r
    order = {v: i for i, v in enumerate(VARIANT_TABLE)}
    out = []
    for variant, seed in sorted(runs, key=lambda k: (order.get(k[0], len(order)), str(k[1]))):
        by_target = dict(sorted(runs[(variant, seed)].items(), key=lambda kv: DOMAIN_VALUES.index(kv[0])))
        out += [_summary(variant, seed, t, {t: sets}, matrix) for t, sets in by_target.items()]
        if len(by_target) > 1:
            out.append(_summary(variant, seed, "all", by_target, matrix))
    return out
