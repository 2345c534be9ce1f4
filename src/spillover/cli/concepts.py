"""``spillover concepts``: concept vectors per domain and layer, their overlap, and EMA correlation."""

from __future__ import annotations

import random
from pathlib import Path

import typer

from . import app


def parse_layers(spec: str) -> list[int] | None:
    """``all`` -> None (every decoder layer); ``5,10`` -> [5, 10]."""
    from ..io import InputError

    if spec.strip().lower() == "all":
        return None
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--layers: expected 'all' or comma-separated integers, got {spec!r}") from None


def sample_prompts(records: list, n: int, seed: int) -> list[str]:
    """Up to ``n`` prompts, a seeded sample kept in suite order (all of them when fewer)."""
    if len(records) <= n:
        return [r.prompt for r in records]
    keep = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[i].prompt for i in keep]


@app.command()
def concepts(
    model: str = typer.Option(..., help="Hub id, local directory or embedded:ALIAS."),
    out: Path = typer.Option(..., help="Output directory: summary.json, prediction.json, vectors.npz, figures/, cache/."),
    layers: str = typer.Option("all", help="'all' (1..L) or comma-separated hidden-state indices, e.g. 5,10."),
    method: str = typer.Option("pca", help="pca | diffmean"),
    n: int = typer.Option(200, min=2, help="Prompts per domain (train+test, seeded sample; all when fewer)."),
    domains: str = typer.Option("all", help="'all' or comma-separated domains."),
    data_dir: Path | None = typer.Option(None, help="Dataset mirror directory."),
    ema: Path | None = typer.Option(None, help="JSON {target: {domain: refusal drop}} or a study's results/ema.json: "
                                               "also write correlation.json."),
    ema_variant: str = typer.Option("unlearn", help="Which variant of a study's ema.json to use."),
    batch_size: int = typer.Option(8),
    seed: int = typer.Option(0, help="Seed of the prompt sample."),
    system_prompt: str | None = typer.Option(None, help="System prompt used when rendering (as in generation)."),
    device: str = typer.Option("auto"),
    dtype: str = typer.Option("auto"),
) -> None:
    """Build concept vectors, compare them across domains and layers, rank expected spillover."""
    from ..concepts import analyse_concepts, correlate, load_ema, plot_concepts, predictions
    from ..data.suite import BENIGN, DataConfig, build_suite
    from ..domains import parse_domains
    from ..io import InputError, write_json
    from ..models import load_model

    chosen = parse_layers(layers)
    try:
        names = [d.value for d in parse_domains(domains)]
    except ValueError as e:
        raise InputError(f"--domains: {e}") from None
    ema_values = load_ema(ema, ema_variant) if ema is not None else None
    suite = build_suite(DataConfig(), data_dir)
    prompts = {d: sample_prompts(suite.get(d, "train") + suite.get(d, "test"), n, seed) for d in names}
    benign = sample_prompts(suite.get(BENIGN, "train") + suite.get(BENIGN, "test"), n, seed)
    lm, tok = load_model(model, device=device, dtype=dtype)
    result = analyse_concepts(lm, tok, prompts, benign, out, method=method, layers=chosen, batch_size=batch_size,
                              model_name=model, system_prompt=system_prompt)
    ranked = predictions(result.summary)
    write_json(out / "prediction.json", {t: [[d, round(s, 5)] for d, s in r] for t, r in ranked.items()})
    if ema_values is not None:
        corr = correlate(out / "summary.json", ema_values)
        typer.echo(f"best layer {corr['best_layer']}; early layers predict: {corr['early_layers_predict']} "
                   f"({corr['rationale']})")
    plot_concepts(out)
    counts = ", ".join(f"{d} {len(p)}" for d, p in prompts.items())
    typer.echo(f"prompts: {counts}, benign {len(benign)}; {result.summary['seconds']:.1f} s")
    for t, r in ranked.items():
        typer.echo(f"expected spillover from {t}: " + " > ".join(d for d, _ in r))
    typer.echo(f"wrote {out / 'summary.json'}, prediction.json, vectors.npz and figures/ in {out}")
