"""``spillover judge``: label responses with a judge; ``spillover judge agree``: compare labelings."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import typer

from . import app

judge_app = typer.Typer(no_args_is_help=False, add_completion=False)
app.add_typer(judge_app, name="judge")


@judge_app.callback(invoke_without_command=True)
def judge(
    ctx: typer.Context,
    judge_spec: str | None = typer.Option(None, "--judge", help="default | keyword | bbq | probe:NAME | rubric:local:MODEL | bias-rubric:local:MODEL | rubric:openai:MODEL | bias-rubric:openai:MODEL"),
    inp: Path | None = typer.Option(None, "--in", help="JSONL rows with 'prompt' and 'response' (optional 'domain'/'set', 'meta')."),
    out: Path | None = typer.Option(None, "--out", help="Output JSONL: each row plus 'label', 'explanation', 'judge_id'."),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1."),
    api_key_env: str | None = typer.Option(None, help="Environment variable holding the API key (default OPENAI_API_KEY)."),
    template: Path | None = typer.Option(None, help="A rubric template file with {prompt} and {response} fields."),
    cache: Path | None = typer.Option(None, help="Judgment cache (default: beside --out)."),
    max_concurrency: int | None = typer.Option(None, help="Parallel API requests (default 8)."),
    timeout: float | None = typer.Option(None, help="Seconds per API request (default 60)."),
    max_retries: int | None = typer.Option(None, help="API retries on 429/5xx/timeouts, with exponential backoff (default 4)."),
    batch_size: int | None = typer.Option(None, help="Local judge batch size (default 4)."),
    max_new_tokens: int | None = typer.Option(None, help="Judge output token limit (default 64 local, 128 API)."),
    device: str | None = typer.Option(None, help="Local judge device (default auto)."),
) -> None:
    """Judge every response; a repeated run answers from the judgment cache."""
    if ctx.invoked_subcommand is not None:
        return
    from ..cache import JsonlCache
    from ..io import InputError, read_jsonl, write_jsonl
    from ..judges import UNPARSABLE, build_judge, judge_cached
    from ..judges.base import item_from_row, judgment_key

    if not (judge_spec and inp and out):
        raise typer.BadParameter("--judge, --in and --out are required (or use the 'agree' subcommand)")
    rows = read_jsonl(inp)
    if not rows:
        raise InputError(f"{inp}: no rows (the file is empty)")
    items = [item_from_row(row, f"{inp}, row {i}") for i, row in enumerate(rows, 1)]
    try:
        judge_obj = build_judge(judge_spec, base_url=base_url, api_key_env=api_key_env, template=template,
                                max_concurrency=max_concurrency, timeout=timeout, max_retries=max_retries,
                                batch_size=batch_size, max_new_tokens=max_new_tokens, device=device)
    except ValueError as e:
        raise InputError(f"--judge {judge_spec}: {e}") from None
    check = getattr(judge_obj, "check_item", None)
    if check:
        for i, item in enumerate(items, 1):
            check(item, f"{inp}, row {i}")
    store = JsonlCache(cache or out.with_name(out.name + ".cache.jsonl"))
    fresh = len({k for k in (judgment_key(judge_obj.id, it) for it in items) if k not in store})
    started = time.perf_counter()
    verdicts = judge_cached(judge_obj, items, store)
    elapsed = time.perf_counter() - started
    write_jsonl(out, ({**row, "label": v.label, "explanation": v.explanation, "judge_id": v.judge_id}
                      for row, v in zip(rows, verdicts)))
    counts = Counter(v.label for v in verdicts)
    counts.setdefault(UNPARSABLE, 0)
    typer.echo(f"judge {judge_obj.id}")
    for label, count in sorted(counts.items()):
        typer.echo(f"  {label:<22}{count:>7}  ({100 * count / len(verdicts):.1f}%)")
    rate = f", {fresh / elapsed:.3f} judgments/s" if fresh and elapsed > 0 else ""
    typer.echo(f"wrote {len(rows)} judged rows to {out} ({fresh} judged in {elapsed:.1f} s{rate}, rest from cache)")


def _align(a_path: Path, a_rows: list[dict], b_path: Path, b_rows: list[dict]):
    """Pairs of rows present in both files, matched by 'id' when every row has one, else by (prompt, response)."""
    from ..io import InputError

    by_id = all("id" in r for r in a_rows + b_rows)

    def key(r: dict):
        return ("id", str(r["id"])) if by_id else ("pr", r.get("prompt"), r.get("response"))

    for path, rows in ((a_path, a_rows), (b_path, b_rows)):
        for i, r in enumerate(rows, 1):
            if not isinstance(r.get("label"), str):
                raise InputError(f"{path}, row {i}: missing string field 'label'")
            if not by_id and not (isinstance(r.get("prompt"), str) and isinstance(r.get("response"), str)):
                raise InputError(f"{path}, row {i}: needs 'id' (in every row of both files) or 'prompt' and 'response'")
    index_b = {}
    for i, r in enumerate(b_rows, 1):
        if key(r) in index_b:
            raise InputError(f"{b_path}, row {i}: duplicate {'id' if by_id else '(prompt, response)'}")
        index_b[key(r)] = r
    pairs = [(r, index_b[key(r)]) for r in a_rows if key(r) in index_b]
    return pairs, ("id" if by_id else "(prompt, response)")


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


@judge_app.command()
def agree(
    a: Path = typer.Argument(..., help="Labelled JSONL (e.g. judge A output)."),
    b: Path = typer.Argument(..., help="Labelled JSONL (e.g. judge B output or a gold file)."),
    show: int = typer.Option(20, help="How many disagreeing examples to print."),
) -> None:
    """Confusion matrix, accuracy, Cohen's kappa and disagreeing examples of two labelled files."""
    from ..io import InputError, read_jsonl
    from ..judges import agreement

    a_rows, b_rows = read_jsonl(a), read_jsonl(b)
    pairs, how = _align(a, a_rows, b, b_rows)
    if not pairs:
        raise InputError(f"{a} and {b} share no rows (matched by {how})")
    stats = agreement([x["label"] for x, _ in pairs], [y["label"] for _, y in pairs])
    typer.echo(f"{stats.n} rows matched by {how} ({len(a_rows) - stats.n} only in {a.name}, {len(b_rows) - stats.n} only in {b.name})")
    width = max(len(x) for x in stats.labels + [a.name[:24]]) + 2
    typer.echo(f"rows: {a.name}, columns: {b.name}")
    typer.echo(" " * width + "".join(f"{y:>{width}}" for y in stats.labels))
    for x in stats.labels:
        typer.echo(f"{x:<{width}}" + "".join(f"{stats.confusion[x][y]:>{width}}" for y in stats.labels))
    typer.echo(f"accuracy {stats.accuracy:.3f}  kappa {stats.kappa:.3f}  disagreements {len(stats.disagreements)}")
    for i in stats.disagreements[:show]:
        x, y = pairs[i]
        ident = f"id {x['id']}" if "id" in x else f"#{i}"
        typer.echo(f"- {ident}: {x['label']} vs {y['label']} | prompt: {_short(x.get('prompt', ''), 80)} | "
                   f"response: {_short(x.get('response', ''), 120)}")
    if len(stats.disagreements) > show:
        typer.echo(f"... and {len(stats.disagreements) - show} more")


