"""Int8 generation against fp32 on the study's prompts: speed and refusal-label agreement.

The reference is today's CPU path (fp32, ``generate_responses`` at the preset's batch); each
candidate decodes with an int8 copy of the same loaded weights (``generation.quant.int8_copy``),
with every Linear quantised or with some kept in fp32 (``--fp32-modules``). Quantisation changes
the arithmetic, so greedy tokens can flip; both sets of responses go through the default judge and
the bench reports label agreement per set beside the speed-up.

    SPILLOVER_DATA_DIR=../shared/datasets .venv/bin/python bench/cpu_int8_agreement.py \\
        --config configs/standard-cpu.yaml --n 40 --batch 32 \\
        --out bench/results/cpu/int8-agreement-epyc-avx2-2core.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from spillover.config import load_yaml_config
from spillover.generation import generate_responses
from spillover.generation.hf import HFBackend
from spillover.generation.loading import load_backend
from spillover.generation.quant import int8_copy
from spillover.study import StudyConfig

from cpu_batch_agreement import emit, per_set_agreement, refusal_labels, study_prompts  # bench/, beside this file


def timed(backend, prompts: list[str], cfg: StudyConfig, batch: int, label: str) -> dict:
    """Responses, seconds and new-token rate of one backend (no response cache)."""
    start = time.perf_counter()
    outs = generate_responses(backend, prompts, cfg.evaluation.decoding, None, batch_size=batch, description=label)
    seconds = time.perf_counter() - start
    texts = [o[0] for o in outs]
    tokens = sum(len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return {"texts": texts, "seconds": round(seconds, 1), "s_per_response": round(seconds / len(prompts), 3),
            "new_tokens_per_s": round(tokens / seconds, 1), "load": os.getloadavg()[0]}


def compare(flat, cfg: StudyConfig, ref: dict, new: dict, labels: dict) -> dict:
    """Speed, per-set and overall agreement of candidate run ``new`` (named ``new["name"]``) with
    ``ref``, and the flipped rows."""
    per_set = per_set_agreement(cfg, flat, (ref["texts"], labels["ref"]), (new["texts"], labels[new["name"]]))
    n = len(flat)
    flips = [{"set": s, "id": r.id, "ref_refusal": labels["ref"][i], "new_refusal": labels[new["name"]][i]}
             for i, (s, r) in enumerate(flat) if labels["ref"][i] != labels[new["name"]][i]]
    return {"seconds": new["seconds"], "s_per_response": new["s_per_response"],
            "new_tokens_per_s": new["new_tokens_per_s"], "load_avg_after": round(new["load"], 2),
            "speedup": round(ref["seconds"] / new["seconds"], 2),
            "label_agreement": round(sum(v["same_label"] for v in per_set.values()) / n, 4),
            "text_identical": round(sum(v["same_text"] for v in per_set.values()) / n, 4),
            "per_set": per_set, "label_flips": flips}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/standard-cpu.yaml")
    ap.add_argument("--n", type=int, default=40, help="prompts per evaluation set")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--fp32-modules", nargs="*", default=["", "down_proj", "down_proj,lm_head"],
                    help="one candidate per entry: comma-separated Linear name endings kept fp32 ('' = none)")
    ap.add_argument("--conditions", default="", help="what else ran on the machine")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cfg = load_yaml_config(StudyConfig, args.config)
    flat = study_prompts(cfg, args.n)
    prompts = [r.prompt for _, r in flat]
    backend = load_backend("hf", cfg.models.aligned, dtype="float32", batch_size=args.batch)
    runs = {"ref": timed(backend, prompts, cfg, args.batch, "fp32")}
    for keep in args.fp32_modules:
        start = time.perf_counter()
        fp32 = tuple(m for m in keep.split(",") if m)
        gen = int8_copy(backend.model, fp32)
        quant_s = round(time.perf_counter() - start, 1)
        cand = HFBackend(backend.model, backend.tokenizer, backend.identity + "|int8", args.batch, generator=gen)
        name = "int8" + (f"-fp32:{keep}" if keep else "")
        runs[name] = {**timed(cand, prompts, cfg, args.batch, name), "name": name, "fp32_modules": list(fp32),
                      "quantize_seconds": quant_s}
        del cand, gen
    labels = refusal_labels(cfg, flat, {name: run["texts"] for name, run in runs.items()})
    ref = runs["ref"]
    result = {
        "command": "bench/cpu_int8_agreement.py " + " ".join(
            f"--{k.replace('_', '-')} {v!r}" for k, v in vars(args).items()),
        "cpu": platform.processor() or platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "quantized_engine": torch.backends.quantized.engine,
        "model": cfg.models.aligned, "judge": cfg.judges.primary,
        "max_new_tokens": cfg.evaluation.decoding.max_new_tokens, "responses": len(prompts), "batch": args.batch,
        "conditions": args.conditions,
        "reference": {"dtype": "float32", "seconds": ref["seconds"], "s_per_response": ref["s_per_response"],
                      "new_tokens_per_s": ref["new_tokens_per_s"], "load_avg_after": round(ref["load"], 2),
                      "refusals": sum(bool(x) for x in labels["ref"])},
        "candidates": {name: {"fp32_modules": run["fp32_modules"], "quantize_seconds": run["quantize_seconds"],
                              **compare(flat, cfg, ref, run, labels)} for name, run in runs.items() if name != "ref"},
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
