"""``spillover study --dry-run``: the planned stages, their prompt and token counts, and a time estimate.

Counts come from the real prompt suite, built in memory (nothing is written). Token counts are
estimates: prompt tokens ~ characters / 4, every response is counted at ``max_new_tokens`` (an
upper bound), the forget set is assumed to hold ``FORGET_FRACTION`` of the target prompts (the
paper kept 620-700 of 1,400 cyber prompts, about half) and the finetune set all of them (the label
model's refusals, dropped, are unknown) since their true sizes are known only after collection;
``plan(..., counts=...)`` takes the collected sizes instead.

Seconds come from a throughput profile measured on real hardware (``throughput.json`` beside this
file by default, ``--profile`` for another; ``profiles/`` holds the shipped ones). Each rate is
copied from a committed benchmark file under ``bench/results/`` (a test checks them) and reads
seconds = tokens / ``tokens_per_s`` + steps x ``overhead_s`` (a fixed cost per decode step of a
batch, per training pass, per forward batch; 0 when the profile has none). Besides decoding,
training and forward passes, a stage's time counts the judge's calls (``judge``: the default local
judge; rule-based judges cost nothing), the label model's answers (``decode_static_label`` /
``decode_hf_label``, else the decoding rate), model loads (``model_load``) and checkpoint saves and loads (``checkpoint_lora``,
``checkpoint_full``). LoRA runs decode (validation, evaluation) through the unmerged adapter, at
``decode_static_lora`` / ``decode_hf_lora`` where the profile has them (else at the base rate, said
under the table). A term whose rate the profile lacks is left out and named under the table.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..domains import DOMAINS
from ..io import InputError
from ..training.config import TrainConfig
from ..training.objectives import objective_class, objective_for
from ..training.trainer import total_steps
from ..variants import VARIANT_TABLE

if TYPE_CHECKING:
    from .pipeline import Study

FORGET_FRACTION = 0.5
#: Characters per token of the estimates (prompts, responses, cache text).
CHARS_PER_TOKEN = 4
DEFAULT_PROFILE = Path(__file__).with_name("throughput.json")
PROFILES_DIR = Path(__file__).with_name("profiles")
WIDTH = 80


def load_profile(path: str | Path | None = None) -> dict:
    """A throughput profile: a JSON file, or the name of one in ``profiles/`` (default throughput.json)."""
    if path is None:
        return json.loads(DEFAULT_PROFILE.read_text())
    p = Path(path)
    if not p.is_file() and (PROFILES_DIR / f"{path}.json").is_file():
        p = PROFILES_DIR / f"{path}.json"
    if not p.is_file():
        shipped = ", ".join(sorted(f.stem for f in PROFILES_DIR.glob("*.json")))
        raise InputError(f"--profile {path}: no such file or shipped profile (shipped: {shipped})")
    try:
        profile = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"--profile {p}: not JSON ({e})") from None
    if not isinstance(profile.get("rates"), dict):
        raise InputError(f"--profile {p}: no 'rates' table")
    return profile


PROFILE = load_profile()

#: Judges that cost nothing measurable (rules); the default judge and probes run at ``judge``.
FREE_JUDGES = ("keyword", "bbq")
ENCODER_JUDGES = ("default", "probe")


@dataclass
class StagePlan:
    """One stage (``runs`` identical runs) and what it does.

    prompts generated; tokens decoded (``new_tokens`` in ``decode_steps`` batch steps), trained on
    (``train_passes`` micro-batch passes), only read (``forward_tokens`` in ``forward_batches``);
    ``judged`` responses per judge kind; label-model answers (``label_prompts``); model loads,
    and the loads that swapping LoRA adapters onto one loaded model avoids (``swapped_loads``);
    checkpoints written and read back, and checkpoints only read; the run's ``training`` config
    (train stages); prompts whose hidden states are cached (``hidden_states``). Disk use:
    :mod:`.disk`.
    """

    name: str
    prompts: int = 0
    new_tokens: int = 0
    train_tokens: int = 0
    forward_tokens: int = 0
    note: str = ""
    train_rate: str = "train_lora"
    decode_rate: str = "decode_hf"
    runs: int = 1
    decode_steps: int = 0
    train_passes: int = 0
    forward_batches: int = 0
    judged: dict[str, int] = field(default_factory=dict)
    label_tokens: int = 0
    label_steps: int = 0
    model_loads: int = 0
    checkpoints_saved: int = 0
    checkpoints_loaded: int = 0
    checkpoint_kind: str = "lora"
    judge_loads: int = 0
    label_prompts: int = 0
    swapped_loads: int = 0
    training: TrainConfig | None = None
    hidden_states: int = 0

    def terms(self, profile: dict | None = None) -> tuple[dict[str, float], set[str]]:
        """Seconds of one run per term, and the terms the profile has no rate for."""
        rates = (profile or PROFILE)["rates"]
        missing: set[str] = set()
        out: dict[str, float] = {}

        def rate(name: str, *fallbacks: str) -> dict | None:
            return next((rates[n] for n in (name, *fallbacks) if n in rates), None)

        def tokens(name: str, n_tokens: int, steps: int, label: str, *fallbacks: str) -> None:
            if not n_tokens and not steps:
                return
            r = rate(name, *fallbacks)
            if r is None:
                missing.add(label)
                return
            out[label] = n_tokens / r["tokens_per_s"] + steps * r.get("overhead_s", 0.0)

        if self.decode_rate.endswith("_lora") and self.decode_rate not in rates and (self.new_tokens or self.decode_steps):
            missing.add("LoRA-adapter decoding (counted at the base model's rate)")
        tokens(self.decode_rate, self.new_tokens, self.decode_steps, "decode", self.decode_rate.removesuffix("_lora"))
        fp32_lora = self.train_rate.replace("lora_bf16", "lora")
        if fp32_lora != self.train_rate and self.train_tokens and not rate(self.train_rate, self.train_rate.removesuffix("_ce")):
            missing.add("bf16-adapter training (counted at the fp32-adapter rate)")
        tokens(self.train_rate, self.train_tokens, self.train_passes, "train",
               self.train_rate.removesuffix("_ce"), fp32_lora, fp32_lora.removesuffix("_ce"))
        tokens("forward", self.forward_tokens, self.forward_batches, "forward")
        base = self.decode_rate.removesuffix("_lora")
        tokens(f"{base}_label", self.label_tokens, self.label_steps, "label model", base)
        for kind, n in self.judged.items():
            if kind in FREE_JUDGES or not n:
                continue
            r = rates.get("judge") if kind in ENCODER_JUDGES else None
            if r is None:
                missing.add("API judge calls" if kind == "api" else f"{kind} judge calls")
                continue
            out["judge"] = out.get("judge", 0.0) + n / r["judgments_per_s"]
        if self.judge_loads:
            r = rates.get("judge")
            if r is not None and "load_s" in r:
                out["judge"] = out.get("judge", 0.0) + self.judge_loads * r["load_s"]
        if self.model_loads:
            r = rates.get("model_load")
            if r is None:
                missing.add("model loads")
            else:
                out["model loads"] = self.model_loads * r["seconds"]
        if self.checkpoints_saved or self.checkpoints_loaded:
            r = rates.get(f"checkpoint_{self.checkpoint_kind}")
            if r is None:
                missing.add("checkpoint I/O")
            else:
                out["checkpoint I/O"] = self.checkpoints_saved * r["save_s"] + self.checkpoints_loaded * r["load_s"]
        return out, missing

    def seconds(self, profile: dict | None = None) -> float:
        """Seconds for all ``runs`` runs at the profile's rates."""
        return self.runs * sum(self.terms(profile)[0].values())


