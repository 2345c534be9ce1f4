"""Cached, length-sorted batch generation over any backend."""

from __future__ import annotations

from ..cache import JsonlCache, cache_key
from ..progress import progress
from .base import Decoding, GenerationBackend, Messages, as_messages


def generate_responses(
    backend: GenerationBackend,
    prompts: list[str | Messages],
    decoding: Decoding,
    cache: JsonlCache | None = None,
    batch_size: int | None = None,
    description: str = "generating",
) -> list[list[str]]:
    """Return ``decoding.n`` responses per prompt, generating only what the cache lacks.

    Prompts are rendered with the model's chat template, deduplicated, sorted by length (longest
    first, so memory peaks early) and generated in batches; each finished batch is written to the
    cache at once, so an interrupted run loses at most the batch in flight.
    """
    cache = cache if cache is not None else JsonlCache(None)
    size = batch_size or getattr(backend, "batch_size", 8)
    settings = decoding.model_dump()
    rendered = [backend.render(as_messages(p, decoding.system_prompt)) for p in prompts]
    keys = [cache_key(backend.identity, r, settings) for r in rendered]
    todo = sorted({k: r for k, r in zip(keys, rendered) if k not in cache}.items(), key=lambda kv: -len(kv[1]))
    if todo:
        with progress() as bar:
            task = bar.add_task(description, total=len(todo))
            for start in range(0, len(todo), size):
                chunk = todo[start:start + size]
                outs = backend.generate([r for _, r in chunk], decoding)
                cache.put_many({k: o for (k, _), o in zip(chunk, outs)})
                bar.advance(task, len(chunk))
    return [cache.get(k) for k in keys]