@judge_app.command()
def calibrate(
    judge_spec: str = typer.Option("default", "--judge", help="Judge spec to score (see `spillover judge --help`)."),
    set_name: str = typer.Option("xstest-v2", "--set", help="xstest-v2 (mirror) | spillover-own-v1 (shipped) | a JSONL path with prompt, response, gold."),
    out: Path | None = typer.Option(None, help="Directory for calibration.json and calibration.md."),
    data_dir: Path | None = typer.Option(None, help="Dataset mirror (default: $SPILLOVER_DATA_DIR)."),
    cv: str = typer.Option("auto", help="auto: refit leaving each answering model out when the judge was fitted on this set | none | groups."),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible endpoint for API judges."),
    api_key_env: str | None = typer.Option(None, help="Environment variable holding the API key."),
    max_new_tokens: int | None = typer.Option(None, help="Judge output token limit (rubric judges)."),
) -> None:
    """Agreement of a judge with human labels: kappa [95% CI], P/R/F1, confusion, speed, breakdowns."""
    from ..data.store import DataStore
    from ..io import InputError, write_json, write_text
    from ..judges import build_judge
    from ..judges.calibration import calibrate as run_calibration, markdown
    from ..judges.labelled import load_set

    if cv not in ("auto", "none", "groups"):
        raise InputError(f"--cv {cv}: use auto, none or groups")
    items = load_set(set_name, DataStore(data_dir))
    try:
        judge_obj = build_judge(judge_spec, base_url=base_url, api_key_env=api_key_env, max_new_tokens=max_new_tokens)
    except ValueError as e:
        raise InputError(f"--judge {judge_spec}: {e}") from None
    fitted_on = getattr(judge_obj, "fitted_on", None)
    cross = cv == "groups" or (cv == "auto" and fitted_on == set_name)
    if cross and not hasattr(judge_obj, "cross_validate"):
        raise InputError(f"--cv groups: judge {judge_spec} cannot be refitted")
    result = run_calibration(judge_obj, items, set_name, cross_validate=cross)
    text = markdown(result)
    typer.echo(text)
    if out:
        write_json(out / "calibration.json", result.to_dict())
        write_text(out / "calibration.md", text)
        typer.echo(f"wrote {out / 'calibration.json'} and {out / 'calibration.md'}")


@judge_app.command("build-probes")
def build_probes_cmd(
    data_dir: Path | None = typer.Option(None, help="Dataset mirror (default: $SPILLOVER_DATA_DIR)."),
    out: Path | None = typer.Option(None, help="Output directory (default: the package's judges/artifacts)."),
) -> None:
    """Rebuild the refusal and toxicity probes from the mirror; prints each artefact's sha256."""
    from ..data.store import DataStore
    from ..judges.build import build_probes

    from ..judges.probe import Probe

    for path in build_probes(DataStore(data_dir), out):
        typer.echo(f"{path}  sha256 {Probe.load(path).sha256}")


@judge_app.command("build-adapter")
def build_adapter_cmd(
    data_dir: Path | None = typer.Option(None, help="Dataset mirror (default: $SPILLOVER_DATA_DIR)."),
    out: Path | None = typer.Option(None, help="Output directory (default: the package's judges/artifacts)."),
) -> None:
    """Retrain the default judge's refusal classifier (MiniLM adapters) and its four
    leave-one-model-out folds on XSTest v2 (about 15 minutes on 2 CPU cores); prints the sha256."""
    from ..data.store import DataStore
    from ..judges.build import build_refusal_adapter
    from ..judges.finetuned import Adapter

    path = build_refusal_adapter(DataStore(data_dir), out)
    card = Adapter.load(path).card
    typer.echo(f"{path}  sha256 {card['sha256']}  leave-one-model-out mean kappa "
               f"{card['leave_one_model_out_mean_kappa']} (classifier alone {card['classifier_alone_leave_one_model_out_mean_kappa']})")
