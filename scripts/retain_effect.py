"""Paired effect of the retain loss: a study's aug_<v> run against its plain <v> run, per off-target set.

    python scripts/retain_effect.py STUDY_DIR [--variant unlearn] [--out FILE.json]

For each target trained with both variants (same seed), each off-target domain set: both runs'
refusal rates on the same prompts, the exact McNemar test, and Holm's correction over all cells
(``spillover.contrast``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spillover.contrast import paired_contrast
from spillover.io import write_json

#: contrast field -> this script's historical JSON field.
FIELDS = {"target": "target", "seed": "seed", "domain": "domain", "n": "n", "rate_base": "rate_plain",
          "rate_other": "rate_aug", "refused_only_base": "refused_only_plain", "refused_only_other": "refused_only_aug",
          "p_mcnemar": "p_mcnemar", "p_holm": "p_holm"}


def retain_effect(study: Path, variant: str = "unlearn") -> list[dict]:
    cells = paired_contrast(study, variant, [f"aug_{variant}"])
    return [{new: c[old] for old, new in FIELDS.items()} for c in cells if not c["on_target"]]


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
