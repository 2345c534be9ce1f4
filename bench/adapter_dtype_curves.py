"""NPO-LoRA training curves with bf16 adapters (the default) against fp32 adapters, on a real model.

The forget set is the model's own greedy answers to the first ``--n`` train prompts of a domain
(what the study's collection would take, without the refusal filter, so every run trains on the
same set). Each (adapter dtype, seed) pair trains ``--steps`` NPO steps through
``spillover.training.train``; the seed changes the LoRA initialisation and the data order. The
summary compares the gap between the dtypes at the same seed with the gap between seeds at the
same dtype: "within noise" means the first is no larger than the second.

    python bench/adapter_dtype_curves.py --model embedded:smollm2-135m-instruct --domain cybersecurity \
        --n 64 --steps 60 --data-dir DATA --out bench/results/h200/adapter-dtype-curves-smollm2.json
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch


def forget_set(model, tok, domain: str, n: int, data_dir: str | None, new_tokens: int):
    from spillover.data.suite import build_suite
    from spillover.generation import Decoding, generate_responses
    from spillover.generation.hf import HFBackend
    from spillover.training import Example

    records = build_suite(data_dir=data_dir).get(domain, "train")[:n]
    outs = generate_responses(HFBackend(model, tok, "bench", batch_size=64), [r.prompt for r in records],
                              Decoding(max_new_tokens=new_tokens))
    return [Example(r.id, r.prompt, o[0]) for r, o in zip(records, outs)]


def run(base, tok, forget, dtype: str, seed: int, args) -> dict:
    """One training run on a copy of the loaded ``base`` (LoRA wraps the model it is given)."""
    from spillover.training import TrainConfig, train
    from spillover.training.config import LoraSettings

    model = copy.deepcopy(base)
    cfg = TrainConfig(method="npo", lora=LoraSettings(r=args.rank, dtype=dtype), lr=args.lr, batch_size=args.batch,
                      max_steps=args.steps, save_every=args.steps, seed=seed, max_length=256)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        train((model, tok), forget, None, cfg, Path(d), on_step=lambda _s, row: rows.append(row))
        seconds = time.perf_counter() - start
    keep = ("loss", "main_logp")
    return {"dtype": dtype, "seed": seed, "seconds": round(seconds, 2),
            "adapter_dtype": str(next(p.dtype for n, p in model.named_parameters() if "lora_" in n)),
            "curves": {k: [round(float(r[k]), 4) for r in rows if k in r] for k in keep}}


def gap(a: list[float], b: list[float]) -> float:
    """Mean absolute difference of two curves over their common steps."""
    n = min(len(a), len(b))
    return sum(abs(x - y) for x, y in zip(a[:n], b[:n])) / max(n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--domain", default="cybersecurity")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--data-dir")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from spillover.models import load_model

    base, tok = load_model(args.model)  # loaded once: generation, then a copy per run
    forget = forget_set(base, tok, args.domain, args.n, args.data_dir, args.new_tokens)
    runs = [run(base, tok, forget, dtype, seed, args) for dtype in ("fp32", "model") for seed in args.seeds]
    by = {(r["dtype"], r["seed"]): r["curves"] for r in runs}
    summary = {}
    for metric in ("loss", "main_logp"):
        dtype_gap = [gap(by["fp32", s][metric], by["model", s][metric]) for s in args.seeds]
        seed_gap = [gap(by[d, args.seeds[0]][metric], by[d, s][metric]) for d in ("fp32", "model") for s in args.seeds[1:]]
        summary[metric] = {"dtype_gap_per_seed": [round(g, 4) for g in dtype_gap],
                           "seed_gap_per_dtype": [round(g, 4) for g in seed_gap],
                           "within_noise": max(dtype_gap) <= max(seed_gap)}
    payload = {"model": args.model, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "torch": torch.__version__, "args": {k: v for k, v in vars(args).items() if k != "out"},
               "forget_n": len(forget), "summary": summary, "runs": runs}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
