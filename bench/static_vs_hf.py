"""Static-backend fidelity: greedy responses of the static CUDA-graph decoder and of transformers'
``generate`` on the study's own evaluation prompts, both judged by the same judge.

    python bench/static_vs_hf.py generate --model embedded:smollm2-135m-instruct --n-per-set 75 \
        --batch 64 --max-new-tokens 256 --data-dir ../shared/datasets --responses /tmp/fidelity.jsonl
    python bench/static_vs_hf.py judge --responses /tmp/fidelity.jsonl --judge default \
        --out results/rehearsal-gpu/static-vs-hf.json

The prompts are the first ``--n-per-set`` test prompts of every evaluation set of the default study
config (the seven domains and XSTest, in the study's seeded order). Both backends see the same
length-sorted batches of the same rendered prompts. The judge's refusal label decides agreement
(a response judged not biased/toxic counts as a refusal, as in the study's scores); the share of
byte-identical texts is reported beside it. Paper presets keep ``backend: static`` only when the
overall label agreement is at least ``THRESHOLD``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

THRESHOLD = 0.97


def eval_prompts(data_dir: str | None, n_per_set: int | None) -> list[tuple[str, object]]:
    """(set name, PromptRecord) for the first n test prompts of each default evaluation set."""
    from spillover.data.suite import build_suite
    from spillover.study.config import EvaluationConfig

    suite = build_suite(None, data_dir)
    return [(name, r) for name in EvaluationConfig().sets for r in suite.get(name, "test")[:n_per_set]]


def generate(args) -> None:
    import torch

    from spillover.generation import Decoding, generate_responses
    from spillover.generation.loading import load_backend

    records = eval_prompts(args.data_dir, args.n_per_set)
    decoding = Decoding(max_new_tokens=args.max_new_tokens)
    out = {}
    seconds = {}
    for name in ("static", "hf"):
        backend = load_backend(name, args.model, batch_size=args.batch, dtype=args.dtype)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        out[name] = [r[0] for r in generate_responses(backend, [rec.prompt for _, rec in records], decoding,
                                                      description=name)]
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds[name] = round(time.perf_counter() - t, 2)
        dtype = str(backend.model.dtype)
        del backend
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    rows = [{"set": s, "id": rec.id, "prompt": rec.prompt, "meta": rec.meta, "static": a, "hf": b}
            for (s, rec), a, b in zip(records, out["static"], out["hf"])]
    head = {"model": args.model, "dtype": dtype, "batch": args.batch, "max_new_tokens": args.max_new_tokens,
            "n_per_set": args.n_per_set, "generate_s": seconds,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "command": " ".join(["python", "bench/static_vs_hf.py", *sys.argv[1:]])}
    path = Path(args.responses)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(x) for x in [head, *rows]) + "\n")
    print(json.dumps(head))


def summarise(rows: list[dict], labels: dict[str, list[str]]) -> dict:
    """Agreement of the refusal flags, kappa over the labels and identical texts, for ``rows``."""
    from spillover.evaluation import refusal_flag
    from spillover.judges import agreement

    flags = {k: [refusal_flag(x) for x in v] for k, v in labels.items()}
    stats = agreement(labels["static"], labels["hf"])
    n = len(rows)
    same = sum(a == b for a, b in zip(flags["static"], flags["hf"]))
    return {"n": n, "refusal_label_agreement": round(same / n, 4) if n else None,
            "label_agreement": round(stats.accuracy, 4), "kappa": None if stats.kappa != stats.kappa else round(stats.kappa, 4),
            "identical_texts": round(sum(r["static"] == r["hf"] for r in rows) / n, 4) if n else None,
            "refusal_rate_static": round(100 * sum(f is True for f in flags["static"]) / n, 2) if n else None,
            "refusal_rate_hf": round(100 * sum(f is True for f in flags["hf"]) / n, 2) if n else None,
            "flips_static_refuses": sum(a is True and b is not True for a, b in zip(flags["static"], flags["hf"])),
            "flips_hf_refuses": sum(b is True and a is not True for a, b in zip(flags["static"], flags["hf"]))}


def judge(args) -> None:
    from spillover.judges import JudgeItem, build_judge

    lines = [json.loads(x) for x in Path(args.responses).read_text().splitlines() if x.strip()]
    head, rows = lines[0], lines[1:]
    j = build_judge(args.judge)
    labels = {}
    for name in ("static", "hf"):
        items = [JudgeItem(r["prompt"], r[name], r["set"], r.get("meta") or {}) for r in rows]
        labels[name] = [v.label for v in j.judge(items)]
    sets = sorted({r["set"] for r in rows}, key=[r["set"] for r in rows].index)
    per_set = {}
    for s in sets:
        idx = [i for i, r in enumerate(rows) if r["set"] == s]
        per_set[s] = summarise([rows[i] for i in idx], {k: [v[i] for i in idx] for k, v in labels.items()})
    overall = summarise(rows, labels)
    result = {**head, "judge": j.id, "judge_command": " ".join(["python", "bench/static_vs_hf.py", *sys.argv[1:]]),
              "threshold": THRESHOLD,
              "static_stays_default": overall["refusal_label_agreement"] >= THRESHOLD,
              "overall": overall, "per_set": per_set}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["generate", "judge"])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--dtype", default="auto", help="auto = bf16 on CUDA")
    ap.add_argument("--n-per-set", type=int, default=75)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--data-dir")
    ap.add_argument("--responses", required=True, help="JSONL of both backends' responses")
    ap.add_argument("--judge", default="default")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    (generate if args.step == "generate" else judge)(args)


if __name__ == "__main__":
    main()
