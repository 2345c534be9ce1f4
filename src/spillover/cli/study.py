"""``spillover study`` and ``spillover evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app


def _overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def study(
    config: Path = typer.Argument(..., help="Study YAML (see configs/)."),
    data_dir: Path | None = typer.Option(None, envvar="SPILLOVER_DATA_DIR", help="Dataset mirror directory."),
    set_: list[str] = typer.Option([], "--set", help="Override a config field: --set evaluation.n_per_set=10"),
    dry_run: bool = typer.Option(False, help="Print the planned stages, counts and a time estimate; build nothing."),
    until: str | None = typer.Option(None, help="Stop after this stage: data, baseline, collect, train, eval, concepts."),
    profile: str | None = typer.Option(None, help="--dry-run: throughput profile (a JSON file or a shipped name, "
                                                  "e.g. h200-smollm2-135m); default the H200 7B profile."),
) -> None:
    """Run the whole protocol; finished stages are skipped, a killed run resumes."""
    from ..config import load_yaml_config
    from ..study import Study, StudyConfig
    from ..study.preflight import preflight

    cfg = load_yaml_config(StudyConfig, config, _overrides(set_))
    preflight(cfg, until)
    run = Study(cfg, data_dir)
    if dry_run:
        from ..study.plan import format_plan, load_profile

        rates = load_profile(profile)
        run.preview()
        typer.echo("\n".join(format_plan(run, rates)))
        return
    if profile is not None:
        raise typer.BadParameter("--profile only applies to --dry-run")
    root = run.run(until=until)
    typer.echo(f"study directory: {root}")
    if (root / "report" / "report.html").exists():
        typer.echo(f"report: {root / 'report' / 'report.html'}")


@app.command()
def evaluate(
    model: str = typer.Option(..., help="Hub id, local directory or embedded:ALIAS."),
    out: Path = typer.Option(..., help="Output directory (responses.jsonl, scores.json, scores.csv)."),
    adapter: str | None = typer.Option(None, help="peft adapter (or training checkpoint) directory."),
    checkpoint: str | None = typer.Option(None, help="Full-weights checkpoint directory."),
    domains: str = typer.Option("all", help="'all' or a comma-separated list of domains."),
    n: int | None = typer.Option(None, help="Prompts per set (first n of the seeded test split)."),
    mmlu_n: int | None = typer.Option(None, help="MMLU questions (default all of the 5 subjects)."),
    no_xstest: bool = typer.Option(False, help="Skip XSTest over-refusal."),
    judge: str = typer.Option("default", help="Primary judge spec (default: the validated local judge, docs/judges.md)."),
    bias_judge: str | None = typer.Option(None, help="Judge for the Bias set (default: --judge)."),
    baseline: Path | None = typer.Option(None, help="An earlier evaluate output to compare with (McNemar)."),
    max_new_tokens: int = typer.Option(256),
    batch_size: int = typer.Option(8),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible endpoint for rubric:openai judges."),
    data_dir: Path | None = typer.Option(None, envvar="SPILLOVER_DATA_DIR"),
) -> None:
    """Refusal rates (95% Wilson intervals) on every domain, XSTest over-refusal and MMLU accuracy."""
    from ..study.standalone import run_evaluate

    run_evaluate(model=model, out=out, adapter=adapter or None, checkpoint=checkpoint, domains=domains,
                 n=n, mmlu_n=mmlu_n, xstest=not no_xstest, judge=judge, bias_judge=bias_judge,
                 baseline=baseline, max_new_tokens=max_new_tokens, batch_size=batch_size,
                 base_url=base_url, data_dir=data_dir)


@app.command()
def collect(
    model: str = typer.Option(..., help="The aligned model (hub id, local directory or embedded:ALIAS)."),
    target: str = typer.Option(..., help="Target domain."),
    out: Path = typer.Option(..., help="Output directory (the study's data/ and collect/<target>/ stages)."),
    study_config: Path = typer.Option(..., help="Study YAML for the other settings (e.g. configs/quick-cpu.yaml)."),
    finetune_labels: bool = typer.Option(True, help="Also collect the label model's answers (finetune set)."),
    retain: bool = typer.Option(True, help="Also collect the retain set."),
    data_dir: Path | None = typer.Option(None, envvar="SPILLOVER_DATA_DIR"),
) -> None:
    """Phase 1: the forget set (the model's own refusals), retain set and finetune labels."""
    from ..study.single import single_run

    variants = ["aug_unlearn" if retain else "unlearn"] + (["finetune"] if finetune_labels else [])
    single_run(study_config, model, target, variants, out, data_dir, {}, until="collect")
