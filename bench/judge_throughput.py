"""Judgments per second of a judge on the XSTest v2 responses (CPU or GPU), written as JSON.

    .venv/bin/python bench/judge_throughput.py --judge default --n 600 \
        --out bench/results/cpu/judge-default-$(hostname).json

The clock covers encoding and the probe (the model is loaded and warmed up on 32 other items
first); no judgment cache is used. The CPU's flags (AVX-512 / AMX) and thread count are recorded,
since they set the speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from spillover.data.store import DataStore
from spillover.judges import build_judge
from spillover.judges.labelled import xstest_completions


def cpu_flags() -> dict:
    """Model name and the vector extensions that matter for PyTorch's CPU kernels."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.processor())
    return {"cpu": name, "avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "amx_bf16": "amx_bf16" in flags}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judge", default="default")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    items = [it.item for it in xstest_completions(DataStore(args.data_dir))]
    judge = build_judge(args.judge)
    judge.judge(items[-32:])                                   # load and warm up
    batch = items[:args.n]
    start = time.perf_counter()
    judge.judge(batch)
    seconds = time.perf_counter() - start
    result = {"judge": args.judge, "judge_id": judge.id, "items": len(batch), "seconds": round(seconds, 2),
              "judgments_per_s": round(len(batch) / seconds, 1), "threads": torch.get_num_threads(),
              "device": "cuda:" + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              **cpu_flags(), "torch": torch.__version__}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
