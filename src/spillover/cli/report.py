"""``spillover report``: render a study directory into one HTML page plus tables."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app


@app.command()
def report(study_dir: Path = typer.Argument(..., help="A study directory (runs/<study>).")) -> None:
    """Write STUDY_DIR/report/report.html and STUDY_DIR/report/tables/*; print where they are."""
    from ..report import build_report

    html = build_report(study_dir)
    typer.echo(f"report: {html}")
    typer.echo(f"tables: {html.parent / 'tables'}")


@app.command()
def export(
    study_dir: Path = typer.Argument(..., help="A study directory (runs/<study>)."),
    out: Path = typer.Option(None, help="Output file (default STUDY_DIR/results/scores_long.parquet or .csv)."),
    format: str = typer.Option("auto", help="auto (Parquet when pyarrow is installed, else CSV), parquet or csv."),
) -> None:
    """Write one long table of every refusal score: study, model, variant, target, seed, checkpoint,
    set, n, refusals, rate, 95% interval, delta, McNemar and Holm p, EMA flag, verdict, judge."""
    from ..report.export import write_export

    typer.echo(f"export: {write_export(study_dir, out, format)}")