def _tokens(records) -> int:
    return sum(len(r.prompt) for r in records) // CHARS_PER_TOKEN


def _batches(n: int, size: int) -> int:
    return math.ceil(n / size) if n else 0


def train_rate(tc) -> str:
    """The profile rate that matches a training config (LoRA or full, dtype, checkpointing, CE).

    Runs without a reference pass (CE, GradDiff, SimNPO) read ``<rate>_ce`` where the profile has it.
    """
    kind = "full" if tc.full else ("lora_bf16" if tc.lora.dtype == "model" else "lora")
    return f"train_{kind}{'_gc' if tc.gradient_checkpointing else ''}{'' if _reference(tc) else '_ce'}"


def _reference(tc) -> bool:
    """Whether the run's objective takes a reference pass (NPO, DPO, RMU; not CE, GradDiff, SimNPO)."""
    return objective_class(tc.method).needs_reference


def judge_kind(spec: str) -> str:
    """How a judge spec is timed: a rule (free), the default judge or a probe, a local or an API model."""
    kind, _, rest = spec.partition(":")
    if kind in FREE_JUDGES + ENCODER_JUDGES:
        return kind
    return "api" if rest.startswith("openai:") else "local model"


def plan(study: Study, counts: dict[str, dict[str, int]] | None = None) -> list[StagePlan]:
    """Plan every stage of ``study``, whose ``suite`` is loaded (see ``Study.preview``).

    ``counts`` ({target: {"forget": n, "finetune": n}}, e.g. from collect/<target>/counts.json)
    replaces the assumed forget and finetune sizes.
    """
    cfg, suite = study.cfg, study.suite
    counts = counts or {}
    decode = "decode_static" if cfg.models.backend == "static" else "decode_hf"
    bs = cfg.models.batch_size

    def judged(sets: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, n in sets.items():
            kind = judge_kind(cfg.judges.spec_for(name))
            out[kind] = out.get(kind, 0) + n
        return out

    def generation(name: str, records: list, max_new: int, note: str = "", runs: int = 1) -> StagePlan:
        n = len(records)
        return StagePlan(name, n, n * max_new, 0, _tokens(records), note, decode_rate=decode, runs=runs,
                         decode_steps=_batches(n, bs) * max_new, forward_batches=_batches(n, bs))

    ev = study.eval_records()
    flat = [r for recs in ev.values() for r in recs]
    mmlu_eval, mmlu_sel = study.mmlu_records()
    max_new = cfg.evaluation.decoding.max_new_tokens
    ev_judged = judged({s: len(recs) for s, recs in ev.items()})

    def evaluation(name: str, runs: int = 1) -> StagePlan:
        stage = generation(name, flat, max_new, runs=runs)
        stage.forward_tokens += _tokens(mmlu_eval)
        stage.forward_batches += _batches(len(mmlu_eval), bs)
        stage.judged = dict(ev_judged)
        return stage

    baseline = evaluation("baseline")
    baseline.model_loads = 1
    baseline.judge_loads = 1
    stages = [baseline]
    c = cfg.collect
    kl = [d for d in cfg.evaluation.sets if d != "xstest"]
    kl_n = {d: len(suite.get(d, "test")[:cfg.selection.kl_prompts]) for d in kl}
    kl_tokens = sum(_tokens(suite.get(d, "test")[:cfg.selection.kl_prompts]) for d in kl)
    diag_tokens = kl_tokens + _tokens(mmlu_sel)
    diag_batches = sum(_batches(n, bs) for n in kl_n.values()) + _batches(len(mmlu_sel), bs)
    benign_train = suite.get("benign", "train")

    def edit_stages(run: str, tc, n_main: int, pool: list, n_val: int) -> list[StagePlan]:
        """A training-free method's train stage (one forward pass over the main and contrast prompts,
        diagnostics before and after, one full-weight checkpoint, one validation) and its evaluation."""
        n_contrast = min(objective_for(tc).args.n_contrast, len(benign_train))
        read = n_main * _tokens(pool) // max(1, len(pool)) + _tokens(benign_train[:n_contrast])
        stage = StagePlan(
            f"train/{run}", n_val, n_val * max_new, 0, diag_tokens * 2 + read + _tokens(pool[:n_val]),
            f"training-free edit from {n_main:,} forget and {n_contrast:,} benign prompts, 1 checkpoint (full weights)",
            decode_rate=decode, runs=len(cfg.seeds), decode_steps=_batches(n_val, bs) * max_new,
            forward_batches=diag_batches * 2 + _batches(n_main + n_contrast, tc.batch_size) + _batches(n_val, bs),
            judged=judged({run.split("/")[0]: n_val}), checkpoints_saved=1, model_loads=2, checkpoints_loaded=1,
            checkpoint_kind="full", training=tc)
        ev_stage = evaluation(f"eval/{run}", runs=len(cfg.seeds))
        ev_stage.checkpoints_loaded = 1
        ev_stage.checkpoint_kind = "full"
        return [stage, ev_stage]

    for t in cfg.targets:
        train = suite.get(t.value, "train")
        n_val = min(c.validation_n, len(train) // 2)
        pool = train[:len(train) - n_val][:c.n_target_train]
        collect = generation(f"collect/{t.value}", pool, c.decoding.max_new_tokens)
        collect.model_loads = 1
        known = counts.get(t.value, {})
        n_forget = known.get("forget", int(FORGET_FRACTION * len(pool)))
        variants = cfg.variants_for(t.value)
        sets = {t.value: len(pool)}
        if any(VARIANT_TABLE[v].retain for v in variants) and n_forget:
            others = [r for d in DOMAINS if d != t for r in suite.get(d.value, "train")[:c.n_other_train]]
            for d in DOMAINS:
                if d != t:
                    sets[d.value] = len(suite.get(d.value, "train")[:c.n_other_train])
            extra = [generation("", others, c.decoding.max_new_tokens)]
            if c.benign_responses == "model":
                n_benign = round(c.benign_fraction * c.retain_ratio * n_forget)
                benign = suite.get("benign", "train")[:2 * n_benign]
                extra.append(generation("", benign, c.decoding.max_new_tokens))
                sets["benign"] = len(benign)
            for e in extra:
                collect.prompts += e.prompts
                collect.new_tokens += e.new_tokens
                collect.decode_steps += e.decode_steps
                collect.forward_tokens += e.forward_tokens
                collect.forward_batches += e.forward_batches
        notes = []
        if any(VARIANT_TABLE[v].needs_labels for v in variants):
            if cfg.models.labeler_for(t.value) != cfg.models.aligned:
                collect.label_prompts = len(pool)
                collect.label_tokens = len(pool) * c.decoding.max_new_tokens
                collect.label_steps = _batches(len(pool), bs) * c.decoding.max_new_tokens
                collect.forward_tokens += _tokens(pool)
                collect.forward_batches += _batches(len(pool), bs)
                sets[t.value] += len(pool)
                collect.model_loads += 1
                notes.append(f"label model on {len(pool):,} prompts")
            else:  # the same model, prompts and decoding: its answers and their verdicts come from the caches
                notes.append("labels = the aligned model's cached answers")
        collect.judged = judged(sets)
        collect.note = "; ".join(notes + [f"judged {sum(collect.judged.values()):,}"])
        stages.append(collect)
        seq = (_tokens(pool) // max(1, len(pool))) + c.decoding.max_new_tokens
        for v in variants:
            tc = cfg.training_for(v, cfg.seeds[0], t.value)
            # pairs (DPO): the forget prompts the label model also answered, at most n_forget
            n_main = known.get("finetune", len(pool)) if VARIANT_TABLE[v].main == "finetune" else n_forget
            if not objective_class(tc.method).trains:
                stages += edit_stages(f"{t.value}/{v}", tc, n_main, pool, n_val)
                continue
            steps = total_steps(tc, max(1, n_main))
            per_step = tc.grad_accum * (tc.batch_size + (tc.retain_batch_size if tc.w2 > 0 else 0))
            n_ckpt = math.ceil(steps / tc.save_every)
            rate = train_rate(tc)
            shape = "full" if tc.full else f"LoRA r {tc.lora.r}"
            caveat = "" if not tc.full or tc.full_dtype == "model" else f"; {tc.full_dtype} weights: bf16 rate"
            length = min(seq, tc.max_length)
            stage = StagePlan(
                f"train/{t.value}/{v}", n_val * n_ckpt, n_val * n_ckpt * max_new,
                int(steps * per_step * length), diag_tokens * (n_ckpt + 1),
                f"{steps} steps on {n_main:,} examples, {shape}, {n_ckpt} checkpoint{'s' if n_ckpt != 1 else ''} ({rate}{caveat})",
                rate, decode if tc.full else f"{decode}_lora", len(cfg.seeds),
                decode_steps=n_ckpt * _batches(n_val, bs) * max_new,
                train_passes=steps * tc.grad_accum * (1 + (tc.w2 > 0)),
                forward_batches=diag_batches * (n_ckpt + 1) + n_ckpt * _batches(n_val, bs),
                judged=judged({t.value: n_val * n_ckpt}), checkpoints_saved=n_ckpt,
                # training, then validation: LoRA checkpoints swap onto one load (the evaluation reuses
                # it), where one load per checkpoint and one for the evaluation would take n_ckpt more
                model_loads=1 + (n_ckpt if tc.full else 1), swapped_loads=0 if tc.full else n_ckpt,
                checkpoints_loaded=n_ckpt, checkpoint_kind="full" if tc.full else "lora", training=tc)
            stage.forward_tokens += n_ckpt * _tokens(pool[:n_val])  # validation prefill (approximation)
            if tc.full and _reference(tc):  # reference log-probs of the main set, once
                stage.forward_tokens += n_main * length
                stage.forward_batches += _batches(n_main, tc.batch_size)
            stages.append(stage)
            ev_stage = evaluation(f"eval/{t.value}/{v}", runs=len(cfg.seeds))
            ev_stage.decode_rate = stage.decode_rate  # a LoRA run decodes through its unmerged adapter
            ev_stage.checkpoints_loaded = 1
            ev_stage.checkpoint_kind = stage.checkpoint_kind
            stages.append(ev_stage)
    if cfg.concepts.enabled:
        recs = [r for d in DOMAINS for r in (suite.get(d.value, "train") + suite.get(d.value, "test"))[:cfg.concepts.n_per_domain]]
        recs += suite.get("benign", "train")[:cfg.concepts.n_per_domain]
        stages.append(StagePlan("concepts", 0, 0, 0, _tokens(recs), f"{len(recs)} prompts, hidden states",
                                forward_batches=_batches(len(recs), bs), model_loads=1, hidden_states=len(recs)))
    return stages


def _n(x: int) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e4 else f"{x:,}"


def _time(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _se(n: int, item: str) -> str:
    """What one item weighs and the largest standard error (p = 0.5) of a percentage over n items."""
    weight = 100 / n
    return f"1 {item} = {weight:.2g} point{'' if weight == 1 else 's'}, SE <= {50 / math.sqrt(n):.1f} points"


def _rate_value(r: dict) -> str:
    if "tokens_per_s" in r:
        return f"{r['tokens_per_s']:,.0f}" + (f"+{r['overhead_s'] * 1e3:.3g}ms" if r.get("overhead_s") else "")
    if "judgments_per_s" in r:
        return f"{r['judgments_per_s']:,.0f}/s"
    if "save_s" in r:
        return f"{r['save_s']:.2g}+{r['load_s']:.2g}s"
    return f"{r['seconds']:.2g}s"


def schedule(stages: list[StagePlan], profile: dict | None = None, workers: int = 1) -> tuple[float, float]:
    """(wall seconds on ``workers`` workers, critical path seconds) of the study's units.

    Units are as the study runs them (``Study.units``): the baseline, the concepts, each target's
    collection, and each training run with its evaluation, which waits for its target's
    collection. Workers take the ready unit with the longest path to the end first.
    """
    sec = {s.name: s.seconds(profile) / max(1, s.runs) for s in stages}  # one run
    jobs: list[tuple[str, float, str | None]] = []
    for s in stages:
        if s.name.startswith("eval/"):
            continue
        if s.name.startswith("train/"):
            target, variant = s.name.split("/")[1:3]
            run = sec[s.name] + sec.get(f"eval/{target}/{variant}", 0.0)
            jobs += [(f"{s.name}#{i}", run, f"collect/{target}") for i in range(s.runs)]
        else:
            jobs.append((s.name, sec[s.name] * s.runs, None))
    longest_after = {}
    for name, seconds, before in jobs:
        if before is not None:
            longest_after[before] = max(longest_after.get(before, 0.0), seconds)
    length = {name: seconds + longest_after.get(name, 0.0) for name, seconds, _ in jobs}
    critical = max(length.values(), default=0.0)
    pending = sorted(jobs, key=lambda j: -length[j[0]])
    free, done = [0.0] * max(1, workers), {}
    while pending:
        w = min(range(len(free)), key=free.__getitem__)
        now = free[w]
        ready = [j for j in pending if j[2] is None or done.get(j[2], float("inf")) <= now]
        if not ready:
            free[w] = min(done[j[2]] for j in pending if j[2] in done)
            continue
        name, seconds, _ = ready[0]
        pending.remove(ready[0])
        done[name] = free[w] = now + seconds
    return max(free), critical


def _loads(stages: list[StagePlan], profile: dict) -> str:
    """Model loads of the plan, and how many swapping LoRA adapters onto one load saves."""
    loads = sum(s.runs * s.model_loads for s in stages)
    saved = sum(s.runs * s.swapped_loads for s in stages)
    r = profile["rates"].get("model_load")
    at = f", {_time(saved * r['seconds'])} at the profile's load time" if r and saved else ""
    return (f"model loads: {loads:,}, LoRA checkpoints validated and evaluated on one load per run (adapters "
            f"swapped), full-rank checkpoints loaded once each; {loads + saved:,} with one load per LoRA checkpoint "
            f"and evaluation (swapping saves {saved:,}{at})")


def format_plan(study: Study, profile: dict | None = None) -> list[str]:
    """The plan as lines of at most WIDTH characters."""
    from .disk import disk_lines

    profile = profile or PROFILE
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
    missing: set[str] = set()
    for s in stages:
        missing |= s.terms(profile)[1]
        lines.append(row.format(s.name[:32], s.runs, _n(s.prompts * s.runs), _n(s.new_tokens * s.runs),
                                _n(s.train_tokens * s.runs), _n(s.forward_tokens * s.runs),
                                _time(s.seconds(profile))))
        if s.note:
            lines.append(f"  {s.note}")
    total = sum(s.seconds(profile) for s in stages)
    lines += ["-" * WIDTH, row.format("total", "", "", "", "", "", _time(total)),
              "wall time with N workers, one GPU each (--workers / --gpus / --executor ray): " + ", ".join(
                  f"{n}: {_time(schedule(stages, profile, n)[0])}" for n in (1, 2, 4, 8))
              + f"; critical path {_time(schedule(stages, profile)[1])}; {total / 3600:.1f} GPU-hours in all",
              _loads(stages, profile),
              "", f"time: {profile['description']}; rates from bench/results/ (tokens/s + fixed cost per step):"]
    rates = [f"{name} {_rate_value(r)}".ljust(26) for name, r in profile["rates"].items()]
    lines += ["  " + "".join(rates[i:i + 3]).rstrip() for i in range(0, len(rates), 3)]
    lines += [f"  {name}: {r['note']}" for name, r in profile["rates"].items() if "note" in r]
    lines.append("counted: decoding, training, forward passes, judge calls, label-model answers, model loads, "
                 "checkpoint saves and loads; responses at max_new_tokens")
    if missing:
        lines.append(f"not timed (no rate in this profile): {', '.join(sorted(missing))}")
    lines += ["", *disk_lines(cfg, stages, profile)]
    return [part for line in lines
            for part in (textwrap.wrap(line, WIDTH, subsequent_indent="    ", break_on_hyphens=False)
                         if len(line) > WIDTH else [line])]
