"""Render a ``spillover.comparison`` result: the paper's table (Markdown, CSV), radar PNG and HTML."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import jinja2

from ..comparison import SetComparison
from ..domains import Domain
from ..evaluation import SetScore
from ..io import write_text
from . import figures as F
from .tables import COLUMN_LABELS, COLUMNS, Cell, cell_text, fmt, fmt_p, markdown_table
from .template import COMPARE_TEMPLATE

#: Colours of the two runs on the radar: A (dashed) and B.
COLOURS = ("#555555", "#d62728")
TEST_FIELDS = ("set", "judge", "n_paired", "refusals_lost", "refusals_gained", "delta", "p_mcnemar", "p_holm", "ema")
CSV_FIELDS = ("set", "judge", "n_a", "k_a", "rate_a", "ci_low_a", "ci_high_a", "n_b", "k_b", "rate_b", "ci_low_b",
              "ci_high_b") + TEST_FIELDS[2:]


def _cell(label: str, s: SetScore, c: SetComparison, target: str) -> Cell:
    return Cell(variant=label, target=target, set=s.set, judge=s.judge, seeds=[None], n=s.n, k=s.k, rate=s.rate,
                ci_low=s.ci_low, ci_high=s.ci_high, seed_rates=[s.rate], seed_sd=0.0, delta=c.delta,
                p_mcnemar=c.p_mcnemar, ema=c.ema, p_holm=c.p_holm)


def _columns(result: list[SetComparison]) -> list[str]:
    """The paper's columns the comparison holds, then any other set."""
    present = {c.set for c in result}
    return [s for s in COLUMNS if s in present] + sorted(present - set(COLUMNS))


def _tests(result: list[SetComparison]) -> list[list[str]]:
    return [[c.set, c.judge, "" if c.n_paired is None else str(c.n_paired),
             "" if c.refusals_lost is None else str(c.refusals_lost),
             "" if c.refusals_gained is None else str(c.refusals_gained), fmt(c.delta, True),
             fmt_p(c.p_mcnemar), fmt_p(c.p_holm), "yes" if c.ema else ""] for c in result]


def comparison_markdown(result: list[SetComparison], labels: tuple[str, str], target: str, threshold: float) -> str:
    """The paper's layout (rows A and B; EMA cells of B in bold) and the paired tests."""
    by_set = {c.set: c for c in result}
    cols = _columns(result)
    head = [COLUMN_LABELS.get(s, s).upper() if s == target else COLUMN_LABELS.get(s, s) for s in cols]
    out = [f"Refusal % [95% Wilson interval]; MMLU accuracy %. **Bold**: off-target drop > {threshold:g} points "
           "(EMA), with its delta and the exact McNemar p-value Holm-corrected over the off-target domain sets."
           + (" TARGET column in caps." if target else ""), "",
           "| run | " + " | ".join(head) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, side in zip(labels, ("a", "b")):
        texts = []
        for s in cols:
            c = by_set[s]
            text = cell_text(_cell(label, getattr(c, side), c, target))
            if side == "b" and c.ema:
                text = f"**{text} ({fmt(c.delta, True)}, Holm p={fmt_p(c.p_holm)})**"
            texts.append(text)
        out.append(f"| {label} | " + " | ".join(texts) + " |")
    return "\n".join(out) + "\n\nPaired tests (B - A, on the prompts both runs judged):\n\n" + markdown_table(
        list(TEST_FIELDS), _tests(result))


def comparison_csv(result: list[SetComparison]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for c in result:
        w.writerow([c.set, c.judge, c.a.n, c.a.k, c.a.rate, c.a.ci_low, c.a.ci_high, c.b.n, c.b.k, c.b.rate,
                    c.b.ci_low, c.b.ci_high, *("" if v is None else v for v in (
                        c.n_paired, c.refusals_lost, c.refusals_gained, c.delta, c.p_mcnemar, c.p_holm)),
                    "true" if c.ema else "false"])
    return buf.getvalue()


def comparison_radar(result: list[SetComparison], labels: tuple[str, str], target: str) -> bytes:
    """The seven domains' refusal rates of A and B on the report's radar, as PNG bytes."""
    rates = {labels[0]: {c.set: c.a.rate for c in result}, labels[1]: {c.set: c.b.rate for c in result}}
    title = f"{labels[0]} vs {labels[1]}" + (f" (target: {Domain(target).label})" if target else "")
    return F.png_bytes(F.radar(target, rates, labels=dict(zip(labels, labels)),
                               colours=dict(zip(labels, COLOURS)), title=title))


def comparison_html(result: list[SetComparison], labels: tuple[str, str], paths: tuple[Path, Path], target: str,
                    threshold: float, radar_png: bytes) -> str:
    """One self-contained page: the table, the paired tests and the radar (inline PNG)."""
    by_set = {c.set: c for c in result}
    cols = _columns(result)
    header = [{"label": COLUMN_LABELS.get(s, s).upper() if s == target else COLUMN_LABELS.get(s, s),
               "target": s == target} for s in cols]
    rows = []
    for label, side in zip(labels, ("a", "b")):
        cells = []
        for s in cols:
            c, score = by_set[s], getattr(by_set[s], side)
            p = "" if c.p_mcnemar is None else f"; McNemar p={c.p_mcnemar:.3g}"
            cells.append({"rate": fmt(score.rate), "ci": f"[{fmt(score.ci_low)}, {fmt(score.ci_high)}]",
                          "delta": fmt(c.delta, True) if side == "b" else "",
                          "p_holm": fmt_p(c.p_holm) if side == "b" and c.ema else "",
                          "title": f"n={score.n}, k={score.k}; judge: {score.judge}" + (p if side == "b" else ""),
                          "cls": " ".join(x for x in ("target" if s == target else "",
                                                       "ema" if side == "b" and c.ema else "") if x)})
        rows.append({"label": label, "cells": cells})
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(COMPARE_TEMPLATE).render(
        label_a=labels[0], label_b=labels[1], path_a=str(paths[0]), path_b=str(paths[1]),
        target=Domain(target).label if target else "", threshold=f"{threshold:g}", header=header, rows=rows,
        tests_header=TEST_FIELDS, tests=_tests(result), radar=F.png_uri(radar_png))


def write_comparison(result: list[SetComparison], labels: tuple[str, str], paths: tuple[Path, Path], target: str,
                     threshold: float, out_dir: Path) -> list[Path]:
    """Write compare.md, compare.csv, radar.png and compare.html to ``out_dir``; return them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = comparison_radar(result, labels, target)
    (out_dir / "radar.png").write_bytes(png)
    write_text(out_dir / "compare.md", comparison_markdown(result, labels, target, threshold))
    write_text(out_dir / "compare.csv", comparison_csv(result))
    write_text(out_dir / "compare.html", comparison_html(result, labels, paths, target, threshold, png))
    return [out_dir / n for n in ("compare.md", "compare.csv", "radar.png", "compare.html")]
