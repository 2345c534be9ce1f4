"""``spillover study --dry-run``: the planned stages, their prompt and token counts, and a time estimate.

Counts come from the real prompt suite, built in memory (nothing is written). Token counts are
estimates: prompt tokens ~ characters / 4, every response is counted at ``max_new_tokens`` (an
upper bound), the forget set is assumed to hold ``FORGET_FRACTION`` of the target prompts (the
paper kept 620-700 of 1,400 cyber prompts, about half) and the finetune set all of them (the label
model's refusals, dropped, are unknown) since their true sizes are known only after collection.
Seconds come from throughputs measured on real hardware: ``throughput.json`` beside this file
copies each rate from a committed benchmark file under ``bench/results/`` (a test checks them).
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ..domains import DOMAINS
from ..training.trainer import total_steps

FORGET_FRACTION = 0.5
PROFILE = json.loads((Path(__file__).with_name("throughput.json")).read_text())
WIDTH = 80


@dataclass
class StagePlan:
    """One stage (``runs`` identical runs): prompts generated, tokens decoded, trained on, only read."""

    name: str
    prompts: int = 0
    new_tokens: int = 0
    train_tokens: int = 0
    forward_tokens: int = 0
    note: str = ""
    train_rate: str = "train_lora"
    decode_rate: str = "decode_hf"
    runs: int = 1

    def seconds(self) -> float:
        """Seconds for all ``runs`` runs at the profile's rates."""
        rates = PROFILE["rates"]
        one = (self.new_tokens / rates[self.decode_rate]["tokens_per_s"]
               + self.train_tokens / rates[self.train_rate]["tokens_per_s"]
               + self.forward_tokens / rates["forward"]["tokens_per_s"])
        return self.runs * one


def _tokens(records) -> int:
    return sum(len(r.prompt) for r in records) // 4


def train_rate(tc) -> str:
    """The throughput.json rate that matches a training config (LoRA or full, dtype, checkpointing)."""
    kind = "full" if tc.full else ("lora_bf16" if tc.lora.dtype == "model" else "lora")
    return f"train_{kind}{'_gc' if tc.gradient_checkpointing else ''}"


