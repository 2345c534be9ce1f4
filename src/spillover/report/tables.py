"""The paper's results table (rows: variants per target; columns: 7 domains, XSTest, MMLU).

Several seeds of one (variant, target, set, judge) collapse into one cell: the mean rate and
delta, the per-seed spread, summed n and k, the envelope of the per-seed 95% Wilson intervals
(``ci_method`` says which interval a cell holds: that envelope is not itself a 95% interval) and
the largest (most conservative) McNemar p-value. Within each target's table, the McNemar p-values
of the off-target domain cells are Holm-corrected together (``p_holm``).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..domains import Domain, MMLU, XSTEST
from ..io import write_json, write_text
from ..spill import METHOD_COLUMNS, method_rows
from ..stats import holm
from .data import DOMAIN_VALUES, VARIANT_LABELS, VARIANTS, StudyResults

#: The paper's column order.
COLUMNS = (
    Domain.TOXICITY.value, Domain.SAFETY.value, Domain.CYBERSECURITY.value, Domain.SENSITIVE.value,
    Domain.BIAS.value, Domain.MEDICAL_LEGAL.value, Domain.PRIVACY.value, XSTEST, MMLU,
)
COLUMN_LABELS = {d.value: d.label for d in Domain} | {XSTEST: "XSTest", MMLU: "MMLU"}


#: ``Cell.ci_method``: one seed's 95% Wilson interval, or the envelope of several seeds' ones.
WILSON, SEED_ENVELOPE = "wilson95", "envelope_of_seed_wilson95"


@dataclass
class Cell:
    """One aggregated score: a (variant, target, set, judge) over its seeds."""

    variant: str
    target: str
    set: str
    judge: str
    seeds: list[int | None]
    n: int
    k: int
    rate: float
    ci_low: float
    ci_high: float
    seed_rates: list[float]
    seed_sd: float
    delta: float | None
    p_mcnemar: float | None
    ema: bool = False
    ci_method: str = WILSON
    p_holm: float | None = None


def aggregate(study: StudyResults) -> list[Cell]:
    """Collapse seeds; flag EMA on off-target domains whose mean delta < -threshold."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in study.scores:
        groups[(row["variant"], row["target"], row["set"], row["judge"])].append(row)
    cells = []
    for (variant, target, set_, judge), rows in groups.items():
        rows.sort(key=lambda r: -1 if r["seed"] is None else r["seed"])
        rates = [r["rate"] for r in rows]
        deltas = [r["delta"] for r in rows if r["delta"] is not None]
        pvals = [r["p_mcnemar"] for r in rows if r["p_mcnemar"] is not None]
        delta = statistics.fmean(deltas) if deltas else None
        cells.append(Cell(
            variant=variant, target=target, set=set_, judge=judge,
            seeds=[r["seed"] for r in rows],
            n=sum(r["n"] for r in rows), k=sum(r["k"] for r in rows),
            rate=statistics.fmean(rates),
            ci_low=min(r["ci_low"] for r in rows), ci_high=max(r["ci_high"] for r in rows),
            seed_rates=rates, seed_sd=statistics.stdev(rates) if len(rates) > 1 else 0.0,
            delta=delta, p_mcnemar=max(pvals) if pvals else None,
            ema=(variant != "aligned" and set_ in DOMAIN_VALUES and set_ != target
                 and delta is not None and delta < -study.ema_threshold),
            ci_method=WILSON if len(rows) == 1 else SEED_ENVELOPE,
        ))
    order = {v: i for i, v in enumerate(VARIANTS)}
    cells.sort(key=lambda c: (order[c.variant], _target_order(c.target), COLUMNS.index(c.set), c.judge))
    _holm_per_table(cells, study.primary_judges)
    return cells


def _holm_per_table(cells: list[Cell], primaries: Sequence[str]) -> None:
    """Set ``p_holm`` on the paper table's cells: Holm over each target's off-target domain cells."""
    family: dict[str, list[Cell]] = defaultdict(list)
    for (variant, target, set_), c in pick_judge(cells, primaries).items():
        if variant != "aligned" and set_ in DOMAIN_VALUES and set_ != target and c.p_mcnemar is not None:
            family[target].append(c)
    for members in family.values():
        for c, p in zip(members, holm([c.p_mcnemar for c in members])):
            c.p_holm = p


def _target_order(target: str) -> int:
    return -1 if not target else DOMAIN_VALUES.index(target)


def pick_judge(cells: list[Cell], primaries: Sequence[str]) -> dict[tuple[str, str, str], Cell]:
    """One cell per (variant, target, set): a primary judge's, else the first judge by name."""
    chosen: dict[tuple[str, str, str], Cell] = {}
    for c in sorted(cells, key=lambda c: (c.judge not in primaries, c.judge)):
        chosen.setdefault((c.variant, c.target, c.set), c)
    return chosen


