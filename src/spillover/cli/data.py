"""``spillover data build|stats|show``: the prompt suite of the seven domains, XSTest, MMLU and benign."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from . import app

data_app = typer.Typer(no_args_is_help=True, help="Build and inspect the prompt suite.")
app.add_typer(data_app, name="data")

DATA_DIR_HELP = "Dataset mirror directory (default: $SPILLOVER_DATA_DIR); looked in after the user cache."


def _suite(config: Path | None, data_dir: Path | None, suite_dir: Path | None, offline: bool,
           seed: int | None = None, pillar_judge: str | None = None, pillar_endpoint: str | None = None):
    from ..config import load_yaml_config
    from ..data.classify import PillarJudge
    from ..data.suite import DataConfig, Suite, build_suite

    if suite_dir is not None:
        return Suite.read(suite_dir)
    cfg = load_yaml_config(DataConfig, config) if config else DataConfig()
    if seed is not None:
        cfg.seed = seed
    if pillar_judge or pillar_endpoint:
        backend = "openai" if pillar_endpoint else "hf"
        cfg.classifier = PillarJudge(backend=backend, base_url=pillar_endpoint,
                                     **({"model": pillar_judge} if pillar_judge else {}))
    return build_suite(cfg, data_dir, online=not offline)


@data_app.command("build")
def build(
    out: Path = typer.Option(..., help="Output directory: <set>.<split>.jsonl files and manifest.json."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    config: Path | None = typer.Option(None, help="YAML file with DataConfig fields."),
    seed: int | None = typer.Option(None, help="Override the config's seed."),
    pillar_judge: str | None = typer.Option(None, help="Classify pillars with this chat model (hf spec, or the "
                                            "model name with --pillar-endpoint) instead of the source categories."),
    pillar_endpoint: str | None = typer.Option(None, help="OpenAI-compatible base URL for the pillar judge."),
    offline: bool = typer.Option(False, help="Never download; missing files are errors."),
) -> None:
    """Build the suite from the source files and write it."""
    suite = _suite(config, data_dir, None, offline, seed, pillar_judge, pillar_endpoint)
    suite.write(out)
    _print_counts(suite)
    typer.echo(f"wrote the suite to {out}")


@data_app.command("stats")
def stats(
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    config: Path | None = typer.Option(None, help="YAML file with DataConfig fields."),
    suite_dir: Path | None = typer.Option(None, "--suite", help="Read a built suite instead of building one."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    offline: bool = typer.Option(False, help="Never download; missing files are errors."),
) -> None:
    """Counts per set and split, and per source (rows, loaded, skipped, used)."""
    suite = _suite(config, data_dir, suite_dir, offline)
    if as_json:
        typer.echo(json.dumps({**suite.counts(), "pillars": suite.info.get("pillars"),
                               "duplicates_dropped": {k: len(v) for k, v in
                                                      suite.info.get("duplicates_dropped", {}).items()}}, indent=2))
    else:
        _print_counts(suite)


@data_app.command("show")
def show(
    name: str = typer.Argument(..., help="A domain (or alias), xstest, xstest_unsafe, mmlu or benign."),
    n: int = typer.Option(5, "-n", help="How many records."),
    split: str = typer.Option("test", help="train or test."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    config: Path | None = typer.Option(None, help="YAML file with DataConfig fields."),
    suite_dir: Path | None = typer.Option(None, "--suite", help="Read a built suite instead of building one."),
    offline: bool = typer.Option(False, help="Never download; missing files are errors."),
) -> None:
    """Print the first N records of a set (test splits are in seeded random order)."""
    from ..domains import parse_domain
    from ..io import InputError

    suite = _suite(config, data_dir, suite_dir, offline)
    key = name if name in suite.sets else None
    if key is None:
        try:
            key = parse_domain(name).value
        except ValueError:
            raise InputError(f"unknown set {name!r}; available: {', '.join(suite.names())}") from None
    try:
        records = suite.get(key, split)
    except KeyError as e:
        raise InputError(str(e.args[0])) from None
    for r in records[:n]:
        typer.echo(json.dumps(r.to_dict(), ensure_ascii=False, indent=2))


def _print_counts(suite) -> None:
    from rich.console import Console
    from rich.table import Table

    counts = suite.counts()
    sets = Table(title="prompt sets")
    for col in ("set", "train", "test", "total"):
        sets.add_column(col, justify="left" if col == "set" else "right")
    for name in suite.names():
        c = counts[name]
        sets.add_row(name, str(c.get("train", "-")), str(c.get("test", "-")), str(sum(c.values())))
    sources = Table(title="sources")
    for col in ("source", "rows", "loaded", "skipped", "used"):
        sources.add_column(col, justify="left" if col in ("source", "used") else "right")
    for src, c in counts["sources"].items():
        used = ", ".join(f"{k} {v}" for k, v in c["used"].items()) or "-"
        sources.add_row(src, str(c["rows"]), str(c["loaded"]), str(c["skipped"]), used)
    console = Console(width=120)
    console.print(sets)
    console.print(sources)
    dups = suite.info.get("duplicates_dropped", {})
    if dups:
        console.print("duplicates dropped: " + ", ".join(f"{k} {len(v)}" for k, v in dups.items()))
    agree = (suite.info.get("pillars") or {}).get("agreement_with_source")
    if agree:
        unparsed = suite.info["pillars"].get("unparsed_answers", 0)
        console.print(f"pillar classifier vs source categories: agreement {agree['agreement']}, "
                      f"kappa {agree['kappa']} over {agree['n']} prompts ({unparsed} answers named no pillar)")
