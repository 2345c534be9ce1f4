"""``spillover unlearn`` and ``spillover finetune``: train from JSONL files of {id, prompt, response}.

These commands train on ready files; building the files from the suite (collection) and
evaluating the checkpoints are separate steps.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import typer

from . import app


def _diagnostics(kl_prompts: Path | None, mmlu: Path | None):
    from ..io import InputError, read_jsonl
    from ..training import Diagnostics

    if kl_prompts is None and mmlu is None:
        return None
    by_domain: dict[str, list[str]] = {}
    if kl_prompts:
        for row in read_jsonl(kl_prompts, required=("domain", "prompt")):
            by_domain.setdefault(str(row["domain"]), []).append(row["prompt"])
    records = None
    if mmlu:
        records = []
        for i, row in enumerate(read_jsonl(mmlu, required=("prompt", "choices", "answer")), 1):
            if not (isinstance(row["choices"], list) and len(row["choices"]) == 4):
                raise InputError(f"{mmlu}, row {i}: field 'choices' must be a list of 4 strings")
            if row["answer"] not in (0, 1, 2, 3):
                raise InputError(f"{mmlu}, row {i}: field 'answer' must be 0-3")
            records.append(SimpleNamespace(id=str(row.get("id", i)), prompt=row["prompt"], meta={
                "choices": row["choices"], "answer": row["answer"], "subject": row.get("subject", "")}))
    return Diagnostics(kl_prompts=by_domain, mmlu=records)


def _method_overrides(method: str, weight: float | None, beta: float | None, args: list[str]) -> dict:
    """Dotted TrainConfig overrides for the method's arguments (--w1/--w3, --beta, --arg KEY=VALUE)."""
    import yaml

    from ..io import InputError

    out = {f"method_args.{method}.weight": weight, f"method_args.{method}.beta": beta}
    for item in args:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--arg {item!r}: expected KEY=VALUE, e.g. --arg beta=2.5")
        out[f"method_args.{method}.{key.strip()}"] = yaml.safe_load(value)
    return out


def _contrast(path: Path) -> list[str]:
    """The prompts of a JSONL file {prompt} (other fields ignored); bad rows name the row."""
    from ..io import InputError, read_jsonl

    prompts = []
    for i, row in enumerate(read_jsonl(path, required=("prompt",)), 1):
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise InputError(f"{path}, row {i}: field 'prompt' must be a non-empty string")
        prompts.append(row["prompt"])
    return prompts


def _run(command: str, method: str, model: str, target: str, main: Path, retain: Path | None,
         out: Path, config: Path | None, overrides: dict, kl_prompts: Path | None, mmlu: Path | None,
         resume: bool, contrast: Path | None = None) -> None:
    from pydantic import ValidationError

    from ..config import format_validation_error, load_yaml_config
    from ..domains import parse_domain
    from ..io import InputError, sha256_file, write_json
    from ..training import TrainConfig, objective_for, train
    from ..training.examples import read_examples

    try:
        domain = parse_domain(target)
    except ValueError as e:
        raise InputError(f"--target: {e}") from None
    overrides = {"method": method, **{k: v for k, v in overrides.items() if v is not None}}
    if config:
        cfg = load_yaml_config(TrainConfig, config, overrides)
    else:
        nested: dict = {}
        for key, value in overrides.items():
            node = nested
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        try:
            cfg = TrainConfig.model_validate(nested)
        except ValidationError as e:
            raise InputError(format_validation_error(e, "command-line options")) from None
    objective = objective_for(cfg)
    main_kind = "pair" if objective.pairs else "finetune" if command == "finetune" else "forget"
    main_examples = read_examples(main, main_kind)
    retain_examples = read_examples(retain, "retain") if retain else None
    if cfg.w2 > 0 and retain_examples is None:
        raise InputError("--w2 > 0 needs --retain FILE")
    if objective.trains and contrast is not None:
        raise InputError(f"--contrast: method {method} trains; only a training-free method reads contrast prompts")
    if not objective.trains and contrast is None:
        raise InputError(f"--method {method} is training-free and needs --contrast FILE (benign prompts)")
    contrast_prompts = _contrast(contrast) if contrast else None
    write_json(out / "run.json", {
        "command": command, "model": model, "target": domain.value,
        "config": cfg.model_dump(), "loss": objective.describe(),
        "inputs": {name: {"path": str(p), "sha256": sha256_file(p), "rows": n} for name, p, n in (
            ("main", main, len(main_examples)),
            ("retain", retain, len(retain_examples or [])),
            ("contrast", contrast, len(contrast_prompts or []))) if p is not None},
    })
    ckpts = train(model, main_examples, retain_examples, cfg, out, _diagnostics(kl_prompts, mmlu), resume=resume,
                  contrast=contrast_prompts)
    typer.echo(f"{len(ckpts)} checkpoints in {out} (log: {out / 'train_log.jsonl'})")
    for c in ckpts:
        typer.echo(f"  step {c.step}: {c.path}")


