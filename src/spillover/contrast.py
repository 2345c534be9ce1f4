"""Two variants of one study on the same prompts: per (target, set) refusal rates and exact tests.

A variant's evaluation (``eval/<target>/<variant>/seed<s>/responses.jsonl``) labels every prompt
of every set; two runs of one target and seed share their prompts, so each cell is a paired
comparison: both refusal rates, the discordant counts, the exact McNemar p and, over all
off-target cells of the comparisons asked for together, Holm's correction.
"""

from __future__ import annotations

from pathlib import Path

from .domains import DOMAINS
from .io import read_jsonl
from .judges.base import REFUSAL
from .stats import holm, mcnemar_exact, paired_change


def refusal_labels(run: Path) -> dict[tuple[str, str], bool]:
    """(set, prompt id) -> refused, from a run's ``responses.jsonl``."""
    return {(r["set"], r["id"]): r["label"] == REFUSAL for r in read_jsonl(run / "responses.jsonl")}


def _cell(target: str, seed: str, domain: str, a: dict, b: dict) -> dict:
    keys = sorted(k for k in a if k[0] == domain and k in b)
    if not keys:
        raise ValueError(f"{target}/{seed}: no prompt of set {domain!r} was judged in both runs")
    before, after = [a[k] for k in keys], [b[k] for k in keys]
    only_base, only_other, p = mcnemar_exact(before, after)
    change, se = paired_change(len(keys), only_base, only_other)
    return {"target": target, "seed": seed, "domain": domain, "n": len(keys),
            "rate_base": round(100 * sum(before) / len(keys), 2), "rate_other": round(100 * sum(after) / len(keys), 2),
            "refused_only_base": only_base, "refused_only_other": only_other,
            "change": round(100 * change, 2), "change_se": round(100 * se, 2), "p_mcnemar": round(p, 6)}


def paired_contrast(study: Path, base: str, others: list[str]) -> list[dict]:
    """Cells of ``other`` against ``base`` for every other in ``others``, every target and seed both ran.

    Each cell: ``other``, target, seed, domain, n, both rates (percent), the discordant counts, the
    Agresti-Min change other - base and its SE (points), McNemar p, ``on_target`` and ``p_holm``
    (Holm over every off-target cell returned; target cells keep their own p, None here).
    """
    cells = []
    for other in others:
        for run in sorted(study.glob(f"eval/*/{base}/seed*")):
            target, seed = run.parts[-3], run.name
            twin = study / "eval" / target / other / seed
            if not twin.is_dir():
                continue
            a, b = refusal_labels(run), refusal_labels(twin)
            for domain in (d.value for d in DOMAINS):
                cells.append({"other": other, **_cell(target, seed, domain, a, b), "on_target": domain == target})
    off = [c for c in cells if not c["on_target"]]
    for cell, p_adj in zip(off, holm([c["p_mcnemar"] for c in off])):
        cell["p_holm"] = round(p_adj, 6)
    for cell in cells:
        cell.setdefault("p_holm", None)
    return cells
