"""Gather every stage's outputs into the tables the report reads (``<study>/results``)."""

from __future__ import annotations

import datetime as dt
import math
import platform
import random
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ..domains import DOMAINS
from ..evaluation import compare, read_scores
from ..io import read_json, read_jsonl, write_csv, write_json, write_jsonl
from ..judges import agreement
from ..models import model_identity
from ..spill import EMA_COLUMNS, METHOD_COLUMNS, PAIRED, ema_matrix_rows, method_rows
from ..training.edits import EDIT_FILE
from .names import run_name
from .training import loss_formulas

if TYPE_CHECKING:
    from .pipeline import Study

DOMAIN_NAMES = [d.value for d in DOMAINS]
SCORE_COLUMNS = ["variant", "target", "seed", "set", "judge", "n", "k", "rate", "ci_low", "ci_high",
                 "delta", "p_mcnemar", "n_paired", "refusals_lost", "refusals_gained", "ema", "checkpoint", "unparsable"]


def _delta(trained, aligned) -> float:
    """Change in rate (points) from the counts, not from the rounded rates."""
    if not (trained.n and aligned.n):
        return math.nan
    return 100 * (trained.k / trained.n - aligned.k / aligned.n)


def score_rows(study: Study) -> tuple[list[dict], dict]:
    """Rows of scores.csv, and EMA drops {(target, domain): [drop per seed]} of the unlearn runs."""
    root, cfg = study.root, study.cfg
    aligned_rows = read_jsonl(root / "baseline" / "responses.jsonl")
    aligned = {s.set: s for s in read_scores(root / "baseline")}
    out = [{"variant": "aligned", "target": "", "seed": "", **vars(s), "delta": "", "p_mcnemar": "",
            **dict.fromkeys(PAIRED, ""), "ema": False, "checkpoint": ""} for s in aligned.values()]
    drops: dict = {}
    for target, variant, seed in study.trained_runs():
        d = root / "eval" / run_name(target, variant, seed)
        rows = read_jsonl(d / "responses.jsonl")
        step = read_json(d / "checkpoint.json")["step"]
        for s in read_scores(d):
            delta = _delta(s, aligned[s.set])
            paired = {} if s.set == "mmlu" else compare(aligned_rows, rows, s.set)
            off_target = s.set in DOMAIN_NAMES and s.set != target
            out.append({"variant": variant, "target": target, "seed": seed, **vars(s), "delta": round(delta, 2),
                        "p_mcnemar": round(paired["p_mcnemar"], 6) if paired else "",
                        **{c: paired.get(c, "") for c in PAIRED},
                        "ema": off_target and -delta > cfg.evaluation.ema_threshold, "checkpoint": step})
            if off_target:
                drops.setdefault(variant, {}).setdefault((target, s.set), []).append(-delta)
    return out, drops


#: checkpoints.csv: each selection figure (percent) with its binomial standard error (points).
CHECKPOINT_COLUMNS = ["variant", "target", "seed", "step", "mmlu", "mmlu_se", "target_refusal", "target_refusal_se",
                      "selected"]


def training_rows(study: Study) -> tuple[list[dict], list[dict], list[dict]]:
    """(kl.csv, train_log.csv, checkpoints.csv) rows from every train stage."""
    kl, log, ckpts = [], [], []
    for target, variant, seed in study.trained_runs():
        d = study.root / "train" / run_name(target, variant, seed)
        key = {"variant": variant, "target": target, "seed": seed}
        for r in read_jsonl(d / "diagnostics.jsonl"):
            kl.extend({**key, "step": r["step"], "domain": dom, "kl": v} for dom, v in r.get("kl", {}).items())
        log.extend({**key, **r} for r in read_jsonl(d / "train_log.jsonl"))
        ckpts.extend({**key, **r} for r in read_jsonl(d / "checkpoints.jsonl"))
    return kl, log, ckpts


def edit_rows(study: Study) -> list[dict]:
    """edits.jsonl rows: what each training-free run recorded (train/<run>/edit.json), keyed by the run."""
    out = []
    for target, variant, seed in study.trained_runs():
        path = study.root / "train" / run_name(target, variant, seed) / EDIT_FILE
        if path.exists():
            out.append({"variant": variant, "target": target, "seed": seed, **read_json(path)})
    return out


