"""``spillover study --dry-run``: the planned stages, their prompt and token counts, and a time estimate.

Counts come from the real prompt suite. Token counts are estimates: prompt tokens ~ characters / 4,
every response is counted at ``max_new_tokens`` (an upper bound), and the forget set is assumed
to hold ``forget_fraction`` of the target prompts (the paper kept 620-700 of 1,400 cyber prompts,
about half) since its true size is known only after collection. Seconds come from throughputs
measured on real hardware (``throughput.json`` beside this file, each entry naming its source).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from ..domains import DOMAINS
from ..progress import console
from ..training.trainer import total_steps
from .names import run_name

FORGET_FRACTION = 0.5
PROFILES = json.loads((Path(__file__).with_name("throughput.json")).read_text())


@dataclass
class StagePlan:
    """One stage: prompts generated, tokens decoded, tokens trained on, tokens only read (forward)."""

    name: str
    prompts: int = 0
    new_tokens: int = 0
    train_tokens: int = 0
    forward_tokens: int = 0
    note: str = ""

    def seconds(self, profile: dict) -> float:
        return (self.new_tokens / profile["decode_tokens_per_s"]
                + self.train_tokens / profile[f"train_tokens_per_s_{'full' if 'full' in self.note else 'lora'}"]
                + self.forward_tokens / profile["forward_tokens_per_s"])


def _tokens(records) -> int:
    return sum(len(r.prompt) for r in records) // 4


def _generation(name: str, records: list, max_new: int, note: str = "") -> StagePlan:
    return StagePlan(name, len(records), len(records) * max_new, 0, _tokens(records), note)


def plan(study) -> list[StagePlan]:
    """Plan every stage of ``study`` (builds the data stage if needed)."""
    cfg = study.cfg
    study.data()
    suite = study.suite
    ev = study.eval_records()
    flat = [r for recs in ev.values() for r in recs]
    mmlu_eval, mmlu_sel = study.mmlu_records()
    max_new = cfg.evaluation.decoding.max_new_tokens
    evaluation = _generation("baseline", flat, max_new)
    evaluation.forward_tokens += _tokens(mmlu_eval)
    stages = [evaluation]
    for t in cfg.targets:
        c = cfg.collect
        train = suite.get(t.value, "train")
        pool = train[:len(train) - min(c.validation_n, len(train) // 2)][:c.n_target_train]
        collect = _generation(f"collect/{t.value}", pool, c.decoding.max_new_tokens)
        n_forget = int(FORGET_FRACTION * len(pool))
        if any(v.startswith("aug_") for v in cfg.variants):
            others = [r for d in DOMAINS if d != t for r in suite.get(d.value, "train")[:c.n_other_train]]
            extra = _generation("", others, c.decoding.max_new_tokens)
            collect.prompts += extra.prompts
            collect.new_tokens += extra.new_tokens + c.retain_ratio * n_forget * c.decoding.max_new_tokens
        if any(v in ("finetune", "aug_finetune") for v in cfg.variants):
            collect.prompts += len(pool)
            collect.note = "+ label model answers (not timed)"
        stages.append(collect)
        seq = (_tokens(pool) // max(1, len(pool))) + c.decoding.max_new_tokens
        for v in cfg.variants:
            for s in cfg.seeds:
                tc = cfg.training_for(v, s, t.value)
                steps = total_steps(tc, n_forget)
                per_step = tc.batch_size * tc.grad_accum * (1 + (tc.retain_ratio if tc.w2 > 0 else 0))
                n_ckpt = max(1, steps // tc.save_every)
                diag = cfg.selection.kl_prompts * len(ev) * seq + _tokens(mmlu_sel)
                stages.append(StagePlan(
                    f"train/{run_name(t.value, v, s)}", cfg.collect.validation_n * n_ckpt,
                    cfg.collect.validation_n * n_ckpt * max_new, int(steps * per_step * min(seq, tc.max_length)),
                    diag * (n_ckpt + 1), f"{steps} steps, {'full' if tc.full else f'lora r={tc.lora.r}'}"))
                stages.append(_generation(f"eval/{run_name(t.value, v, s)}", flat, max_new))
                stages[-1].forward_tokens += _tokens(mmlu_eval)
    if cfg.concepts.enabled:
        recs = [r for d in DOMAINS for r in (suite.get(d.value, "train") + suite.get(d.value, "test"))[:cfg.concepts.n_per_domain]]
        recs += suite.get("benign", "train")[:cfg.concepts.n_per_domain]
        stages.append(StagePlan("concepts", 0, 0, 0, _tokens(recs), f"{len(recs)} prompts, hidden states"))
    return stages


def print_plan(study) -> list[StagePlan]:
    stages = plan(study)
    table = Table(title=f"study {study.cfg.name}: planned stages (estimates; see spillover.study.plan)")
    for col in ("stage", "prompts", "new tokens", "train tokens", "forward tokens",
                *(f"~{name}" for name in PROFILES), "note"):
        table.add_column(col)
    totals = dict.fromkeys(PROFILES, 0.0)
    for s in stages:
        secs = {name: s.seconds(p) for name, p in PROFILES.items()}
        for name in totals:
            totals[name] += secs[name]
        table.add_row(s.name, str(s.prompts), f"{s.new_tokens:,}", f"{s.train_tokens:,}",
                      f"{s.forward_tokens:,}", *(_fmt(secs[n]) for n in PROFILES), s.note)
    table.add_row("total", "", "", "", "", *(_fmt(totals[n]) for n in PROFILES), "")
    console.print(table)
    for name, p in PROFILES.items():
        console.print(f"[dim]{name}: {p['description']} (source: {p['source']})[/dim]")
    return stages


def _fmt(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