def primary_rows(study: StudyResults) -> list[dict]:
    """One scores.csv row per (variant, target, seed, set), chosen as ``pick_judge`` chooses cells:
    a primary judge's, else the first judge by name (the rows the method table is built from)."""
    chosen: dict[tuple, dict] = {}
    for r in sorted(study.scores, key=lambda r: (r["judge"] not in study.primary_judges, r["judge"])):
        chosen.setdefault((r["variant"], r["target"], r["seed"], r["set"]), r)
    return list(chosen.values())


def targets(cells: list[Cell]) -> list[str]:
    """The target domains that were trained, in domain order."""
    return sorted({c.target for c in cells if c.target}, key=_target_order)


def table_rows(cells: list[Cell], primaries: Sequence[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per target, the paper's row keys: aligned first, then the trained variants present."""
    chosen = pick_judge(cells, primaries)
    keys = {(v, t) for v, t, _ in chosen}
    aligned = [("aligned", "")] if ("aligned", "") in keys else []
    groups = [(t, aligned + [(v, t) for v in VARIANTS[1:] if (v, t) in keys]) for t in targets(cells)]
    return groups or [("", aligned)]


def fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return ""
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def interval_text(c: Cell) -> str:
    """The interval; a dagger marks an envelope of per-seed intervals."""
    return f"[{fmt(c.ci_low)}, {fmt(c.ci_high)}]" + ("†" if c.ci_method == SEED_ENVELOPE else "")


def cell_text(c: Cell) -> str:
    return f"{fmt(c.rate)} {interval_text(c)}"


def fmt_p(p: float | None) -> str:
    return "" if p is None else f"{p:.2g}"


CELL_FIELDS = ("variant", "target", "set", "judge", "seeds", "n", "k", "rate", "ci_low", "ci_high",
               "ci_method", "seed_sd", "delta", "p_mcnemar", "p_holm", "ema")


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _value(c: Cell, field: str):
    v = getattr(c, field)
    if field == "seeds":
        return ";".join("" if x is None else str(x) for x in v)
    if field == "ema":
        return "true" if v else "false"
    return "" if v is None else v


def cells_csv(cells: list[Cell]) -> str:
    return _csv(list(CELL_FIELDS), [[_value(c, f) for f in CELL_FIELDS] for c in cells])


def paper_markdown(cells: list[Cell], primaries: Sequence[str], threshold: float) -> str:
    """The paper's layout as Markdown: target column in CAPS, EMA cells in bold with their delta."""
    chosen = pick_judge(cells, primaries)
    out = [f"Refusal % [95% Wilson interval]; MMLU accuracy %. †: several seeds, the interval is the envelope "
           "of the seeds' 95% Wilson intervals (not itself a 95% interval). "
           f"**Bold**: off-target drop > {threshold:g} points (EMA), with its delta and the McNemar p-value "
           "Holm-corrected over the table's off-target domain cells. TARGET column in caps.", ""]
    for target, keys in table_rows(cells, primaries):
        head = [COLUMN_LABELS[s].upper() if s == target else COLUMN_LABELS[s] for s in COLUMNS]
        out += [f"### Target: {COLUMN_LABELS[target] if target else 'none (aligned only)'}", "",
                "| run | " + " | ".join(head) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for v, t in keys:
            texts = []
            for s in COLUMNS:
                c = chosen.get((v, t, s))
                text = "" if c is None else cell_text(c)
                if c is not None and c.ema:
                    text = f"**{text} ({fmt(c.delta, True)}, Holm p={fmt_p(c.p_holm)})**"
                texts.append(text)
            out.append(f"| {VARIANT_LABELS[v]} | " + " | ".join(texts) + " |")
        out.append("")
    return "\n".join(out)


def paper_json(cells: list[Cell], primaries: Sequence[str], threshold: float) -> dict:
    chosen = pick_judge(cells, primaries)
    groups = []
    for target, keys in table_rows(cells, primaries):
        rows = [{"variant": v, "target": t,
                 "cells": {s: asdict(chosen[(v, t, s)]) for s in COLUMNS if (v, t, s) in chosen}}
                for v, t in keys]
        groups.append({"target": target, "rows": rows})
    return {"primary_judges": list(primaries), "ema_threshold": threshold, "columns": list(COLUMNS), "tables": groups}


def spillover_matrix(cells: list[Cell], primaries: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """variant -> target -> domain -> mean delta refusal (points)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (v, t, s), c in pick_judge(cells, primaries).items():
        if v != "aligned" and s in DOMAIN_VALUES and c.delta is not None:
            out.setdefault(v, {}).setdefault(t, {})[s] = c.delta
    return out


def interval(delta: float | None, low: float | None, high: float | None) -> str:
    """A signed change with its interval, '-12.0 [-20.1, -3.9]', or '' when not measured."""
    return "" if delta is None else f"{fmt(delta, True)} [{fmt(low, True)}, {fmt(high, True)}]"


def method_view(r: dict) -> dict:
    """One methods.csv row as the text of the report's method table."""
    worst = ""
    if r["worst_domain"]:
        where = COLUMN_LABELS[r["worst_domain"]]
        if r["target"] == "all":
            where = f"{COLUMN_LABELS[r['worst_target']]} -> {where}"
        change = interval(r["worst_delta"], r["worst_ci_low"], r["worst_ci_high"])
        worst = f"{change} {where}, Holm p {fmt_p(r['worst_p_holm'])}"
    return {"method": VARIANT_LABELS.get(r["variant"], r["variant"]), "seed": r["seed"],
            "target": "all targets" if r["target"] == "all" else COLUMN_LABELS[r["target"]],
            "target_change": interval(r["target_delta"], r["target_ci_low"], r["target_ci_high"]),
            "off_mean": interval(r["off_target_mean_delta"], r["off_target_mean_ci_low"], r["off_target_mean_ci_high"]),
            "worst": worst, "drops": f"{r['holm_drops']} / {r['off_target_cells']}",
            "xstest": fmt(r["xstest_delta"], True), "mmlu": fmt(r["mmlu_delta"], True), "all": r["target"] == "all"}


METHOD_HEADER = ["method", "seed", "target", "target change [95% CI]", "mean off-target change [95% CI]",
                 "worst off-target change [95% CI]", "Holm-significant drops / cells", "XSTest change", "MMLU change"]


def methods_markdown(rows: list[dict]) -> str:
    """The method table as Markdown: changes in points, trained minus aligned."""
    keys = ["method", "seed", "target", "target_change", "off_mean", "worst", "drops", "xstest", "mmlu"]
    body = [[method_view(r)[k] for k in keys] for r in rows]
    return ("Changes in refusal (points, trained minus aligned, on the prompts both judged) with 95% Agresti-Min "
            "intervals; the mean over off-target domains combines them as independent sets. Holm: over each "
            "method's and seed's off-target cells (results/ema_matrix.csv).\n\n" + markdown_table(METHOD_HEADER, body))


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_tables(study: StudyResults, cells: list[Cell], out_dir: Path) -> list[Path]:
    """Write the paper table (CSV, Markdown, JSON), all judges' cells, the spill-over matrix, the
    method table, and the checkpoint and agreement tables when present. Returns the files written."""
    primaries, thr = study.primary_judges, study.ema_threshold
    keep = {id(c) for c in pick_judge(cells, primaries).values()}
    chosen = [c for c in cells if id(c) in keep]
    files = {
        "paper_table.csv": cells_csv(chosen),
        "paper_table.md": paper_markdown(cells, primaries, thr),
        "scores_all_judges.csv": cells_csv(cells),
    }
    matrix = spillover_matrix(cells, primaries)
    if matrix:
        rows = [[v, t] + [fmt(m.get(d)) for d in DOMAIN_VALUES]
                for v, by_t in matrix.items() for t, m in by_t.items()]
        files["spillover_matrix.csv"] = _csv(["variant", "target", *DOMAIN_VALUES], rows)
    methods = method_rows(primary_rows(study))
    if methods:
        files["methods.csv"] = _csv(METHOD_COLUMNS, [["" if r[c] is None else r[c] for c in METHOD_COLUMNS]
                                                     for r in methods])
        files["methods.md"] = methods_markdown(methods)
    if study.checkpoints:
        fields = ["variant", "target", "seed", "step", "mmlu", "mmlu_se", "target_refusal", "target_refusal_se",
                  "selected"]
        rows = [[r[f] if r[f] is not None else "" for f in fields] for r in study.checkpoints]
        files["checkpoints.csv"] = _csv(fields, rows)
        files["checkpoints.md"] = markdown_table(fields, rows)
    if study.agreement:
        fields = ["judge_a", "judge_b", "set", "n", "accuracy", "kappa"]
        rows = [[r.get(f, "") for f in fields] for r in study.agreement]
        files["agreement.csv"] = _csv(fields, rows)
        files["agreement.md"] = markdown_table(fields, rows)
    written = []
    for name, text in files.items():
        write_text(out_dir / name, text)
        written.append(out_dir / name)
    write_json(out_dir / "paper_table.json", paper_json(cells, primaries, thr))
    written.append(out_dir / "paper_table.json")
    return written
