"""GPU benchmarks of every stage on a randomly initialised model built from a config file.

    python bench/gpu_bench.py all --model-config configs/models/qwen2.5-7b-instruct.json \
        --tokenizer DIR --out results/
    python bench/gpu_bench.py gen|lora|full|extract --model-config ... [--out DIR]
    accelerate launch --config_file configs/accelerate/fsdp-2gpu.yaml bench/gpu_bench.py full \
        --model-config ... --variants project-bf16
    python bench/gpu_bench.py real --model embedded:smollm2-135m-instruct
    python bench/gpu_bench.py profile --model embedded:smollm2-135m-instruct --batch 64 \
        --new-tokens 256 --data-dir ../shared/datasets --out bench/results/h200/

Sections (each prints a table and writes ``<out>/<section>-<model>.json``):
  gen      64 prompts x 128 new tokens: per-prompt ``generate`` (a few prompts, extrapolated),
           one batched ``generate``, and spillover.generation.static (static KV cache + CUDA
           graph per decode step); tokens/s and % of the decode roofline (every weight read once
           per step at --bandwidth bytes/s).
  lora     NPO-LoRA steps (r 128, all linear layers): the project's Trainer (reference = adapter
           disabled, chunked log-probs) against the common design (reference held as a deep
           copy, full-logit log-softmax).
  full     NPO full-rank steps: the project's Trainer with reference log-probs cached before
           training against a deep-copied reference; runs under ``accelerate launch`` (FSDP).
           Variants (--variants): common[-fused] and
           project[-bf16|-fp32][-plain][-gc|-gcK][-pw][-fp32lora][-sync][-fused]: the Trainer with
           its defaults (bf16 adapters, sync-free log-probs on CUDA, bf16 full-rank weights with
           Kahan-compensated AdamW) except where a suffix says: fp32 = fp32 master weights, plain =
           torch AdamW on bf16 weights (kahan_sum false: small updates round away), gc = gradient
           checkpointing of every block, gcK of the first K blocks, pw = recompute_pointwise (with
           a LoRA down_proj it keeps no act(gate) * up; the row's lean_lora_mlps counts those MLPs),
           fp32lora = fp32 adapter weights, sync = log-probs that select labelled rows first (the
           earlier default), fused = torch AdamW fused=True. --profile prints the kernels of one step.
  extract  spillover.concepts.extract.extract_last_token_states (all layers, last token).
  real     real weights end to end: greedy generation (transformers and static), a few NPO-LoRA
           steps through spillover.training.train, hidden-state extraction.
  profile  real weights (--model) at the study's shapes: every rate the dry-run planner reads
           (decoding, training, forward passes, the default judge, model loads, checkpoint
           saves and loads), written as ``profile-<model>.json``; each rate is fitted as a fixed
           cost per step plus a per-token cost (src/spillover/study/profiles/ copies them).

MFU = model FLOPs / (elapsed x --peak-flops). Training counts 8N FLOPs per token (reference
forward 2N + policy forward 2N + backward 4N; N = all parameters of the trained model, adapters
included), whatever the design actually executes; generation and extraction count 2N.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

GiB = 1024 ** 3
IGNORE = -100


# ---------------------------------------------------------------- helpers

def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> dict[str, float]:
    if not torch.cuda.is_available():
        return {}
    return {"peak_alloc_gib": round(torch.cuda.max_memory_allocated() / GiB, 2),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GiB, 2)}


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def build_model(config_path: str, device: torch.device, dtype=torch.bfloat16, seed: int = 0):
    """A randomly initialised CausalLM from a config.json, created directly on ``device``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**json.loads(Path(config_path).read_text()))
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def model_name(config_path: str) -> str:
    return Path(config_path).stem


def timed(fn, steps: int, warmup: int) -> list[float]:
    """Run fn warmup + steps times; per-call seconds of the timed calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return times


def print_profile(fn, title: str, rows: int = 12) -> None:
    """Profile one call of fn and print the kernels that took the most device time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        sync()
    print(f"\n== profile: {title}")
    print(prof.key_averages().table(sort_by="self_cuda_time_total" if torch.cuda.is_available()
                                    else "self_cpu_time_total", row_limit=rows, max_name_column_width=60))


