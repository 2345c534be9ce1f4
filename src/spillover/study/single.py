"""One target, one variant, outside a full study: collection -> training -> checkpoint selection.

Backs ``spillover collect`` and ``spillover unlearn/finetune --target T`` without ready-made
files. It runs the study's own stages (cached and resumable) under ``out``, with the settings of
a study YAML for everything the command line does not say.
"""

from __future__ import annotations

from pathlib import Path

from ..config import load_yaml_config
from ..io import read_json, read_jsonl
from ..progress import console
from .config import StudyConfig
from .names import run_name
from .pipeline import Study


def _pm(value: float | None, se: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" + (f" +- {se:.1f}" if se is not None else "")


def single_run(study_config: Path, model: str, target: str, variant: str | list[str], out: Path,
               data_dir: Path | None, training: dict, until: str = "train") -> Path:
    """Run stages up to ``until`` ('collect' or 'train') for one target and variant in ``out``."""
    variants = [variant] if isinstance(variant, str) else variant
    overrides = {"name": out.name, "models.aligned": model, "targets": [target], "variants": variants,
                 **{f"training.{k}": v for k, v in training.items() if v is not None}}
    cfg = load_yaml_config(StudyConfig, study_config, overrides)
    study = Study(cfg, data_dir, root=out)
    study.run(until=until)
    t = cfg.targets[0].value
    counts = read_json(out / "collect" / t / "counts.json")
    console.print(f"collected in {out / 'collect' / t}: {counts}")
    if until == "train":
        for seed in cfg.seeds:
            d = out / "train" / run_name(t, variants[0], seed)
            chosen = read_json(d / "selected.json")
            console.print(f"seed {seed}: selected step {chosen['step']} ({chosen['path']}); MMLU rule met: "
                          f"{chosen['mmlu_rule_met']} (MMLU on {chosen['mmlu_n']} questions, {t} refusal on "
                          f"{chosen['validation_n']} validation prompts; +- = standard error in points)")
            for row in read_jsonl(d / "checkpoints.jsonl"):
                console.print(f"  step {row['step']}: MMLU {_pm(row['mmlu'], row['mmlu_se'])}  {t} validation "
                              f"refusal {_pm(row['target_refusal'], row['target_refusal_se'])}"
                              f"{'  <- selected' if row['selected'] else ''}")
    return out
