"""Paired effect of the retain loss: a study's aug_<v> run against its plain <v> run, per off-target set.

    python scripts/retain_effect.py STUDY_DIR [--variant unlearn] [--out FILE.json]

For each target trained with both variants (same seed), each off-target domain set: both runs'
refusal rates on the same prompts, the exact McNemar test, and Holm's correction over all cells.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spillover.domains import DOMAINS
from spillover.io import read_jsonl, write_json
from spillover.judges.base import REFUSAL
from spillover.stats import holm, mcnemar_exact


def _labels(run: Path) -> dict[tuple[str, str], bool]:
    return {(r["set"], r["id"]): r["label"] == REFUSAL for r in read_jsonl(run / "responses.jsonl")}


def retain_effect(study: Path, variant: str = "unlearn") -> list[dict]:
    cells = []
    for plain in sorted(study.glob(f"eval/*/{variant}/seed*")):
        target, seed = plain.parts[-3], plain.name
        aug = study / "eval" / target / f"aug_{variant}" / seed
        if not aug.is_dir():
            continue
        a, b = _labels(plain), _labels(aug)
        for domain in (d.value for d in DOMAINS if d.value != target):
            keys = sorted(k for k in a if k[0] == domain and k in b)
            before, after = [a[k] for k in keys], [b[k] for k in keys]
            only_plain, only_aug, p = mcnemar_exact(before, after)
            cells.append({"target": target, "seed": seed, "domain": domain, "n": len(keys),
                          "rate_plain": round(100 * sum(before) / len(keys), 2),
                          "rate_aug": round(100 * sum(after) / len(keys), 2),
                          "refused_only_plain": only_plain, "refused_only_aug": only_aug, "p_mcnemar": round(p, 6)})
    for cell, p_adj in zip(cells, holm([c["p_mcnemar"] for c in cells])):
        cell["p_holm"] = round(p_adj, 6)
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--variant", default="unlearn")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cells = retain_effect(args.study, args.variant)
    if args.out:
        write_json(args.out, {"variant": args.variant, "cells": cells})
    for c in cells:
        print(f"{c['target']:>14} {c['domain']:>14} n={c['n']:<3} {args.variant} {c['rate_plain']:6.2f}  "
              f"aug_{args.variant} {c['rate_aug']:6.2f}  p={c['p_mcnemar']:.3g}  Holm p={c['p_holm']:.3g}")


if __name__ == "__main__":
    main()