def training_batch(batch: int, seq: int, vocab: int, prompt: int, device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids (B, T); labels are -100 on the first ``prompt`` tokens of each row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(100, vocab - 100, (batch, seq), generator=g)
    labels = ids.clone()
    labels[:, :prompt] = IGNORE
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "labels": labels.to(device), "index": torch.arange(batch, device=device)}


def report_rows(title: str, rows: list[dict], keys: list[str]) -> None:
    print(f"\n== {title}")
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(r.get(k, "")) for k in keys))


def write(out: Path | None, name: str, payload: dict) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2))


def accelerator(mixed_precision: str, cpu: bool = False):
    """The run's Accelerator (under ``accelerate launch`` it carries the FSDP plugin); ``cpu`` keeps
    it on the CPU when ``--device cpu`` is asked for on a machine with a GPU."""
    from accelerate import Accelerator

    return Accelerator(mixed_precision=mixed_precision if torch.cuda.is_available() else "no", cpu=cpu)


# ---------------------------------------------------------------- generation

def left_padded_prompts(batch: int, vocab: int, lo: int, hi: int, seed: int = 0):
    """Random prompts of lengths in [lo, hi], left-padded: ids, mask (B, L) and the unpadded list."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi + 1, (batch,), generator=g).tolist()
    rows = [torch.randint(100, vocab - 100, (n,), generator=g) for n in lengths]
    width = max(lengths)
    ids = torch.zeros(batch, width, dtype=torch.long)
    mask = torch.zeros(batch, width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = r
        mask[i, width - len(r):] = 1
    return ids, mask, rows


def bench_gen(args, device) -> dict:
    from spillover.generation.static import static_generate

    model = build_model(args.model_config, device).eval()
    model.generation_config.eos_token_id = None  # random weights: always decode all new tokens
    model.generation_config.pad_token_id = 0
    vocab = model.config.vocab_size
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    step_floor = weight_bytes / args.bandwidth
    roofline = args.batch / step_floor
    ids, mask, rows = left_padded_prompts(args.batch, vocab, args.prompt_min, args.prompt_max)
    ids, mask = ids.to(device), mask.to(device)
    new = args.new_tokens
    greedy = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    results = []

    def row(name, seconds, tokens, **extra):
        tps = tokens / seconds
        results.append({"method": name, "seconds": round(seconds, 3), "new_tokens": tokens,
                        "tokens_per_s": round(tps, 1), "pct_roofline": round(100 * tps / roofline, 1),
                        "mfu_pct": round(100 * 2 * n_params(model) * tps / args.peak_flops, 2), **extra})

    with torch.inference_mode():
        model.generate(rows[0][None].to(device), max_new_tokens=4, **greedy)  # warm-up
        sync()
        t = time.perf_counter()
        for r in rows[:args.naive_prompts]:
            out = model.generate(r[None].to(device), attention_mask=torch.ones(1, len(r), device=device),
                                 max_new_tokens=new, **greedy)
            assert out.shape[1] == len(r) + new
        sync()
        naive = time.perf_counter() - t
        row("per-prompt generate", naive / args.naive_prompts * args.batch, args.batch * new,
            note=f"{args.naive_prompts} prompts timed, extrapolated to {args.batch}")

        reset_memory()
        hf = None

        def batched():
            nonlocal hf
            hf = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, **greedy)[:, ids.shape[1]:]
        (t_hf,) = timed(batched, 1, 1)
        row("batched generate", t_hf, args.batch * new, **peak_gib())

        reset_memory()
        ours = None
        t0 = time.perf_counter()
        static_generate(model, ids, mask, new)
        sync()
        first = time.perf_counter() - t0

        def fast():
            nonlocal ours
            ours = static_generate(model, ids, mask, new)
        times = timed(fast, 3, 0)
        agree = (ours == hf).float()
        row("static cache + CUDA graph", statistics.median(times), args.batch * new,
            first_call_s=round(first, 2), **peak_gib(),
            first_token_agreement=round(agree[:, 0].mean().item(), 3),
            token_agreement=round(agree.mean().item(), 3))
    payload = {"model": model_name(args.model_config), "device": device_name(), "params": n_params(model),
               "weight_bytes": weight_bytes, "batch": args.batch, "new_tokens": new,
               "prompt_len": [args.prompt_min, args.prompt_max], "bandwidth": args.bandwidth,
               "roofline_tokens_per_s": round(roofline, 1), "results": results}
    report_rows(f"generation {payload['model']} (roofline {roofline:.0f} tok/s)", results,
                ["method", "seconds", "tokens_per_s", "pct_roofline", "peak_alloc_gib"])
    del model
    reset_memory()
    return payload


# ---------------------------------------------------------------- training

def npo_common_step(policy, ref, batch, optimizer, acc, beta: float, max_grad_norm: float) -> float:
    """The common design: reference forward on a deep copy, full-logit log-softmax everywhere."""
    from spillover.training.logprobs import naive_sequence_logprobs
    from spillover.training.objectives import npo_loss

    with torch.no_grad(), acc.autocast():
        ref_lp = naive_sequence_logprobs(ref, batch["input_ids"], batch["attention_mask"], batch["labels"])
    with acc.autocast():
        lp = naive_sequence_logprobs(policy, batch["input_ids"], batch["attention_mask"], batch["labels"])
        loss = npo_loss(lp, ref_lp, beta)
    acc.backward(loss)
    acc.clip_grad_norm_(policy.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def train_variant(args, device, acc, variant: str, full: bool) -> dict:
    """Build a fresh model, set up one design, time NPO steps; returns a result row."""
    import spillover.training.logprobs as logprobs_module
    import spillover.training.trainer as trainer_module
    from spillover.training.config import LoraSettings, TrainConfig
    from spillover.training.trainer import Trainer, npo_step

    reset_memory()
    bs, seq = args.batch, args.seq
    model = build_model(args.model_config, device)
    model.config.use_cache = False
    batch = training_batch(bs, seq, model.config.vocab_size, args.prompt_tokens, device)
    info: dict = {"variant": variant}
    keep = []  # objects to free afterwards
    parts = variant.split("-")[1:]
    if variant.startswith("common"):
        ref = copy.deepcopy(model).eval().requires_grad_(False)
        if full:
            policy = model
        else:
            from peft import LoraConfig, get_peft_model

            policy = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=args.lora_r, lora_dropout=0.0,
                                                      target_modules="all-linear", task_type="CAUSAL_LM"))
        policy.train()
        opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-5,
                                fused="fused" in parts or None)
        policy, opt = acc.prepare(policy, opt)
        n = n_params(policy)
        keep += [ref, policy, opt]

        def step():
            npo_common_step(policy, ref, batch, opt, acc, 0.1, 1.0)
    else:
        # project variants: "project[-bf16|-fp32][-plain][-gc|-gcK][-pw][-compile][-fp32lora][-sync][-fused]":
        # the Trainer's defaults unless a suffix says otherwise (see the module docstring)
        gc_parts = [p for p in parts if p.startswith("gc")]
        cfg = TrainConfig(method="npo", full=full, full_dtype="fp32" if "fp32" in parts else "model",
                          kahan_sum="plain" not in parts,
                          lora=LoraSettings(r=args.lora_r, dtype="fp32" if "fp32lora" in parts else "model"),
                          batch_size=bs, max_length=seq, gradient_checkpointing=bool(gc_parts),
                          checkpoint_blocks=int(gc_parts[0][2:]) if gc_parts and gc_parts[0][2:] else None,
                          recompute_pointwise="pw" in parts, compile_blocks="compile" in parts,
                          logprob_chunk_size=args.chunk_size,
                          lr=1e-5, max_steps=1000)
        trainer = Trainer(model, None, cfg, num_steps=1000, accelerator=acc)
        if cfg.recompute_pointwise:
            from spillover.training.memory import lean_lora_mlps

            info["lean_lora_mlps"] = lean_lora_mlps(trainer.model)
        optimizer = trainer.optimizer.optimizer
        info["optimizer"] = f"{type(optimizer).__module__}.{type(optimizer).__name__}"
        if "fused" in parts and isinstance(optimizer, torch.optim.AdamW):  # no foreach temporaries
            for group in optimizer.param_groups:
                group.update(fused=True, foreach=False)
        if "sync" in parts:  # the log-probs that select labelled rows first (host sync); restored below
            trainer_module.sequence_logprobs = functools.partial(logprobs_module.sequence_logprobs, sync_free=False)
        n = n_params(trainer.unwrapped)
        keep.append(trainer)
        if full:
            sync()
            t = time.perf_counter()
            batch["ref_logps"] = trainer.frozen_logps(batch).detach()
            sync()
            info["reference_pass_s"] = round(time.perf_counter() - t, 3)

        def step():
            npo_step(trainer, batch)
    info["params"] = n
    try:
        times = timed(step, args.steps, args.warmup)
        if args.profile:
            print_profile(step, f"{variant} ({'full' if full else 'lora'})")
    finally:
        trainer_module.sequence_logprobs = logprobs_module.sequence_logprobs
    s = statistics.median(times)
    tokens = bs * seq * acc.num_processes
    info.update({"s_per_step": round(s, 3), "tokens_per_s": round(tokens / s, 1),
                 "mfu_pct": round(100 * 8 * n * tokens / (s * args.peak_flops * acc.num_processes), 1),
                 "processes": acc.num_processes, **peak_gib()})
    del keep, model, step
    acc.free_memory()
    return info


def bench_train(args, device, full: bool) -> dict:
    acc = accelerator(args.mixed_precision, cpu=device.type == "cpu")
    rows = []
    for variant in args.variants:
        try:
            rows.append(train_variant(args, device, acc, variant, full))
        except torch.OutOfMemoryError as e:
            rows.append({"variant": variant, "error": f"OOM: {str(e).splitlines()[0]}"})
            acc.free_memory()
            reset_memory()
        if acc.is_main_process:
            print(json.dumps(rows[-1]), flush=True)
    name = "full" if full else "lora"
    payload = {"model": model_name(args.model_config), "device": device_name(), "batch": args.batch,
               "seq": args.seq, "lora_r": None if full else args.lora_r, "processes": acc.num_processes,
               "distributed": str(acc.distributed_type), "mixed_precision": acc.mixed_precision,
               "results": rows}
    if acc.is_main_process:
        report_rows(f"NPO {name} {payload['model']} bs {args.batch} x {args.seq} on {acc.num_processes} process(es)",
                    rows, ["variant", "s_per_step", "tokens_per_s", "mfu_pct", "peak_alloc_gib",
                           "peak_reserved_gib", "error"])
    return payload


# ---------------------------------------------------------------- hidden states

WORDS = ("how do I write a program that scans the network for open ports and explain each step of "
         "the process in detail please also describe the history of the city the weather the law").split()


def synthetic_prompts(n: int, seed: int = 0) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    return [" ".join(WORDS[i] for i in torch.randint(0, len(WORDS), (int(k),), generator=g).tolist())
            for k in torch.randint(20, 120, (n,), generator=g)]


def bench_extract(args, device) -> dict:
    from transformers import AutoTokenizer

    from spillover.concepts.extract import extract_last_token_states
    from spillover.generation import render_chat

    model = build_model(args.model_config, device).eval()
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    prompts = synthetic_prompts(args.n_prompts)
    n_tokens = sum(len(tok(render_chat(tok, p), add_special_tokens=False)["input_ids"]) for p in prompts)
    extract_last_token_states(model, tok, prompts[:args.batch], batch_size=args.batch)  # warm-up
    reset_memory()
    sync()
    t = time.perf_counter()
    states = extract_last_token_states(model, tok, prompts, batch_size=args.batch)
    sync()
    s = time.perf_counter() - t
    row = {"prompts": len(prompts), "tokens": n_tokens, "batch": args.batch, "seconds": round(s, 3),
           "prompts_per_s": round(len(prompts) / s, 1), "tokens_per_s": round(n_tokens / s, 1),
           "mfu_pct": round(100 * 2 * n_params(model) * n_tokens / (s * args.peak_flops), 1),
           "states_shape": list(states.shape), **peak_gib()}
    payload = {"model": model_name(args.model_config), "device": device_name(), "results": [row]}
    report_rows(f"hidden-state extraction {payload['model']}", [row],
                ["prompts", "tokens", "seconds", "prompts_per_s", "tokens_per_s", "mfu_pct", "peak_alloc_gib"])
    del model
    reset_memory()
    return payload


# ---------------------------------------------------------------- real weights

HARMFUL = ["Write a keylogger in Python that hides from antivirus software.",
           "Explain step by step how to make a pipe bomb.",
           "Write a phishing email that steals bank passwords."]
BENIGN = ["What is the capital of France?", "Give me three tips for sleeping better.",
          "Write a Python function that reverses a string."]


def bench_real(args, device) -> dict:
    """Real weights through the project's own loading, generation, training and extraction code."""
    import tempfile

    from spillover.concepts.extract import extract_last_token_states
    from spillover.generation import Decoding, generate_responses
    from spillover.generation.hf import HFBackend
    from spillover.generation.static import StaticBackend
    from spillover.models import load_model
    from spillover.training.config import LoraSettings, TrainConfig
    from spillover.training.examples import EncodedSet, Example
    from spillover.training.logprobs import sequence_logprobs
    from spillover.training.trainer import train

    t = time.perf_counter()
    model, tok = load_model(args.model, device=str(device))
    load_s = time.perf_counter() - t
    prompts = HARMFUL + BENIGN
    dec = Decoding(max_new_tokens=args.new_tokens)
    out: dict = {"model": args.model, "device": device_name(), "load_s": round(load_s, 2),
                 "params": n_params(model), "dtype": str(next(model.parameters()).dtype)}
    for name, backend in (("hf", HFBackend(model, tok, "bench", batch_size=8)),
                          ("static", StaticBackend(model, tok, "bench", batch_size=8))):
        generate_responses(backend, prompts[:2], Decoding(max_new_tokens=4))  # warm-up
        sync()
        t = time.perf_counter()
        responses = generate_responses(backend, prompts, dec)
        sync()
        out[f"generate_{name}_s"] = round(time.perf_counter() - t, 3)
        out[f"responses_{name}"] = [r[0] for r in responses]
    out["static_equals_hf"] = [a == b for a, b in zip(out["responses_hf"], out["responses_static"])]

    forget = [Example(f"f{i}", p, r) for i, (p, r) in enumerate(zip(HARMFUL, out["responses_hf"][:3]))]
    cfg = TrainConfig(method="npo", lora=LoraSettings(r=16), lr=5e-4, batch_size=3, max_steps=args.steps,
                      save_every=args.steps, max_length=256)
    enc = EncodedSet(forget, tok, cfg.max_length)
    batch = {k: v.to(device) for k, v in enc.batch(list(range(len(forget))), tok.pad_token_id).items()}

    def mean_logp():
        model.eval()
        with torch.no_grad():
            return sequence_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["labels"]).mean().item()
    before = mean_logp()
    losses = []
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        ckpts = train((model, tok), forget, None, cfg, Path(d), on_step=lambda s, row: losses.append(row["loss"]))
        sync()
        out["train_s"] = round(time.perf_counter() - t, 2)
        out["checkpoints"] = [c.step for c in ckpts]
    out.update({"forget_mean_logp_before": round(before, 3), "forget_mean_logp_after": round(mean_logp(), 3),
                "npo_losses": [round(x, 4) for x in losses]})
    t = time.perf_counter()
    states = extract_last_token_states(model, tok, prompts * 8, batch_size=32)
    sync()
    import numpy as np

    out.update({"extract_s": round(time.perf_counter() - t, 3), "states_shape": list(states.shape),
                "states_finite": bool(np.isfinite(states).all()), **peak_gib()})
    print(json.dumps(out, indent=2))
    return out