def train_log_columns(log: list[dict]) -> list[str]:
    """train_log.csv columns: the run, step, loss, every logged loss term (first-seen order), lr."""
    fixed = ["variant", "target", "seed", "step", "loss"]
    terms = list(dict.fromkeys(k for r in log for k in r if k not in (*fixed, "lr", "elapsed")))
    return [*fixed, *terms, "lr"]


def example_rows(study: Study, per_set: int) -> list[dict]:
    """A few prompts per set and run, aligned and trained side by side; flipped labels first."""
    root = study.root
    aligned = {(r["set"], r["id"]): r for r in read_jsonl(root / "baseline" / "responses.jsonl")}
    out = []
    for target, variant, seed in study.trained_runs():
        if seed != study.cfg.seeds[0]:
            continue
        rows = read_jsonl(root / "eval" / run_name(target, variant, seed) / "responses.jsonl")
        for name in study.cfg.evaluation.sets:
            mine = [r for r in rows if r["set"] == name]
            mine.sort(key=lambda r: aligned[(name, r["id"])]["label"] == r["label"])
            for r in mine[:per_set]:
                a = aligned[(name, r["id"])]
                for who, row in (("aligned", a), (variant, r)):
                    out.append({"variant": who, "target": target, "set": name, "id": r["id"],
                                "prompt": row["prompt"], "response": row["response"], "label": row["label"],
                                "judge": row.get("judge", "")})
    return out


def audit_rows(study: Study) -> list[dict]:
    """Agreement of the audit judge with each set's primary judge on a seeded random subsample."""
    j = study.cfg.judges
    if not j.audit_spec or j.audit_sample <= 0:
        return []
    root = study.root
    rows = read_jsonl(root / "baseline" / "responses.jsonl")
    for target, variant, seed in study.trained_runs():
        rows += read_jsonl(root / "eval" / run_name(target, variant, seed) / "responses.jsonl")
    sample = random.Random(0).sample(rows, min(j.audit_sample, len(rows)))
    verdicts = study.judges.judge(j.audit_spec, sample)
    audit_id = verdicts[0].judge_id if verdicts else j.audit_spec
    out = []
    groups = {"all": sample, **{s: [r for r in sample if r["set"] == s] for s in sorted({r["set"] for r in sample})}}
    labels = {id(r): v.label for r, v in zip(sample, verdicts)}
    for name, group in groups.items():
        if not group:
            continue
        stats = agreement([r["label"] for r in group], [labels[id(r)] for r in group])
        out.append({"judge_a": "primary" if name == "all" else group[0]["judge"], "judge_b": audit_id,
                    "set": name, "n": stats.n, "accuracy": stats.accuracy, "kappa": stats.kappa,
                    "confusion": stats.confusion})
    return out


def calibration_rows(study: Study) -> list[dict]:
    """Human-label agreement of each primary judge that carries a calibration (a probe or the
    default judge): its card's leave-one-model-out figures on XSTest v2, and a fresh calibration
    on the shipped hand-labelled responses of this project's models."""
    from ..judges.calibration import calibrate
    from ..judges.labelled import OWN_SET, own_labels_path, read_labelled

    out = []
    for spec in sorted({study.cfg.judges.spec_for(s) for s in study.cfg.evaluation.sets}):
        judge = study.judges.get(spec)
        card = getattr(judge, "card", None)
        if not card:
            continue
        pooled = card.get("leave_one_model_out_pooled", {})
        out.append({"judge": judge.id, "set": card.get("set"), "mode": "leave-one-answering-model-out",
                    "n": card.get("n"), "kappa": pooled.get("kappa"), "kappa_95ci": pooled.get("kappa_95ci"),
                    "accuracy": pooled.get("accuracy"),
                    "folds": {m: f["kappa"] for m, f in card.get("leave_one_model_out", {}).items()}})
        own = calibrate(judge, read_labelled(own_labels_path()), OWN_SET, cache=study.judges.cache).overall
        out.append({"judge": judge.id, "set": OWN_SET, "mode": "direct (never fitted on it)", "n": own.n,
                    "kappa": round(own.kappa, 4), "kappa_95ci": [round(own.kappa_low, 4), round(own.kappa_high, 4)],
                    "accuracy": round(own.accuracy, 4), "folds": {}})
    return out


