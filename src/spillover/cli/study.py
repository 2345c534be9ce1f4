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


def _fraction(value: str | None, option: str) -> tuple[int, int] | None:
    """Parse ``i/n`` (0 <= i < n)."""
    if value is None:
        return None
    i, sep, n = value.partition("/")
    if not (sep and i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise typer.BadParameter(f"{option} expects i/n with 0 <= i < n, got {value!r}")
    return int(i), int(n)


def _launch_workers(config: Path, args: list[str], gpus: list[str | None]) -> None:
    """Run one ``study --worker i/n`` process per entry of ``gpus`` (its CUDA_VISIBLE_DEVICES)."""
    import os
    import subprocess
    import sys

    procs = []
    for i, gpu in enumerate(gpus):
        env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}))
        cmd = [sys.executable, "-m", "spillover.cli", "study", str(config), "--worker", f"{i}/{len(gpus)}", *args]
        procs.append(subprocess.Popen(cmd, env=env))
    failed = [i for i, p in enumerate(procs) if p.wait() != 0]
    if failed:
        typer.secho(f"error: worker(s) {', '.join(map(str, failed))} failed; finished stages are kept, "
                    "a re-run resumes", fg="red", err=True)
        raise typer.Exit(1)


@app.command()
def study(
    config: Path = typer.Argument(..., help="Study YAML (see configs/)."),
    data_dir: Path | None = typer.Option(None, envvar="SPILLOVER_DATA_DIR", help="Dataset mirror directory."),
    set_: list[str] = typer.Option([], "--set", help="Override a config field: --set evaluation.n_per_set=10"),
    dry_run: bool = typer.Option(False, help="Print the planned stages, counts and a time estimate; build nothing."),
    until: str | None = typer.Option(None, help="Stop after this stage: data, baseline, collect, train, eval, concepts."),
    workers: int = typer.Option(1, min=1, help="Run independent stages in this many processes, then gather."),
    gpus: str | None = typer.Option(None, help="Comma-separated GPU ids: one worker per GPU (sets --workers)."),
    shard: str | None = typer.Option(None, help="i/n: run only this slice of the stages (a Slurm array task); "
                                                "a plain run afterwards gathers the results."),
    worker: str | None = typer.Option(None, hidden=True, help="i/n: one of the processes --workers starts."),
    executor: str = typer.Option("local", help="local (this process, or --workers/--gpus processes), or ray: "
                                               "independent stages as Ray tasks (the [ray] extra), then gathers."),
    ray_address: str | None = typer.Option(None, help="--executor ray: the cluster to submit to (default: "
                                                      "RAY_ADDRESS, else a local Ray instance)."),
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
    if executor not in ("local", "ray"):
        raise typer.BadParameter(f"--executor expects local or ray, got {executor!r}")
    if ray_address is not None and executor != "ray":
        raise typer.BadParameter("--ray-address only applies to --executor ray")
    ids: list[str | None] = [g.strip() for g in gpus.split(",")] if gpus else [None] * workers
    if executor == "ray" and (workers > 1 or gpus or shard or worker):
        raise typer.BadParameter("--executor ray schedules the stages itself: drop --workers, --gpus and --shard")
    if len(ids) > 1:
        args = [*(["--data-dir", str(data_dir)] if data_dir else []), *[a for kv in set_ for a in ("--set", kv)],
                *(["--until", until] if until else [])]
        _launch_workers(config, args, ids)
    on_ray = None
    if executor == "ray":
        from ..study.ray_executor import RayExecutor

        on_ray = RayExecutor(ray_address)
    root = run.run(until=until, worker=_fraction(worker, "--worker"), shard=_fraction(shard, "--shard"),
                   executor=on_ray)
    typer.echo(f"study directory: {root}")
    if (root / "report" / "report.html").exists():
        typer.echo(f"report: {root / 'report' / 'report.html'}")


@app.command()
def evaluate(
    model: str = typer.Option(..., help="Hub id, local directory or embedded:ALIAS."),
    out: Path = typer.Option(..., help="Output directory (responses.jsonl, scores.json, scores.csv)."),
    adapter: list[str] = typer.Option([], help="peft adapter (or training checkpoint) directory; repeat it to "
                                              "evaluate several on one base, loaded once (outputs in OUT/<name>)."),
    checkpoint: str | None = typer.Option(None, help="Full-weights checkpoint directory."),
    domains: str = typer.Option("all", help="'all' or a comma-separated list of domains."),
    n: int | None = typer.Option(None, help="Prompts per set (first n of the seeded test split)."),
    mmlu_n: int | None = typer.Option(None, help="MMLU questions (default all of the 5 subjects)."),
    no_xstest: bool = typer.Option(False, help="Skip XSTest over-refusal."),
    judge: str = typer.Option("default", help="Primary judge spec (default: the validated local judge, docs/judges.md)."),
    bias_judge: str | None = typer.Option(None, help="Judge for the Bias set (default: --judge; the paper's second "
                                                     "rubric: bias-rubric:openai:MODEL)."),
    toxicity_judge: str | None = typer.Option(None, help="Judge for the Toxicity set (default: --judge; the paper's "
                                                         "second rubric: bias-rubric:openai:MODEL)."),
    template: Path | None = typer.Option(None, help="Template file ({prompt}, {response}) for the rubric:* judges, "
                                                   "instead of the packaged refusal rubric."),
    bias_template: Path | None = typer.Option(None, help="Template file for the bias-rubric:* judges, instead of "
                                                        "the packaged bias/toxicity rubric."),
    baseline: Path | None = typer.Option(None, help="An earlier evaluate output to compare with (McNemar)."),
    max_new_tokens: int = typer.Option(256),
    batch_size: int = typer.Option(8),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible endpoint for rubric:openai judges."),
    api_key_env: str | None = typer.Option(None, help="Environment variable holding the API judges' key."),
    backend: str = typer.Option("hf", help="Generation backend: hf, static (CUDA graphs; GPU) or llamacpp "
                                           "(llama.cpp on an embedded model's GGUF; CPU)."),
    system_prompt: str | None = typer.Option(None, help="System turn put before every prompt."),
    mmlu_method: str = typer.Option("letter", help="MMLU scoring: letter or cloze (spillover.mmlu)."),
    data_dir: Path | None = typer.Option(None, envvar="SPILLOVER_DATA_DIR"),
) -> None:
    """Refusal rates (95% Wilson intervals) on every domain, XSTest over-refusal and MMLU accuracy."""
    from ..study.standalone import run_evaluate

    run_evaluate(model=model, out=out, adapters=[a for a in adapter if a], checkpoint=checkpoint, domains=domains,
                 n=n, mmlu_n=mmlu_n, xstest=not no_xstest, judge=judge, bias_judge=bias_judge,
                 baseline=baseline, max_new_tokens=max_new_tokens, batch_size=batch_size,
                 base_url=base_url, data_dir=data_dir, backend=backend, system_prompt=system_prompt,
                 api_key_env=api_key_env, mmlu_method=mmlu_method, toxicity_judge=toxicity_judge,
                 template=template, bias_template=bias_template)


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
