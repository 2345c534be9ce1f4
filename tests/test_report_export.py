"""``spillover export``: the long table carries every score row, the Holm verdicts and the judge."""

from __future__ import annotations

import csv
import importlib.util

import pytest
from typer.testing import CliRunner

from report_fixture import make_study
from spillover.cli import app
from spillover.io import InputError
from spillover.report.export import EXPORT_COLUMNS, export_rows, write_export


def _matrix(root, rows):
    with (root / "results" / "ema_matrix.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["variant", "seed", "target", "domain", "p_holm", "verdict"])
        w.writeheader()
        w.writerows(rows)


def test_export_has_one_row_per_score_with_the_holm_verdict(tmp_path):
    root = make_study(tmp_path / "s", targets=("safety",), optional=False, two_judges=False)
    _matrix(root, [{"variant": "unlearn", "seed": "0", "target": "safety", "domain": "privacy",
                    "p_holm": "0.0123", "verdict": "drop"}])
    with (root / "results" / "scores.csv").open() as f:
        scores = list(csv.DictReader(f))
    rows = export_rows(root)
    assert len(rows) == len(scores)
    for r, s in zip(rows, scores):
        assert (r["variant"], r["set"], r["n"], r["refusals"], r["judge"]) == (s["variant"], s["set"], int(s["n"]), int(s["k"]), s["judge"])
        assert r["study"] == "fixture-study" and r["model"].startswith("embedded:qwen2.5-coder-0.5b-instruct")
    cell = [r for r in rows if (r["variant"], r["target"], r["set"]) == ("unlearn", "safety", "privacy")]
    assert len(cell) == 1 and cell[0]["p_holm"] == pytest.approx(0.0123) and cell[0]["verdict"] == "drop"
    others = [r for r in rows if r is not cell[0]]
    assert all(r["p_holm"] is None and r["verdict"] == "" for r in others)
    assert {r["ema"] for r in rows} == {True, False}  # the fixture has EMA cells and others


def test_export_cli_writes_csv_without_pyarrow_and_names_the_missing_package(tmp_path):
    root = make_study(tmp_path / "s", targets=("safety",), optional=False, two_judges=False)
    out = tmp_path / "long.csv"
    result = CliRunner().invoke(app, ["export", str(root), "--out", str(out), "--format", "csv"])
    assert result.exit_code == 0, result.output
    with out.open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == EXPORT_COLUMNS and len(list(reader)) == len(export_rows(root))
    if importlib.util.find_spec("pyarrow") is None:
        with pytest.raises(InputError, match="pyarrow"):
            write_export(root, tmp_path / "x.parquet", "parquet")
        assert write_export(root).suffix == ".csv"
    with pytest.raises(InputError, match="manifest.json"):
        export_rows(tmp_path)
    (root / "results" / "scores.csv").unlink()
    with pytest.raises(InputError, match="scores.csv"):
        export_rows(root)
