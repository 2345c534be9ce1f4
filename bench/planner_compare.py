"""Each stage's measured wall time (a finished study's stage.json files) beside the dry-run estimate.

    python bench/planner_compare.py configs/rehearsal-gpu.yaml --run /tmp/runs/rehearsal-gpu \
        --data-dir ../shared/datasets --profile src/spillover/study/throughput.json \
        --profile src/spillover/study/profiles/h200-smollm2-135m.json --out results/rehearsal-gpu/planner

Per profile two estimates: the dry-run's (forget and finetune sizes assumed) and one with the
collected sizes (collect/<target>/counts.json), so a count error and a rate error show apart. The
per-term seconds of the collected-size estimate say where the time is expected to go. Writes
``<out>.md`` (tables) and ``<out>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def measured(run: Path) -> dict[str, float]:
    """Seconds per planner stage name (train/eval stages summed over seeds)."""
    out: dict[str, float] = {}
    for marker in sorted(run.rglob("stage.json")):
        name = str(marker.parent.relative_to(run))
        if name.startswith("cache"):
            continue
        key = name.rsplit("/seed", 1)[0] if name.startswith(("train/", "eval/")) else name
        out[key] = out.get(key, 0.0) + json.loads(marker.read_text())["seconds"]
    return out


def collected(run: Path) -> dict[str, dict[str, int]]:
    out = {}
    for f in sorted(run.glob("collect/*/counts.json")):
        c = json.loads(f.read_text())
        out[f.parent.name] = {"forget": c["forget"], "finetune": c.get("finetune", c["target_prompts"])}
    return out


def _pct(est: float, real: float) -> str:
    return f"{100 * (est - real) / real:+.0f}%" if real else ""


def main(argv: list[str] | None = None) -> None:
    from spillover.config import load_yaml_config
    from spillover.study import Study, StudyConfig
    from spillover.study.plan import load_profile, plan

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data-dir")
    ap.add_argument("--profile", action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="key=value (YAML), as the study's")
    args = ap.parse_args(argv)
    import yaml

    overrides = {k.strip(): yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.overrides)}
    cfg = load_yaml_config(StudyConfig, Path(args.config), overrides)
    study = Study(cfg, args.data_dir, root=Path("/nonexistent") / cfg.name)
    study.preview()
    real = measured(args.run)
    counts = collected(args.run)
    report: dict = {"config": args.config, "overrides": overrides, "measured_s": real, "collected": counts, "profiles": {}}
    md = [f"# Planner estimates against the measured stage times ({cfg.name})", ""]
    for path in args.profile:
        profile = load_profile(path)
        dry = {s.name: s for s in plan(study)}
        known = {s.name: s for s in plan(study, counts=counts)}
        rows = []
        for name, s in dry.items():
            k = known[name]
            terms, missing = k.terms(profile)
            rows.append({"stage": name, "dry_run_s": round(s.seconds(profile), 1),
                         "collected_sizes_s": round(k.seconds(profile), 1), "measured_s": real.get(name),
                         "terms_s": {t: round(v * k.runs, 1) for t, v in terms.items()},
                         "not_timed": sorted(missing)})
        total = {"stage": "total", "dry_run_s": round(sum(r["dry_run_s"] for r in rows), 1),
                 "collected_sizes_s": round(sum(r["collected_sizes_s"] for r in rows), 1),
                 "measured_s": round(sum(r["measured_s"] or 0 for r in rows), 1)}
        report["profiles"][profile["name"]] = {"file": path, "description": profile["description"],
                                               "stages": rows, "total": total}
        md += [f"## Profile `{profile['name']}` ({profile['description']})", "",
               "| stage | dry-run estimate (s) | error | estimate with collected sizes (s) | error | measured (s) |",
               "|---|---:|---:|---:|---:|---:|"]
        for r in rows + [total]:
            m = r["measured_s"]
            md.append(f"| {r['stage']} | {r['dry_run_s']:.1f} | {_pct(r['dry_run_s'], m or 0)} | "
                      f"{r['collected_sizes_s']:.1f} | {_pct(r['collected_sizes_s'], m or 0)} | "
                      f"{'' if m is None else f'{m:.1f}'} |")
        md.append("")
        md += ["Seconds per term (estimate with collected sizes):", "",
               "| stage | " + " | ".join(TERMS) + " |", "|---|" + "---:|" * len(TERMS)]
        for r in rows:
            md.append(f"| {r['stage']} | " + " | ".join(f"{r['terms_s'].get(t, 0):.1f}" for t in TERMS) + " |")
        md.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


TERMS = ("decode", "label model", "train", "forward", "judge", "model loads", "checkpoint I/O")

if __name__ == "__main__":
    main()
