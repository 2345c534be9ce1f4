"""One tidy, long-format table of a study's refusal scores (``spillover export``).

One row per (variant, target, seed, evaluated set): the aligned model's rows have an empty target,
seed and checkpoint. Columns: ``EXPORT_COLUMNS``. ``p_holm`` and ``verdict`` come from
``results/ema_matrix.csv`` (Holm over each variant's and seed's off-target cells) and are empty
elsewhere; ``ema`` flags an off-target drop beyond the study's threshold.
"""

from __future__ import annotations

from pathlib import Path

from ..io import InputError, read_json, write_csv
from .data import SCORES, read_csv

EXPORT_COLUMNS = ["study", "model", "variant", "target", "seed", "checkpoint", "set", "n", "refusals", "rate",
                  "ci_low", "ci_high", "delta", "p_mcnemar", "p_holm", "ema", "verdict", "judge"]
MATRIX = {"variant": str, "seed": str, "target": str, "domain": str, "p_holm": float, "verdict": str}


def export_rows(root: Path) -> list[dict]:
    """The long table of the study in ``root`` (needs manifest.json and results/scores.csv)."""
    root = Path(root)
    manifest = read_json(root / "manifest.json")
    scores_path = root / "results" / "scores.csv"
    if not scores_path.exists():
        raise InputError(f"{scores_path}: file not found (run the study to its report stage first)")
    scores = read_csv(scores_path, {**SCORES, "ema": str, "checkpoint": str})
    matrix_path = root / "results" / "ema_matrix.csv"
    cells = {(r["variant"], r["seed"], r["target"], r["domain"]): r
             for r in (read_csv(matrix_path, MATRIX) if matrix_path.exists() else [])}
    out = []
    for r in scores:
        seed = "" if r["seed"] is None else r["seed"]
        cell = cells.get((r["variant"], str(seed), r["target"] or "", r["set"]), {})
        out.append({
            "study": manifest.get("study", root.name), "model": manifest.get("models", {}).get("aligned", ""),
            "variant": r["variant"], "target": r["target"] or "", "seed": seed, "checkpoint": r["checkpoint"],
            "set": r["set"], "n": r["n"], "refusals": r["k"], "rate": r["rate"], "ci_low": r["ci_low"],
            "ci_high": r["ci_high"], "delta": r["delta"], "p_mcnemar": r["p_mcnemar"], "p_holm": cell.get("p_holm"),
            "ema": r["ema"] == "True", "verdict": cell.get("verdict", ""), "judge": r["judge"],
        })
    return out


def write_export(root: Path, out: Path | None = None, fmt: str = "auto") -> Path:
    """Write the long table as Parquet (``fmt`` parquet, or auto with pyarrow installed) or CSV."""
    rows = export_rows(root)
    if fmt not in ("auto", "parquet", "csv"):
        raise InputError(f"--format: unknown format {fmt!r}; use auto, parquet or csv")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        if fmt == "parquet":
            raise InputError("--format parquet needs pyarrow (pip install pyarrow)") from None
        pa = None
    parquet = pa is not None and fmt != "csv"
    out = Path(out) if out else Path(root) / "results" / ("scores_long.parquet" if parquet else "scores_long.csv")
    if parquet:
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist([{c: r[c] for c in EXPORT_COLUMNS} for r in rows]), out)
    else:
        write_csv(out, EXPORT_COLUMNS, rows)
    return out
