"""Generation speed and refusal-label agreement of two generation settings on the study's prompts.

Greedy decoding in fp32 at batch size 8 is the reference; the candidate (a larger batch, or
another dtype) changes the arithmetic a little (other padding, other kernels), so a greedy
token can flip. What matters is the judge's label, so both sets of responses go through the
default judge and the bench reports label agreement per set beside the speed-up.

    SPILLOVER_DATA_DIR=../shared/datasets .venv/bin/python bench/cpu_batch_agreement.py \
        --config configs/standard-cpu.yaml --n 40 --ref-batch 8 --batch 32 \
        --out bench/results/cpu/batch-agreement-epyc-avx2-2core.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from spillover.cache import JsonlCache
from spillover.config import load_yaml_config
from spillover.data.suite import build_suite
from spillover.evaluation import JudgePool, refusal_flag
from spillover.generation import generate_responses
from spillover.generation.loading import load_backend
from spillover.io import write_json
from spillover.study import StudyConfig


def timed_generation(cfg: StudyConfig, prompts: list[str], batch: int, dtype: str) -> tuple[list[str], float, int]:
    """Responses, seconds and new tokens for one setting (a fresh backend, no response cache)."""
    backend = load_backend("hf", cfg.models.aligned, dtype=dtype, batch_size=batch)
    start = time.perf_counter()
    outs = generate_responses(backend, prompts, cfg.evaluation.decoding, None, batch_size=batch,
                              description=f"batch {batch} {dtype}")
    seconds = time.perf_counter() - start
    tokens = sum(len(backend.tokenizer(o[0], add_special_tokens=False)["input_ids"]) for o in outs)
    return [o[0] for o in outs], seconds, tokens


def study_prompts(cfg: StudyConfig, n: int) -> list:
    """(set, record) pairs: the first ``n`` test prompts of each evaluation set."""
    suite = build_suite(cfg.data)
    return [(s, r) for s in cfg.evaluation.sets for r in suite.get(s, "test")[:n]]


def refusal_labels(cfg: StudyConfig, flat: list, texts: dict[str, list[str]]) -> dict[str, list[bool]]:
    """Refusal flag of each response under the primary judge, per named run."""
    pool = JudgePool(JsonlCache(None))
    labels = {}
    for name, run in texts.items():
        rows = [{"prompt": r.prompt, "response": t, "set": s, "meta": r.meta} for (s, r), t in zip(flat, run)]
        labels[name] = [refusal_flag(v.label) for v in pool.judge(cfg.judges.primary, rows)]
    return labels


def per_set_agreement(cfg: StudyConfig, flat: list, ref: tuple[list[str], list[bool]],
                      new: tuple[list[str], list[bool]]) -> dict[str, dict]:
    """Per evaluation set: n, equal labels, identical texts and refusals of (texts, labels) ``ref`` and ``new``."""
    per_set = {}
    for s in cfg.evaluation.sets:
        idx = [i for i, (name, _) in enumerate(flat) if name == s]
        per_set[s] = {"n": len(idx), "same_label": sum(ref[1][i] == new[1][i] for i in idx),
                      "same_text": sum(ref[0][i] == new[0][i] for i in idx),
                      "refusals_ref": sum(bool(ref[1][i]) for i in idx),
                      "refusals_new": sum(bool(new[1][i]) for i in idx)}
    return per_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/standard-cpu.yaml")
    ap.add_argument("--n", type=int, default=40, help="prompts per evaluation set")
    ap.add_argument("--ref-batch", type=int, default=8)
    ap.add_argument("--ref-dtype", default="float32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cfg = load_yaml_config(StudyConfig, args.config)
    flat = study_prompts(cfg, args.n)
    prompts = [r.prompt for _, r in flat]
    ref, ref_s, ref_tok = timed_generation(cfg, prompts, args.ref_batch, args.ref_dtype)
    new, new_s, new_tok = timed_generation(cfg, prompts, args.batch, args.dtype)
    labels = refusal_labels(cfg, flat, {"ref": ref, "new": new})
    per_set = per_set_agreement(cfg, flat, (ref, labels["ref"]), (new, labels["new"]))
    same = sum(v["same_label"] for v in per_set.values())
    result = {
        "command": "bench/cpu_batch_agreement.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "cpu": platform.processor() or platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "model": cfg.models.aligned,
        "judge": cfg.judges.primary, "max_new_tokens": cfg.evaluation.decoding.max_new_tokens, "responses": len(prompts),
        "reference": {"batch": args.ref_batch, "dtype": args.ref_dtype, "seconds": round(ref_s, 1),
                      "new_tokens_per_s": round(ref_tok / ref_s, 1)},
        "candidate": {"batch": args.batch, "dtype": args.dtype, "seconds": round(new_s, 1),
                      "new_tokens_per_s": round(new_tok / new_s, 1)},
        "speedup": round(ref_s / new_s, 2),
        "label_agreement": round(same / len(prompts), 4),
        "text_identical": round(sum(v["same_text"] for v in per_set.values()) / len(prompts), 4),
        "per_set": per_set,
    }
    emit(result, args.out)


def emit(result: dict, out: Path | None) -> None:
    """Print a bench result and, with ``out``, write it there (atomically)."""
    print(json.dumps(result, indent=2))
    if out:
        write_json(out, result)


if __name__ == "__main__":
    main()
