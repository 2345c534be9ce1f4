"""llama.cpp generation against the fp32 torch path on the study's prompts: speed and label agreement.

The reference is today's CPU path (fp32 torch, ``generate_responses`` at the preset's batch);
the candidate is the ``llamacpp`` backend on the embedded model's own GGUF (Q4_K_M: Q5_0, Q4_K,
Q6_K and Q8_0 tensors; the file the torch weights are dequantised from), so only the arithmetic
differs, or (``--llama-quantize q8_0``) on that file requantised to Q8_0. Both sets of responses
go through the default judge; the bench reports label agreement per set, the flipped rows and the
machine (CPU flags, the ISA torch, oneDNN, MKL and llama.cpp were limited to).

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        SPILLOVER_DATA_DIR=../shared/datasets .venv/bin/python bench/cpu_llamacpp_agreement.py \\
        --config configs/standard-cpu.yaml --n 40 \\
        --out bench/results/cpu/llamacpp-agreement-epyc-zen4-as-avx2-2core.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import torch

from spillover.config import load_yaml_config
from spillover.generation import as_messages
from spillover.generation.loading import load_backend, make_backend
from spillover.study import StudyConfig

from cpu_batch_agreement import emit, refusal_labels, study_prompts  # bench/, beside this file
from cpu_int8_agreement import compare, timed

#: CPU flags that decide which kernels torch and llama.cpp can use.
FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8")


def machine() -> dict:
    """The CPU (``lscpu``), its relevant flags, the ISA limits in the environment and both runtimes' view."""
    import llama_cpp

    info = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if ":" in line)
    flags = set(info.get("Flags", "").split())
    return {"cpu": info.get("Model name", "").strip(), "cores": os.cpu_count(),
            "flags": {f: f in flags for f in FLAGS},
            "env": {k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                                                   "OMP_NUM_THREADS")},
            "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(), "llama_cpp_python": llama_cpp.__version__,
            "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode().strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/standard-cpu.yaml")
    ap.add_argument("--n", type=int, default=40, help="prompts per evaluation set")
    ap.add_argument("--batch", type=int, default=32, help="batch of the fp32 torch reference")
    ap.add_argument("--baseline-batch", type=int,
                    help="also time fp32 torch at this batch (8: the CPU presets' batch before they moved to 32)")
    ap.add_argument("--llama-batch", type=int, default=32, help="sequences per llama.cpp batch")
    ap.add_argument("--llama-quantize", default="none", choices=["none", "q8_0"],
                    help="models.quantize of the candidate: q8_0 requantises the GGUF for llama.cpp")
    ap.add_argument("--max-new-tokens", type=int, help="override the preset's evaluation limit (decode-heavy runs)")
    ap.add_argument("--conditions", default="", help="what else ran on the machine")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cfg = load_yaml_config(StudyConfig, args.config)
    if args.max_new_tokens:
        cfg.evaluation.decoding.max_new_tokens = args.max_new_tokens
    flat = study_prompts(cfg, args.n)
    prompts = [r.prompt for _, r in flat]
    backend = load_backend("hf", cfg.models.aligned, dtype="float32", batch_size=args.batch)
    runs = {"ref": timed(backend, prompts, cfg, args.batch, "fp32 torch")}
    if args.baseline_batch:
        runs["baseline"] = {**timed(backend, prompts, cfg, args.baseline_batch, f"fp32 torch, batch {args.baseline_batch}"),
                            "name": "baseline"}
    start = time.perf_counter()
    llama = make_backend("llamacpp", backend.model, backend.tokenizer, cfg.models.aligned, batch_size=args.llama_batch,
                         quantize=args.llama_quantize)
    load_s = round(time.perf_counter() - start, 1)
    runs["llamacpp"] = {**timed(llama, prompts, cfg, args.llama_batch, "llamacpp"), "name": "llamacpp"}
    labels = refusal_labels(cfg, flat, {name: run["texts"] for name, run in runs.items()})
    ref = runs["ref"]
    result = {
        "command": "bench/cpu_llamacpp_agreement.py " + " ".join(
            f"--{k.replace('_', '-')} {v!r}" for k, v in vars(args).items()),
        "machine": machine(), "conditions": args.conditions,
        "model": cfg.models.aligned, "judge": cfg.judges.primary,
        "max_new_tokens": cfg.evaluation.decoding.max_new_tokens, "responses": len(prompts),
        "prompt_tokens": sum(len(backend.tokenizer(backend.render(as_messages(p)), add_special_tokens=False)["input_ids"])
                             for p in prompts),
        "reference": {"backend": "hf", "dtype": "float32", "batch": args.batch, "seconds": ref["seconds"],
                      "s_per_response": ref["s_per_response"], "new_tokens_per_s": ref["new_tokens_per_s"],
                      "load_avg_after": round(ref["load"], 2), "refusals": sum(bool(x) for x in labels["ref"])},
        "candidate": {"backend": "llamacpp", "identity": llama.identity, "batch": args.llama_batch,
                      "threads": llama.threads, "load_seconds": load_s,
                      "refusals": sum(bool(x) for x in labels["llamacpp"]),
                      **compare(flat, cfg, ref, runs["llamacpp"], labels)},
    }
    if args.baseline_batch:
        base = runs["baseline"]
        result["baseline"] = {"backend": "hf", "dtype": "float32", "batch": args.baseline_batch,
                              **compare(flat, cfg, ref, base, labels)}
        result["candidate"]["speedup_vs_baseline"] = round(base["seconds"] / runs["llamacpp"]["seconds"], 2)
    emit(result, args.out)


if __name__ == "__main__":
    main()
