"""``spillover generate``: batched, cached chat generation over a JSONL prompt file."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app


@app.command()
def generate(
    model: str = typer.Option(..., help="Hub id, local directory or embedded:ALIAS."),
    prompts: Path = typer.Option(..., help="JSONL with a 'prompt' (string) or 'messages' (list) per row."),
    out: Path = typer.Option(..., help="Output JSONL: each input row plus 'response' (and 'responses' when n > 1)."),
    adapter: str | None = typer.Option(None, help="A peft adapter directory to apply."),
    max_new_tokens: int = typer.Option(256),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0),
    n: int = typer.Option(1, help="Samples per prompt."),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(8),
    backend: str = typer.Option("hf", help="hf (transformers generate) | static (static KV cache + CUDA graphs) "
                                           "| llamacpp (llama.cpp on an embedded model's GGUF; CPU)"),
    cache: Path | None = typer.Option(None, help="Response cache file (default: beside --out)."),
    device: str = typer.Option("auto"),
    dtype: str = typer.Option("auto"),
) -> None:
    """Generate responses for every prompt; a repeated run answers from the cache."""
    from ..cache import JsonlCache
    from ..generation import Decoding
    from ..generation.loading import load_backend
    from ..generation.prompts import read_prompt_file, write_responses
    from ..generation import generate_responses

    rows, convs = read_prompt_file(prompts)
    decoding = Decoding(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n, seed=seed)
    store = JsonlCache(cache or out.with_name(out.name + ".cache.jsonl"))
    engine = load_backend(backend, model, adapter=adapter, device=device, dtype=dtype, batch_size=batch_size)
    before = len(store)
    outs = generate_responses(engine, convs, decoding, store)
    write_responses(out, rows, outs)
    typer.echo(f"wrote {len(rows)} responses to {out} ({len(store) - before} generated, rest from cache)")