_MODEL = typer.Option(..., help="Hub id, local directory or embedded:ALIAS.")
_TARGET = typer.Option(..., help="The target domain (recorded in run.json).")
_OUT = typer.Option(..., help="Output directory: checkpoints, train_log.jsonl, diagnostics.jsonl.")
_CONFIG = typer.Option(None, help="A YAML TrainConfig preset; command-line options override it.")
_RETAIN = typer.Option(None, help="Retain set JSONL {id, prompt, response} (used when w2 > 0).")
_KL = typer.Option(None, help="JSONL {domain, prompt}: held-out prompts for first-token KL per domain.")
_MMLU = typer.Option(None, help="JSONL {prompt, choices, answer, subject}: MMLU questions per checkpoint.")
_LOG_WITH = typer.Option([], help="Also log the metrics to this tracker (repeatable): tensorboard (event files "
                                    "in --out/tensorboard) or wandb (offline unless WANDB_MODE is set).")
_STUDY_CONFIG = typer.Option(None, help="Study YAML for collection, judging and selection; required without "
                                         "--forget (e.g. configs/quick-cpu.yaml).")
_DATA_DIR = typer.Option(None, envvar="SPILLOVER_DATA_DIR", help="Dataset mirror (without --forget).")


@app.command()
def unlearn(
    model: str = _MODEL, target: str = _TARGET,
    forget: Path | None = typer.Option(None, help="Forget set JSONL {id, prompt, response}: the model's own "
                                        "refusals (for dpo: {id, prompt, response = a compliant answer, "
                                        "rejected = the refusal}). Without it, the sets are collected from the "
                                        "suite first."),
    retain: Path | None = _RETAIN, out: Path = _OUT, config: Path | None = _CONFIG,
    method: str = typer.Option("npo", help="Unlearning method: a name in spillover.training.objectives.OBJECTIVES "
                                          "(npo, graddiff, simnpo, dpo, rmu, ...)."),
    contrast: Path | None = typer.Option(None, help="JSONL {prompt}: the benign prompts a training-free method "
                                                    "contrasts the forget prompts with (required for those)."),
    w1: float | None = typer.Option(None, help="Weight of the method's forget term."),
    w2: float | None = typer.Option(None, help="Retain term weight (0 = plain unlearning)."),
    beta: float | None = typer.Option(None, help="The method's beta (npo, simnpo, dpo)."),
    arg: list[str] = typer.Option([], help="Method argument KEY=VALUE (repeatable), e.g. --arg gamma=0.5."),
    lora_r: int | None = typer.Option(None, help="LoRA rank (alpha = r unless the preset says otherwise)."),
    full: bool | None = typer.Option(None, "--full/--lora", help="Full-rank instead of LoRA."),
    lr: float | None = typer.Option(None), epochs: float | None = typer.Option(None),
    max_steps: int | None = typer.Option(None), batch_size: int | None = typer.Option(None),
    grad_accum: int | None = typer.Option(None), save_every: int | None = typer.Option(None),
    seed: int | None = typer.Option(None), max_length: int | None = typer.Option(None),
    kl_prompts: Path | None = _KL, mmlu: Path | None = _MMLU,
    resume: bool = typer.Option(True, help="Continue from the last checkpoint in --out."),
    log_with: list[str] = _LOG_WITH,
    study_config: Path | None = _STUDY_CONFIG, data_dir: Path | None = _DATA_DIR,
) -> None:
    """Refusal unlearning with --method (NPO by default; plus w2 x the retain term: augmented unlearning).

    Without --forget: collect the forget (and retain) set from the suite, train, measure every
    checkpoint and select one, with the settings of --study-config for the rest (its training
    section is the preset; the training options above override it). --config, --retain,
    --kl-prompts, --mmlu, --no-resume and --contrast need --forget: they are refused without it
    (a study's training-free methods contrast with its benign train prompts).
    """
    if forget is None:
        from ..io import InputError
        from ..study.single import single_run

        if study_config is None:
            raise typer.BadParameter("required without --forget: the study YAML whose collection, judging and "
                                     "selection settings apply, e.g. configs/quick-cpu.yaml", param_hint="--study-config")
        file_only = [name for name, given in (("--config", config), ("--retain", retain), ("--kl-prompts", kl_prompts),
                                              ("--mmlu", mmlu), ("--no-resume", not resume), ("--contrast", contrast))
                     if given]
        if file_only:
            raise InputError(f"{', '.join(file_only)} only apply with --forget FILE; without it the sets, "
                             f"diagnostics and training preset come from --study-config {study_config} and its "
                             f"stages always resume (use a new --out to start over)")
        single_run(study_config, model, target, _variant(method, w2), out, data_dir,
                   {**_method_overrides(method, w1, beta, arg), "w2": w2, "lora.r": lora_r, "full": full, "lr": lr,
                    "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "grad_accum": grad_accum,
                    "save_every": save_every, "seed": seed, "max_length": max_length, "log_with": log_with or None})
        return
    _run("unlearn", method, model, target, forget, retain, out, config,
         {**_method_overrides(method, w1, beta, arg), "w2": w2, "lora.r": lora_r, "full": full, "lr": lr,
          "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "grad_accum": grad_accum,
          "save_every": save_every, "seed": seed, "max_length": max_length, "log_with": log_with or None},
         kl_prompts, mmlu, resume, contrast)