def plan(study) -> list[StagePlan]:
    """Plan every stage of ``study``, whose ``suite`` is loaded (see ``Study.preview``)."""
    cfg, suite = study.cfg, study.suite
    decode = "decode_static" if cfg.models.backend == "static" else "decode_hf"

    def generation(name: str, records: list, max_new: int, note: str = "") -> StagePlan:
        return StagePlan(name, len(records), len(records) * max_new, 0, _tokens(records), note, decode_rate=decode)

    ev = study.eval_records()
    flat = [r for recs in ev.values() for r in recs]
    mmlu_eval, mmlu_sel = study.mmlu_records()
    max_new = cfg.evaluation.decoding.max_new_tokens
    evaluation = generation("baseline", flat, max_new)
    evaluation.forward_tokens += _tokens(mmlu_eval)
    stages = [evaluation]
    c = cfg.collect
    for t in cfg.targets:
        train = suite.get(t.value, "train")
        n_val = min(c.validation_n, len(train) // 2)
        pool = train[:len(train) - n_val][:c.n_target_train]
        collect = generation(f"collect/{t.value}", pool, c.decoding.max_new_tokens)
        n_forget = int(FORGET_FRACTION * len(pool))
        variants = cfg.variants_for(t.value)
        if any(v.startswith("aug_") for v in variants):
            others = [r for d in DOMAINS if d != t for r in suite.get(d.value, "train")[:c.n_other_train]]
            extra = generation("", others, c.decoding.max_new_tokens)
            collect.prompts += extra.prompts
            collect.new_tokens += extra.new_tokens + c.retain_ratio * n_forget * c.decoding.max_new_tokens
        if any(v in ("finetune", "aug_finetune") for v in variants):
            collect.note = f"+ label model on {len(pool):,} prompts (not timed)"
        stages.append(collect)
        seq = (_tokens(pool) // max(1, len(pool))) + c.decoding.max_new_tokens
        for v in variants:
            tc = cfg.training_for(v, cfg.seeds[0], t.value)
            n_main = len(pool) if tc.method == "ce" else n_forget
            steps = total_steps(tc, n_main)
            per_step = tc.grad_accum * (tc.batch_size + (tc.retain_batch_size if tc.w2 > 0 else 0))
            n_ckpt = math.ceil(steps / tc.save_every)
            diag = cfg.selection.kl_prompts * len(ev) * seq + _tokens(mmlu_sel)
            rate = train_rate(tc)
            shape = "full" if tc.full else f"LoRA r {tc.lora.r}"
            caveat = "" if not tc.full or tc.full_dtype == "model" else f"; {tc.full_dtype} weights: bf16 rate"
            stages.append(StagePlan(
                f"train/{t.value}/{v}", n_val * n_ckpt, n_val * n_ckpt * max_new,
                int(steps * per_step * min(seq, tc.max_length)), diag * (n_ckpt + 1),
                f"{steps} steps on {n_main:,} examples, {shape}, {n_ckpt} checkpoints ({rate}{caveat})",
                rate, decode, len(cfg.seeds)))
            ev_stage = generation(f"eval/{t.value}/{v}", flat, max_new)
            ev_stage.forward_tokens += _tokens(mmlu_eval)
            ev_stage.runs = len(cfg.seeds)
            stages.append(ev_stage)
    if cfg.concepts.enabled:
        recs = [r for d in DOMAINS for r in (suite.get(d.value, "train") + suite.get(d.value, "test"))[:cfg.concepts.n_per_domain]]
        recs += suite.get("benign", "train")[:cfg.concepts.n_per_domain]
        stages.append(StagePlan("concepts", 0, 0, 0, _tokens(recs), f"{len(recs)} prompts, hidden states"))
    return stages


def _n(x: int) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e4 else f"{x:,}"


def _time(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _se(n: int, item: str) -> str:
    """What one item weighs and the largest standard error (p = 0.5) of a percentage over n items."""
    weight = 100 / n
    return f"1 {item} = {weight:.2g} point{'' if weight == 1 else 's'}, SE <= {50 / math.sqrt(n):.1f} points"


def format_plan(study) -> list[str]:
    """The plan as lines of at most WIDTH characters."""
    cfg = study.cfg
    stages = plan(study)
    mmlu_eval, mmlu_sel = study.mmlu_records()
    row = "{:<32} {:>4} {:>7} {:>7} {:>7} {:>7} {:>9}"
    lines = [f"study {cfg.name}: planned stages (estimates; see spillover.study.plan)",
             f"MMLU evaluation slice: {len(mmlu_eval):,} questions",
             f"MMLU selection slice: {len(mmlu_sel):,} questions ({_se(len(mmlu_sel), 'question')})",
             f"validation slice: {cfg.collect.validation_n} prompts per target "
             f"({_se(cfg.collect.validation_n, 'prompt')})",
             "", row.format("stage", "runs", "prompts", "new tok", "trained", "read", "time"),
             "-" * WIDTH]
    for s in stages:
        lines.append(row.format(s.name[:32], s.runs, _n(s.prompts * s.runs), _n(s.new_tokens * s.runs),
                                _n(s.train_tokens * s.runs), _n(s.forward_tokens * s.runs), _time(s.seconds())))
        if s.note:
            lines.append(f"  {s.note}")
    lines += ["-" * WIDTH, row.format("total", "", "", "", "", "", _time(sum(s.seconds() for s in stages))), "",
              f"time: {PROFILE['description']}; rates (tokens/s) from bench/results/:"]
    rates = [f"{name} {r['tokens_per_s']:,.0f}".ljust(25) for name, r in PROFILE["rates"].items()]
    lines += ["  " + "".join(rates[i:i + 3]).rstrip() for i in range(0, len(rates), 3)]
    lines += [f"  {name}: {r['note']}" for name, r in PROFILE["rates"].items() if "note" in r]
    lines.append("not timed: label model answers, judge calls; responses counted at max_new_tokens")
    return [part for line in lines
            for part in (textwrap.wrap(line, WIDTH, subsequent_indent="    ") if len(line) > WIDTH else [line])]
