"""Render a study directory into one self-contained HTML page plus CSV/JSON/Markdown tables."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import jinja2
import yaml

from ..domains import Domain
from ..io import write_text
from ..spill import method_rows
from . import figures as F
from .data import DOMAIN_VALUES, VARIANT_LABELS, VARIANTS, StudyResults, load_study
from .tables import (COLUMN_LABELS, COLUMNS, METHOD_HEADER, SEED_ENVELOPE, Cell, aggregate, fmt, fmt_p, interval_text,
                     method_view, pick_judge, primary_rows, spillover_matrix, table_rows, targets, write_tables)
from .template import TEMPLATE


def _label(name: str) -> str:
    return COLUMN_LABELS.get(name, name) if name else "-"


def _run_label(variant: str, target: str) -> str:
    return VARIANT_LABELS[variant] + (f" ({_label(target)})" if target else "")


def _pm(value: float | None, se: float | None) -> str:
    """A percentage with its standard error: '71.2 ± 2.3', or '-' when not measured."""
    return "-" if value is None else f"{value:.1f}" + (f" \u00b1 {se:.1f}" if se is not None else "")


def _cell_view(c: Cell | None, target: str) -> dict:
    if c is None:
        return {"rate": "-", "title": "not evaluated", "cls": "na"}
    seeds = ", ".join(f"seed {'-' if s is None else s}: {fmt(r)}" for s, r in zip(c.seeds, c.seed_rates))
    title = f"n={c.n}, k={c.k}; judge: {c.judge}; {seeds}"
    if len(c.seeds) > 1:
        title += f"; seed sd {c.seed_sd:.1f}"
    if c.ci_method == SEED_ENVELOPE:
        title += "; interval: envelope of the per-seed 95% Wilson intervals"
    if c.p_mcnemar is not None:
        title += f"; McNemar p={c.p_mcnemar:.3g}"
    if c.p_holm is not None:
        title += f", Holm-corrected p={c.p_holm:.3g}"
    cls = " ".join(x for x in ("target" if c.set == target and target else "", "ema" if c.ema else "") if x)
    return {"rate": fmt(c.rate), "ci": interval_text(c), "delta": fmt(c.delta, True),
            "p_holm": fmt_p(c.p_holm) if c.ema else "",
            "title": title, "cls": cls, "spread": f"± {c.seed_sd:.1f}" if len(c.seeds) > 1 else ""}


def _paper_tables(study: StudyResults, cells: list[Cell]) -> list[dict]:
    chosen = pick_judge(cells, study.primary_judges)
    out = []
    for target, keys in table_rows(cells, study.primary_judges):
        header = [{"label": _label(s).upper() if s == target else _label(s), "target": s == target} for s in COLUMNS]
        rows = [{"label": VARIANT_LABELS[v], "cells": [_cell_view(chosen.get((v, t, s)), target) for s in COLUMNS]}
                for v, t in keys]
        out.append({"target": _label(target) if target else "", "header": header, "rows": rows})
    return out


def _column_judges(study: StudyResults, cells: list[Cell]) -> list[dict]:
    used: dict[str, set[str]] = defaultdict(set)
    for (_, _, s), c in pick_judge(cells, study.primary_judges).items():
        used[s].add(c.judge)
    return [{"set": _label(s), "judges": ", ".join(sorted(used[s]))} for s in COLUMNS if s in used]


def _figures(study: StudyResults, cells: list[Cell]) -> dict:
    chosen = pick_judge(cells, study.primary_judges)
    figs: dict = {"radar": [], "kl": []}
    for t in targets(cells) or [""]:
        rates = defaultdict(dict)
        for (v, tt, s), c in chosen.items():
            if s in DOMAIN_VALUES and (tt == t or v == "aligned"):
                rates[v][s] = c.rate
        if rates:
            figs["radar"].append(F.data_uri(F.radar(t, rates)))
    matrix = spillover_matrix(cells, study.primary_judges)
    figs["spillover"] = F.data_uri(F.spillover_heatmap(matrix, study.ema_threshold)) if matrix else None
    if study.kl:
        for t in sorted({r["target"] for r in study.kl}, key=DOMAIN_VALUES.index):
            figs["kl"].append(F.data_uri(F.kl_curves(t, [r for r in study.kl if r["target"] == t])))
    figs["loss"] = F.data_uri(F.loss_curves(study.train_log, study.checkpoints)) if study.train_log else None
    figs["hist"] = figs["hist_layer"] = figs["vecsim"] = figs["corr"] = None
    if study.concepts:
        layer = _histogram_layer(study)
        if layer is not None:
            figs["hist_layer"] = layer
            hists = {t: h for t, h in study.concepts["histograms"].items() if str(layer) in h}
            shown = [t for t in targets(cells) if t in hists] or sorted(hists, key=DOMAIN_VALUES.index)
            figs["hist"] = F.data_uri(F.similarity_histograms(study.concepts, layer, shown))
        if study.concepts.get("vector_similarity"):
            figs["vecsim"] = F.data_uri(F.vector_similarity_grid(study.concepts))
    if study.correlation and study.correlation.get("layers"):
        figs["corr"] = F.data_uri(F.correlation_curve(study.correlation))
    return figs


def _histogram_layer(study: StudyResults) -> int | None:
    """The correlation's best layer when histograms hold it, else the first histogram layer."""
    layers = sorted({int(l) for by_layer in (study.concepts.get("histograms") or {}).values() for l in by_layer})
    best = (study.correlation or {}).get("best_layer")
    if best in layers:
        return best
    return layers[0] if layers else None


