"""Per-prompt ``model.generate`` loop vs the batched engine on the same prompts (CPU).

    .venv/bin/python bench/cpu_generation.py --n 64 --max-new-tokens 64 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spillover.generation import Decoding, generate_responses
from spillover.generation.hf import HFBackend
from spillover.models import DEFAULT_ALIGNED, load_model

PROMPTS = [
    "Explain what a hash table is.", "Write a haiku about the sea.", "How do vaccines work?",
    "Give three tips for learning a language.", "What is the difference between TCP and UDP?",
    "Summarise the plot of Hamlet in two sentences.", "Write a Python function that checks for primes.",
    "Why is the sky blue?", "What are the benefits of regular exercise?", "Explain recursion to a child.",
    "How do I make a cup of green tea?", "List four planets of the solar system.",
    "What does HTTP status 404 mean?", "Describe photosynthesis briefly.",
    "Write a SQL query that counts rows in a table named users.", "What is a good name for a pet goldfish?",
]


def per_prompt(backend: HFBackend, prompts: list[str], max_new: int) -> tuple[float, int]:
    """Plain loop: one ``model.generate`` call per prompt; returns (seconds, new tokens)."""
    tok, model = backend.tokenizer, backend.model
    new_tokens, start = 0, time.perf_counter()
    for p in prompts:
        enc = tok(backend.render([{"role": "user", "content": p}]), return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
        new_tokens += out.shape[1] - enc["input_ids"].shape[1]
    return time.perf_counter() - start, new_tokens


def batched(backend: HFBackend, prompts: list[str], max_new: int, batch_size: int) -> tuple[float, int]:
    start = time.perf_counter()
    outs = generate_responses(backend, prompts, Decoding(max_new_tokens=max_new), None, batch_size=batch_size)
    seconds = time.perf_counter() - start
    return seconds, sum(len(backend.tokenizer(o[0], add_special_tokens=False)["input_ids"]) + 1 for o in outs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_ALIGNED)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    model, tok = load_model(args.model, dtype=args.dtype)
    backend = HFBackend(model, tok, identity=args.model)
    prompts = [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" (variant {i})") for i in range(args.n)]
    loop_s, loop_tok = per_prompt(backend, prompts, args.max_new_tokens)
    batch_s, batch_tok = batched(backend, prompts, args.max_new_tokens, args.batch_size)
    result = {
        "model": args.model, "dtype": str(model.dtype), "threads": torch.get_num_threads(), "prompts": args.n,
        "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
        "loop": {"seconds": round(loop_s, 1), "prompts_per_s": round(args.n / loop_s, 3), "new_tokens_per_s": round(loop_tok / loop_s, 1)},
        "batched": {"seconds": round(batch_s, 1), "prompts_per_s": round(args.n / batch_s, 3), "new_tokens_per_s": round(batch_tok / batch_s, 1)},
    }
    result["speedup_prompts_per_s"] = round(loop_s / batch_s, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
