"""Each method against NPO unlearning on the same prompts: which one spills over less, cell by cell.

    python scripts/method_contrast.py STUDY_DIR [--base unlearn] [--methods dpo rmu ...] [--out FILE.json]

For every method (default: every variant the study evaluated besides the base), target and seed,
each of the seven domain sets: both runs' refusal rates, the change method - base with an
Agresti-Min SE, the exact McNemar p, and Holm's correction over all off-target cells of all
methods together. Per method, the summary gives the mean off-target change against the base and
how many off-target cells differ after Holm (positive change: the method kept more refusals).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from spillover.contrast import paired_contrast
from spillover.io import write_json
from spillover.stats import normal_interval


def summarise(cells: list[dict], alpha: float = 0.05) -> list[dict]:
    """Per method: target change (mean over targets), mean off-target change with its 95% interval,
    Holm-significant off-target cells where the method kept more / fewer refusals than the base."""
    out = []
    for other in dict.fromkeys(c["other"] for c in cells):
        mine = [c for c in cells if c["other"] == other]
        off, on = [c for c in mine if not c["on_target"]], [c for c in mine if c["on_target"]]
        mean = sum(c["change"] for c in off) / len(off)
        se = math.sqrt(sum(c["change_se"] ** 2 for c in off)) / len(off)
        low, high = normal_interval(mean, se)
        out.append({"method": other, "targets": sorted({c["target"] for c in on}),
                    "target_change": round(sum(c["change"] for c in on) / len(on), 2),
                    "off_target_cells": len(off), "off_target_mean_change": round(mean, 2),
                    "off_target_ci": [round(low, 2), round(high, 2)],
                    "holm_more_refusals": sum(c["p_holm"] < alpha and c["change"] > 0 for c in off),
                    "holm_fewer_refusals": sum(c["p_holm"] < alpha and c["change"] < 0 for c in off)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--base", default="unlearn")
    ap.add_argument("--methods", nargs="*")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    methods = args.methods or sorted({p.parent.name for p in args.study.glob("eval/*/*/seed*")} - {args.base})
    cells = paired_contrast(args.study, args.base, methods)
    if not cells:
        raise SystemExit(f"{args.study}: no target was evaluated with {args.base} and any of {methods}")
    summary = summarise(cells)
    if args.out:
        write_json(args.out, {"base": args.base, "summary": summary, "cells": cells})
    for s in summary:
        print(f"{s['method']:>10} vs {args.base}: target {s['target_change']:+6.2f}  off-target mean "
              f"{s['off_target_mean_change']:+6.2f} [{s['off_target_ci'][0]:+.2f}, {s['off_target_ci'][1]:+.2f}]  "
              f"Holm: {s['holm_more_refusals']} kept more, {s['holm_fewer_refusals']} fewer of {s['off_target_cells']}")


if __name__ == "__main__":
    main()