def _prediction(study: StudyResults, cells: list[Cell]) -> list[dict]:
    """Predicted EMA ranking per target beside the observed unlearning delta."""
    if not study.prediction:
        return []
    matrix = spillover_matrix(cells, study.primary_judges).get("unlearn", {})
    out = []
    for target, ranking in sorted(study.prediction.items(), key=lambda kv: (kv[0] not in matrix, DOMAIN_VALUES.index(kv[0]))):
        observed = matrix.get(target, {})
        rows = [{"rank": i, "domain": _label(d), "score": f"{score:.4f}", "observed": fmt(observed.get(d), True)}
                for i, (d, score) in enumerate(ranking, 1)]
        out.append({"target": _label(target), "rows": rows})
    return out


def _examples(study: StudyResults) -> list[dict]:
    """Examples grouped by set, then by prompt: the aligned response first (once, whatever run it
    was listed with), the trained ones after."""
    order = {v: i for i, v in enumerate(VARIANTS)}
    groups: dict[str, dict[str, dict[tuple, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in study.examples or []:
        target = "" if r["variant"] == "aligned" else (r["target"] or "")
        run = _run_label(r["variant"], target) if r["variant"] in order else str(r["variant"])
        groups[r["set"]][r["prompt"]].setdefault(
            (order.get(r["variant"], 99), target, run, r["response"]),
            {"run": run, "label": r["label"], "judge": r["judge"], "response": r["response"]})
    out = []
    for s in sorted(groups, key=lambda s: COLUMNS.index(s) if s in COLUMNS else len(COLUMNS)):
        prompts = [{"prompt": p, "responses": [rs[k] for k in sorted(rs)]} for p, rs in groups[s].items()]
        out.append({"set": _label(s), "prompts": prompts})
    return out


def _agreement(study: StudyResults) -> list[dict]:
    rows = []
    for r in study.agreement or []:
        conf = r.get("confusion") or {}
        cols = sorted({b for row in conf.values() for b in row})
        rows.append({**r, "accuracy": f"{r.get('accuracy', float('nan')):.3f}",
                     "kappa": "" if r.get("kappa") is None else f"{r['kappa']:.3f}",
                     "conf_cols": cols, "conf_rows": [(a, [conf[a].get(b, 0) for b in cols]) for a in sorted(conf)]})
    return rows


def _calibration(study: StudyResults) -> list[dict]:
    def fmt(x) -> str:
        return "" if x is None else f"{float(x):.3f}"

    return [{**r, "kappa": fmt(r["kappa"]), "accuracy": fmt(r["accuracy"]),
             "ci": "" if not r.get("kappa_95ci") else f"[{fmt(r['kappa_95ci'][0])}, {fmt(r['kappa_95ci'][1])}]",
             "folds": ", ".join(f"{m} {fmt(k)}" for m, k in (r.get("folds") or {}).items())}
            for r in study.calibration or []]


def _manifest(study: StudyResults) -> dict:
    m = study.manifest
    timings = m.get("timings") or {}
    return {
        "config": yaml.safe_dump(m.get("config") or {}, sort_keys=False, allow_unicode=True) if m.get("config") else "",
        "versions": sorted((m.get("versions") or {}).items()),
        "datasets": sorted((m.get("datasets") or {}).items()),
        "models": [(k, v if isinstance(v, str) else json.dumps(v, sort_keys=True)) for k, v in (m.get("models") or {}).items()],
        "seeds": ", ".join(map(str, m.get("seeds") or [])),
        "created": m.get("created", ""),
        "timings": [(k, f"{float(v):.1f}") for k, v in timings.items()],
        "total_time": f"{sum(float(v) for v in timings.values()):.1f}" if timings else "",
        "not_trained": [f"{_run_label(r['variant'], r['target'])} (seed {r['seed']}): {r['set']} holds {r['examples']}"
                        for r in m.get("runs_not_trained") or []],
    }


def render(study: StudyResults) -> str:
    """The report page as an HTML string."""
    cells = aggregate(study)
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(TEMPLATE).render(
        study=study.name, primary=", ".join(study.primary_judges) or "not recorded",
        other_judges=", ".join(study.other_judges),
        threshold=f"{study.ema_threshold:g}", tables=_paper_tables(study, cells),
        column_judges=_column_judges(study, cells), fig=_figures(study, cells),
        checkpoints=study.checkpoints, agreement=_agreement(study), calibration=_calibration(study), prediction=_prediction(study, cells),
        methods=[method_view(r) for r in method_rows(primary_rows(study))], method_header=METHOD_HEADER,
        correlation=study.correlation, concepts=study.concepts, examples=_examples(study),
        manifest=_manifest(study), run_label=_run_label, domain_label=lambda d: Domain(d).label, pm=_pm,
    )


def build_report(study_dir: Path) -> Path:
    """Write ``study_dir/report/report.html`` and ``study_dir/report/tables/*``; return the HTML path."""
    study = load_study(Path(study_dir))
    out = Path(study_dir) / "report"
    write_tables(study, aggregate(study), out / "tables")
    write_text(out / "report.html", render(study))
    return out / "report.html"