def _variant(method: str, w2: float | None) -> str:
    """The study variant that trains ``method`` (NPO: aug_unlearn when w2 > 0, else unlearn)."""
    from ..io import InputError
    from ..variants import VARIANT_TABLE

    if method == "npo":
        return "aug_unlearn" if (w2 or 0) > 0 else "unlearn"
    names = [v.name for v in VARIANT_TABLE.values() if v.method == method and v.main != "finetune"]
    if not names:
        raise InputError(f"--method: no unlearning variant trains {method!r} (spillover.variants.VARIANT_TABLE)")
    return names[0]


@app.command()
def finetune(
    model: str = _MODEL, target: str = _TARGET,
    train_file: Path = typer.Option(..., "--train", help="Finetune set JSONL {id, prompt, response}: harmful answers."),
    retain: Path | None = _RETAIN, out: Path = _OUT, config: Path | None = _CONFIG,
    w3: float | None = typer.Option(None, help="Finetune CE weight."),
    w2: float | None = typer.Option(None, help="Retain CE weight (0 = plain finetuning)."),
    lora_r: int | None = typer.Option(None), full: bool | None = typer.Option(None, "--full/--lora"),
    lr: float | None = typer.Option(None), epochs: float | None = typer.Option(None),
    max_steps: int | None = typer.Option(None), batch_size: int | None = typer.Option(None),
    grad_accum: int | None = typer.Option(None), save_every: int | None = typer.Option(None),
    seed: int | None = typer.Option(None), max_length: int | None = typer.Option(None),
    kl_prompts: Path | None = _KL, mmlu: Path | None = _MMLU,
    resume: bool = typer.Option(True, help="Continue from the last checkpoint in --out."),
    log_with: list[str] = _LOG_WITH,
) -> None:
    """Finetuning baseline: CE on (prompt, harmful answer) pairs (plus w2 x CE on a retain set)."""
    _run("finetune", "ce", model, target, train_file, retain, out, config,
         {**_method_overrides("ce", w3, None, []), "w2": w2, "lora.r": lora_r, "full": full, "lr": lr, "epochs": epochs,
          "max_steps": max_steps, "batch_size": batch_size, "grad_accum": grad_accum, "save_every": save_every,
          "seed": seed, "max_length": max_length, "log_with": log_with or None}, kl_prompts, mmlu, resume)