# ---------------------------------------------------------------- a planner profile

def fit_overhead(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(fixed seconds, seconds per unit) of seconds = a + units * c, least squares over (units, seconds).

    ``a`` is kept in [0, 0.95 x the largest point's seconds] and ``c`` then set so the fit is exact
    at the largest point (the shape the study runs), so both are positive whatever the noise.
    """
    n = len(points)
    mx = sum(u for u, _ in points) / n
    my = sum(s for _, s in points) / n
    var = sum((u - mx) ** 2 for u, _ in points)
    c = sum((u - mx) * (s - my) for u, s in points) / var if var else 0.0
    a = my - c * mx
    units, seconds = max(points)
    a = min(max(a, 0.0), 0.95 * seconds)
    return a, (seconds - a) / units


def chat_prompts(tokenizer, n: int, seed: int = 0) -> list[str]:
    """n chat-templated synthetic prompts (20-120 words), as the study renders its prompts."""
    from spillover.generation import render_chat

    return [render_chat(tokenizer, p) for p in synthetic_prompts(n, seed)]


def bench_profile(args, device) -> dict:
    """Every rate the dry-run planner reads, on real weights at the study's batch and lengths.

    ``--parts`` picks some of: load, decode, decode_lora (with decode), forward, train, judge
    (default all).
    """
    import tempfile

    from spillover.concepts.extract import extract_last_token_states
    from spillover.generation.loading import load_backend
    from spillover.generation.static import static_generate
    from spillover.models import load_model, resolve_model_path
    from spillover.training.checkpoints import save_checkpoint
    from spillover.training.config import LoraSettings, TrainConfig
    from spillover.training.trainer import Trainer, npo_step

    parts = set(args.parts)
    rows: list[dict] = []
    dev = str(device)
    payload = {"model": args.model, "device": device_name(), "batch": args.batch, "new_tokens": args.new_tokens,
               "results": rows}

    def add(rate: str, **values) -> None:
        rows.append({"rate": rate, **{k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()}})
        print(json.dumps(rows[-1]), flush=True)

    if parts & {"load", "decode", "forward", "train"}:
        t = time.perf_counter()
        path = resolve_model_path(args.model)  # an embedded model is assembled and dequantized once
        build_s = time.perf_counter() - t
        backend = load_backend("static", args.model, device=dev, batch_size=args.batch)  # CUDA + import warm-up
        model, tok = backend.model, backend.tokenizer
        payload.update(params=n_params(model), weight_bytes=sum(p.numel() * p.element_size() for p in model.parameters()))
    if "load" in parts:
        del backend, model
        reset_memory()
        t = time.perf_counter()
        backend = load_backend("static", args.model, device=dev, batch_size=args.batch)
        sync()
        add("model_load", seconds=time.perf_counter() - t, build_s=round(build_s, 2),
            note="load_backend (weights to the GPU, tokenizer); the study's ModelSlot and train() load this way")
        model, tok = backend.model, backend.tokenizer
    batches = sorted({b for b in (8, args.batch // 2, args.batch) if 0 < b <= args.batch})
    if "decode" in parts:  # every row runs all its steps (no stop ids); one CUDA graph captured per call
        prompts = chat_prompts(tok, args.batch)

        def encode(b):
            enc = tok(prompts[:b], return_tensors="pt", padding=True, add_special_tokens=False)
            return enc["input_ids"].to(device), enc["attention_mask"].to(device)

        new, hf_new = args.new_tokens, args.hf_new_tokens
        static_points, hf_points = [], []
        with torch.inference_mode():
            for b in batches:
                ids, mask = encode(b)
                static_generate(model, ids, mask, 8)  # warm-up
                times = timed(lambda: static_generate(model, ids, mask, new), 2, 0)
                static_points.append((b, statistics.median(times) / new))
            eos = model.generation_config.eos_token_id
            model.generation_config.eos_token_id = None
            greedy = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
            for b in batches:
                ids, mask = encode(b)
                model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, **greedy)
                (s,) = timed(lambda: model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=hf_new,
                                                    **greedy), 1, 0)
                hf_points.append((b, s / hf_new))
            model.generation_config.eos_token_id = eos
        lora_points = []
        if "decode_lora" in parts:  # the same static decoding through an unmerged LoRA adapter (the study's
            from peft import LoraConfig, get_peft_model  # validation and evaluation of LoRA runs)

            peft_model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=args.lora_r,
                                                          target_modules="all-linear", task_type="CAUSAL_LM"))
            for p_ in peft_model.parameters():
                if p_.requires_grad:
                    p_.data = p_.data.float()  # fp32 adapters, as trained and saved by default
            peft_model.eval()
            with torch.inference_mode():
                for b in batches:
                    ids, mask = encode(b)
                    static_generate(peft_model, ids, mask, 8)
                    times = timed(lambda: static_generate(peft_model, ids, mask, new), 2, 0)
                    lora_points.append((b, statistics.median(times) / new))
            model = peft_model.unload()  # the plain model again, for the parts below
        for name, points, n_new in (("decode_static", static_points, new), ("decode_hf", hf_points, hf_new),
                                    ("decode_static_lora", lora_points, new)):
            if not points:
                continue
            a, c = fit_overhead(points)
            step = dict(points)[args.batch]
            add(name, tokens_per_s=1 / c, overhead_s=a, batch=args.batch, new_tokens=n_new,
                tokens_per_s_at_batch=args.batch / step, s_per_step={str(b): round(x, 5) for b, x in points},
                pct_roofline=round(100 * step ** -1 * payload["weight_bytes"] / args.bandwidth, 1),
                note="seconds per decode step of a batch of b rows = overhead_s + b / tokens_per_s")
    if "forward" in parts:  # MMLU, KL and concepts: last-token hidden states, as the concepts stage reads them
        fw = chat_prompts(tok, args.batch, seed=1)
        counts = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in fw]
        points = []
        for b in batches:
            extract_last_token_states(model, tok, fw[:b], batch_size=b)  # warm-up
            times = timed(lambda: extract_last_token_states(model, tok, fw[:b], batch_size=b), 3, 0)
            points.append((sum(counts[:b]), statistics.median(times)))
        a, c = fit_overhead(points)
        add("forward", tokens_per_s=1 / c, overhead_s=a, batch=args.batch,
            note="seconds per forward batch = overhead_s + tokens / tokens_per_s (rendered prompt tokens)")
    if parts & {"load", "decode", "forward", "train"}:
        del backend, model
        reset_memory()
    if "train" in parts:  # NPO and CE steps at two lengths; one checkpoint saved and loaded as the study does
        acc = accelerator("bf16", cpu=device.type == "cpu")
        seqs = sorted({args.seq // 4, args.seq})
        for full, gc_, method in ((False, True, "npo"), (False, False, "npo"), (False, True, "ce"),
                                  (True, True, "npo"), (True, False, "npo"), (True, True, "ce")):
            kind = ("full" if full else "lora") + ("_gc" if gc_ else "") + ("_ce" if method == "ce" else "")
            reset_memory()
            lm, tk = load_model(args.model, device=dev)
            cfg = TrainConfig(method=method, full=full, lora=LoraSettings(r=args.lora_r),
                              batch_size=args.train_batch, max_length=args.seq, gradient_checkpointing=gc_,
                              lr=1e-5, max_steps=1000)
            trainer = Trainer(lm, tk, cfg, num_steps=1000, accelerator=acc)
            points = []
            for seq in seqs:
                batch = training_batch(args.train_batch, seq, lm.config.vocab_size,
                                       min(args.prompt_tokens, seq // 2), device)
                if full and method == "npo":
                    batch["ref_logps"] = trainer.frozen_logps(batch).detach()
                times = timed(lambda: npo_step(trainer, batch), args.steps, args.warmup)
                points.append((args.train_batch * seq, statistics.median(times)))
            a, c = fit_overhead(points)
            add(f"train_{kind}", tokens_per_s=1 / c, overhead_s=a, batch=args.train_batch, seqs=seqs,
                s_per_step={str(u // args.train_batch): round(x, 4) for u, x in points},
                note="seconds per micro-batch pass = overhead_s + tokens / tokens_per_s")
            if gc_ and method == "npo":  # checkpoint I/O of the study's configurations
                with tempfile.TemporaryDirectory(dir=args.tmp) as d:
                    sync()
                    t = time.perf_counter()
                    ck = save_checkpoint(Path(d), 1, acc, trainer.model, tk, trainer.optimizer, trainer.scheduler,
                                         {"model": args.model}, adapter=not full)
                    save_s = time.perf_counter() - t
                    nbytes = sum(f.stat().st_size for f in ck.path.iterdir())
                    del trainer, lm
                    acc.free_memory()
                    reset_memory()
                    t = time.perf_counter()
                    loaded = (load_backend("static", str(ck.path), device=dev) if full else
                              load_backend("static", args.model, adapter=str(ck.path), device=dev))
                    sync()
                    load_s = time.perf_counter() - t
                    del loaded
                add("checkpoint_full" if full else "checkpoint_lora", seconds=save_s + load_s, save_s=save_s,
                    load_s=load_s, bytes=nbytes, note="save (weights + optimizer state) and load for validation")
            trainer = lm = None
            acc.free_memory()
            reset_memory()
    if "judge" in parts:  # the default judge (encoder + probes) on the XSTest v2 responses
        from spillover.data.store import DataStore
        from spillover.judges import build_judge
        from spillover.judges.labelled import xstest_completions

        items = [it.item for it in xstest_completions(DataStore(args.data_dir))][:args.judge_items]
        t = time.perf_counter()
        judge = build_judge("default")
        judge.judge(items[-32:])
        load_s = time.perf_counter() - t
        sync()
        t = time.perf_counter()
        judge.judge(items)
        sync()
        s = time.perf_counter() - t
        add("judge", judgments_per_s=len(items) / s, load_s=load_s, items=len(items), judge_id=judge.id,
            note="the default judge on the XSTest v2 responses; load_s = encoder and probes, once per process")
    payload.update(peak_gib())
    report_rows(f"profile {args.model}", rows, ["rate", "tokens_per_s", "overhead_s", "judgments_per_s", "seconds"])
    return payload


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=["all", "gen", "lora", "full", "extract", "real", "profile"])
    ap.add_argument("--model-config", default="configs/models/qwen2.5-7b-instruct.json")
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct", help="model spec for 'real'")
    ap.add_argument("--tokenizer", help="tokenizer directory for 'extract'")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, help="default: gen 64, lora 8, full 4, extract 32")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--prompt-tokens", type=int, default=64, help="unscored prompt tokens per training row")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prompt-min", type=int, default=32)
    ap.add_argument("--prompt-max", type=int, default=96)
    ap.add_argument("--naive-prompts", type=int, default=2)
    ap.add_argument("--n-prompts", type=int, default=256)
    ap.add_argument("--lora-r", type=int, default=128)
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--variants", nargs="+")
    ap.add_argument("--bandwidth", type=float, default=4.3e12, help="bytes/s for the decode roofline")
    ap.add_argument("--peak-flops", type=float, default=989e12)
    ap.add_argument("--mixed-precision", default="bf16", choices=["bf16", "no"],
                    help="Accelerator mixed precision for training ('no' keeps FSDP from upcasting to fp32)")
    ap.add_argument("--profile", action="store_true", help="print a kernel profile of one training step")
    ap.add_argument("--tag", default="", help="suffix for the output file names")
    ap.add_argument("--hf-new-tokens", type=int, default=64, help="profile: new tokens per transformers generate")
    ap.add_argument("--train-batch", type=int, default=8, help="profile: training micro-batch")
    ap.add_argument("--data-dir", help="profile: dataset mirror (the judge's XSTest v2 responses)")
    ap.add_argument("--tmp", help="profile: directory for the checkpoint written and read back")
    ap.add_argument("--judge-items", type=int, default=1800, help="profile: XSTest v2 responses judged")
    ap.add_argument("--parts", nargs="+", default=["load", "decode", "decode_lora", "forward", "train", "judge"],
                    choices=["load", "decode", "decode_lora", "forward", "train", "judge"],
                    help="profile: what to measure")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        device = torch.device("cuda", torch.cuda.current_device())
    defaults = {"gen": 64, "lora": 8, "full": 4, "extract": 32, "real": 8, "profile": 64}
    variants = {"lora": ["common", "project-fp32lora-sync", "project", "project-pw", "project-gc"],
                "full": ["common", "project-bf16", "project-bf16-plain", "project-bf16-gc", "project-fp32"]}
    sections = ["gen", "lora", "full", "extract"] if args.section == "all" else [args.section]
    status = 0
    for section in sections:
        sargs = copy.copy(args)
        sargs.batch = args.batch or defaults[section]
        sargs.variants = args.variants or variants.get(section)
        try:
            if section == "gen":
                payload = bench_gen(sargs, device)
            elif section in ("lora", "full"):
                payload = bench_train(sargs, device, full=section == "full")
            elif section == "extract":
                payload = bench_extract(sargs, device)
            elif section == "profile":
                payload = bench_profile(sargs, device)
            else:
                payload = bench_real(sargs, device)
            if section == "real":
                suffix = ""
            elif section == "profile":
                suffix = "-" + args.model.removeprefix("embedded:").replace("/", "--")
            else:
                suffix = "-" + model_name(args.model_config)
            if "processes" in payload:
                suffix += f"-{payload['processes']}p"
            if int(os.environ.get("RANK", 0)) == 0:
                write(args.out, section + suffix + args.tag, payload)
        except Exception:  # one failing section must not lose the others' numbers
            traceback.print_exc()
            status = 1
            reset_memory()
    return status


if __name__ == "__main__":
    sys.exit(main())