#: training_sets.csv: the size of every configured run's training sets, trained or not.
TRAINING_SET_COLUMNS = ["variant", "target", "seed", "main_set", "examples", "retain_examples", "trained"]


def training_set_rows(study: Study) -> list[dict]:
    """One row per configured run: its main set (from collect/<target>/) and whether it trained."""
    from ..variants import VARIANT_TABLE
    from .training import training_set_size

    skipped = {(r["target"], r["variant"], r["seed"]) for r in study.untrained_runs()}
    out = []
    for target, variant, seed in study.cfg.runs():
        sets = study.root / "collect" / target
        retain = read_json(sets / "counts.json").get("retain", {})
        out.append({"variant": variant, "target": target, "seed": seed, "main_set": VARIANT_TABLE[variant].main,
                    "examples": training_set_size(sets, variant),
                    "retain_examples": sum(retain.values()) if study.cfg.training_for(variant, seed, target).w2 > 0 else 0,
                    "trained": (target, variant, seed) not in skipped})
    return out


def manifest(study: Study) -> dict:
    cfg = study.cfg
    pkgs = ["spillover", "torch", "transformers", "peft", "accelerate", "numpy", "scipy"]
    versions = {"python": platform.python_version()}
    for p in pkgs:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    data_manifest = read_json(study.root / "data" / "manifest.json")
    judges = sorted({r["judge"] for r in read_jsonl(study.root / "baseline" / "responses.jsonl")})
    return {
        "study": cfg.name, "config": cfg.model_dump(mode="json"), "versions": versions,
        "datasets": data_manifest.get("files", {}),
        "models": {"aligned": model_identity(cfg.models.aligned), "labeler": model_identity(cfg.models.labeler)},
        "seeds": cfg.seeds, "judges": {"primary": judges, "audit": cfg.judges.audit_spec},
        "losses": loss_formulas(cfg),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "timings": study.runner.timings,
        "runs_not_trained": study.untrained_runs(),
    }


def write_results(study: Study) -> Path:
    """Write results/*.csv|json|jsonl, the EMA and method tables, concept correlation and manifest.json.

    methods.csv is built from scores.csv as the report reads it (``report.data``).
    """
    from ..report.data import SCORES, SCORES_PAIRED, read_csv

    res = study.root / "results"
    scores, drops = score_rows(study)
    write_csv(res / "scores.csv", SCORE_COLUMNS, scores)
    write_csv(res / "ema_matrix.csv", EMA_COLUMNS, ema_matrix_rows(scores))
    table = read_csv(res / "scores.csv", SCORES, optional=SCORES_PAIRED)  # as the report reads it
    write_csv(res / "methods.csv", METHOD_COLUMNS, method_rows(table))
    kl, log, ckpts = training_rows(study)
    write_csv(res / "kl.csv", ["variant", "target", "seed", "step", "domain", "kl"], kl)
    write_csv(res / "train_log.csv", train_log_columns(log), log)
    write_csv(res / "checkpoints.csv", CHECKPOINT_COLUMNS, ckpts)
    write_jsonl(res / "edits.jsonl", edit_rows(study))
    write_csv(res / "training_sets.csv", TRAINING_SET_COLUMNS, training_set_rows(study))
    write_jsonl(res / "examples.jsonl", example_rows(study, study.cfg.evaluation.examples_per_set))
    write_json(res / "agreement.json", audit_rows(study))
    write_json(res / "calibration.json", calibration_rows(study))
    ema = {v: {t: {} for t, _ in pairs} for v, pairs in drops.items()}
    for v, pairs in drops.items():
        for (t, d), values in pairs.items():
            ema[v][t][d] = round(sum(values) / len(values), 3)
    write_json(res / "ema.json", ema)
    summary = study.root / "concepts" / "summary.json"
    if summary.exists() and ema:
        from ..concepts.analysis import correlate, predictions

        variant = "unlearn" if "unlearn" in ema else next(iter(ema))
        pairs = {(t, d): x for t, row in ema[variant].items() for d, x in row.items()}
        for path in [summary, *sorted(summary.parent.glob("*/summary.json"))]:  # primary method, then the others
            correlate(path, pairs)
        write_json(study.root / "concepts" / "prediction.json",
                   {t: p for t, p in predictions(read_json(summary)).items()})
    write_json(study.root / "manifest.json", manifest(study))
    return res
