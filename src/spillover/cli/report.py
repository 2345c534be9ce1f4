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
