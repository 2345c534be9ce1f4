"""Write a small, plausible study directory for the report's tests (a renderer fixture, not a result)."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

from spillover.domains import DOMAINS, MMLU, XSTEST
from spillover.study.results import CHECKPOINT_COLUMNS

SETS = [d.value for d in DOMAINS] + [XSTEST, MMLU]
VARIANTS = ["unlearn", "finetune", "aug_unlearn", "aug_finetune"]
N = {"cybersecurity": 100, "safety": 93, "toxicity": 200, "bias": 200, "sensitive": 57,
     "medical_legal": 96, "privacy": 200, XSTEST: 200, MMLU: 500}
ALIGNED = {"cybersecurity": 93, "safety": 98, "toxicity": 100, "bias": 100, "sensitive": 35,
           "medical_legal": 42, "privacy": 32, XSTEST: 51.5, MMLU: 71.7}
#: How much of the target's drop reaches each domain (cyber spills mainly onto safety; safety onto all).
SPILL = {"cybersecurity": {"safety": 0.3, "sensitive": 0.15, "medical_legal": 0.05},
         "safety": {d: 0.45 for d in ALIGNED}}
SCORE_FIELDS = ["variant", "target", "seed", "set", "judge", "n", "k", "rate", "ci_low", "ci_high",
                "delta", "p_mcnemar", "n_paired", "refusals_lost", "refusals_gained", "ema", "checkpoint"]
PRIMARY, OTHER, MMLU_JUDGE = "llm:qwen2.5-coder-1.5b/refusal-v1", "keyword:v1", "exact-match"


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def _row(variant, target, seed, set_, judge, k, aligned_k, step):
    n = N[set_]
    lo, hi = wilson(k, n)
    rate = 100 * k / n
    delta = "" if variant == "aligned" else round(rate - 100 * aligned_k / n, 4)
    p = "" if variant == "aligned" or set_ == MMLU else round(min(1.0, math.exp(-abs(k - aligned_k) / 4)), 6)
    ema = variant != "aligned" and set_ not in (target, XSTEST, MMLU) and delta != "" and delta < -15
    paired = {"n_paired": "", "refusals_lost": "", "refusals_gained": ""}
    if variant != "aligned" and set_ != MMLU:  # every prompt paired; one refusal gained where there is room
        diff = aligned_k - k
        gained = (1 if aligned_k - diff >= 1 and n - aligned_k >= 1 else 0) if diff >= 0 else -diff
        paired = {"n_paired": n, "refusals_lost": diff + gained, "refusals_gained": gained}
    return {"variant": variant, "target": target, "seed": seed, "set": set_, "judge": judge, "n": n, "k": k,
            "rate": round(rate, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4), "delta": delta,
            "p_mcnemar": p, **paired, "ema": ema, "checkpoint": step}


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def make_study(root: Path, targets=("cybersecurity", "safety"), seeds=(0,), optional: bool = True,
               two_judges: bool = True, judges_as_list: bool = True, response: str = "I'm sorry, but I can't help with that.") -> Path:
    """Write manifest.json and results/scores.csv, plus every optional file when ``optional``.

    ``judges_as_list``: the manifest names its primary judges as a list plus an audit judge (as the
    study writes it); otherwise as one primary id plus a list of others."""
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    judges = [PRIMARY, OTHER] if two_judges else [PRIMARY]
    manifest = {
        "study": "fixture-study",
        "config": {"name": "fixture-study", "targets": list(targets), "seeds": list(seeds),
                   "evaluate": {"ema_threshold": 15}, "training": {"lora_r": 16, "lr": 1e-4, "beta": 0.1}},
        "versions": {"spillover": "0.1.0", "torch": "2.13.0", "transformers": "4.57.0"},
        "datasets": {"cyberseceval.jsonl": "ab" * 32, "xstest.jsonl": "cd" * 32},
        "models": {"aligned": "embedded:qwen2.5-coder-0.5b-instruct@3f1c", "judge": {"id": PRIMARY, "rev": "9e2a"}},
        "seeds": list(seeds),
        "judges": ({"primary": [MMLU_JUDGE, PRIMARY], "audit": judges[1] if two_judges else None}
                   if judges_as_list else {"primary": PRIMARY, "others": judges[1:]}),
        "created": "2026-11-30T03:00:00Z",
        "timings": {"data": 12.5, "baseline": 340.0, "train": 900.25, "evaluate": 410.0, "concepts": 60.0},
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    rows = []
    aligned_k = {}
    for judge in judges:
        for s in SETS:
            if s == MMLU and judge != PRIMARY:
                continue
            j = MMLU_JUDGE if s == MMLU else judge
            k = round(ALIGNED[s] * N[s] / 100) - (0 if judge == PRIMARY else rng.randint(0, 3))
            aligned_k[(judge, s)] = k
            rows.append(_row("aligned", "", "", s, j, k, k, ""))
    for seed in seeds:
        for t in targets:
            for v in VARIANTS:
                keep = 0.6 if v.startswith("aug") else 1.0
                for judge in judges:
                    for s in SETS:
                        if s == MMLU and judge != PRIMARY:
                            continue
                        base = aligned_k[(judge, s)]
                        if s == t:
                            frac = 0.85 + rng.uniform(-0.05, 0.05)
                        elif s == MMLU:
                            frac = rng.uniform(0.0, 0.02)
                        else:
                            frac = keep * SPILL.get(t, {}).get(s, 0.02) * rng.uniform(0.7, 1.3)
                        k = max(0, round(base * (1 - frac)))
                        rows.append(_row(v, t, seed, s, MMLU_JUDGE if s == MMLU else judge, k, base, 40))
    _write_csv(root / "results" / "scores.csv", SCORE_FIELDS, rows)
    if optional:
        _write_optional(root, targets, seeds, rng, response)
    return root


def _write_optional(root: Path, targets, seeds, rng: random.Random, response: str) -> None:
    res, con = root / "results", root / "concepts"
    kl, log, ckpts = [], [], []
    for seed in seeds:
        for t in targets:
            for v in VARIANTS:
                for step in range(0, 41, 10):
                    for d in DOMAINS:
                        growth = 1.0 if d.value == t else SPILL.get(t, {}).get(d.value, 0.05)
                        kl.append({"variant": v, "target": t, "seed": seed, "step": step, "domain": d.value,
                                   "kl": round(step / 40 * 2.0 * growth * rng.uniform(0.8, 1.2), 5)})
                for step in range(1, 41):
                    npo = 1.4 * math.exp(-step / 15) + rng.uniform(0, 0.05)
                    ce = 0.8 + rng.uniform(0, 0.05) if v.startswith("aug") else None
                    log.append({"variant": v, "target": t, "seed": seed, "step": step,
                                "loss": round(npo + (ce or 0), 5), "npo": round(npo, 5),
                                "ce": "" if ce is None else round(ce, 5), "lr": 1e-4})
                for step in (20, 40):
                    ckpts.append({"variant": v, "target": t, "seed": seed, "step": step,
                                  "mmlu": round(71.7 - step / 40 * rng.uniform(0, 2), 2), "mmlu_se": 2.3,
                                  "target_refusal": round(90 - step * 2, 2), "target_refusal_se": 4.1,
                                  "selected": step == 40})
    _write_csv(res / "kl.csv", ["variant", "target", "seed", "step", "domain", "kl"], kl)
    _write_csv(res / "train_log.csv", ["variant", "target", "seed", "step", "loss", "npo", "ce", "lr"], log)
    _write_csv(res / "checkpoints.csv", CHECKPOINT_COLUMNS, ckpts)
    agreement = [{"judge_a": PRIMARY, "judge_b": OTHER, "set": s, "n": 100, "accuracy": 0.91, "kappa": 0.78,
                  "confusion": {"refusal": {"refusal": 60, "compliance": 5}, "compliance": {"refusal": 4, "compliance": 31}}}
                 for s in ("cybersecurity", "safety")]
    (res / "agreement.json").write_text(json.dumps(agreement))
    calibration = [{"judge": PRIMARY, "set": "xstest-v2", "mode": "leave-one-answering-model-out", "n": 1800,
                    "kappa": 0.877, "kappa_95ci": [0.85, 0.9], "accuracy": 0.94, "folds": {"gpt4": 0.94, "llama2new": 0.89}},
                   {"judge": PRIMARY, "set": "spillover-own-v1", "mode": "direct", "n": 150, "kappa": 0.8,
                    "kappa_95ci": [0.7, 0.9], "accuracy": 0.9, "folds": {}}]
    (res / "calibration.json").write_text(json.dumps(calibration))
    examples = []
    for d in DOMAINS:
        prompt = f"Example {d.label} request #1"
        for t in targets:  # as the study lists them: the aligned response beside every run's
            examples.append({"variant": "aligned", "target": t, "set": d.value, "prompt": prompt,
                             "response": response, "label": "refusal", "judge": PRIMARY})
            examples.append({"variant": "unlearn", "target": t, "set": d.value, "prompt": prompt,
                             "response": f"Sure, here is an answer about {d.label}.", "label": "compliance",
                             "judge": PRIMARY})
    (res / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
    names = [d.value for d in DOMAINS]
    layers = list(range(0, 24, 2))
    con.mkdir(parents=True, exist_ok=True)
    sim = [[[1.0 if i == j else round(rng.uniform(-0.2, 0.6), 3) for j in names] for i in names] for _ in layers]
    summary = {
        "model": "embedded:qwen2.5-coder-0.5b-instruct", "method": "pca", "layers": layers, "domains": names,
        "position": "last_prompt_token", "vector_similarity": sim,
        "target_to_domain": {t: {d: [round(rng.uniform(0, 0.15), 4) for _ in layers] for d in names} for t in targets},
        "histograms": {t: {str(l): {d: [round(rng.gauss(0.1 if d == t else 0.04, 0.03), 4) for _ in range(40)]
                                     for d in names + ["benign"]} for l in layers[:3]} for t in names},
        "seconds": 58.2,
    }
    (con / "summary.json").write_text(json.dumps(summary))
    corr = {"layers": layers, "spearman": [round(0.7 - 0.05 * i, 3) for i in range(len(layers))],
            "p_value": [round(0.001 * (i + 1) ** 2, 4) for i in range(len(layers))], "best_layer": layers[2],
            "early_layers_predict": True, "rationale": "Correlation peaks early and decays with depth."}
    (con / "correlation.json").write_text(json.dumps(corr))
    pred = {t: sorted(([d, round(rng.uniform(0, 0.2), 4)] for d in names if d != t), key=lambda x: -x[1])
            for t in targets}
    (con / "prediction.json").write_text(json.dumps(pred))
