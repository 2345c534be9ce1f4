"""The trainer: one objective, LoRA or full-rank, on accelerate (``accelerate launch`` scales it).

The trainer is the objectives' ``LossContext``: policy and reference log-probs, and hidden
states of one decoder block. The reference never needs a second copy of the weights: with LoRA
it is the same model with the adapter disabled; full-rank runs compute the reference log-probs
of every main-set sequence once before training and cache them in ``out_dir/reference_logps.pt``.

Data order is a pure function of (seed, step): micro-batch u takes positions
[u*B, (u+1)*B) of an endless stream of per-epoch seeded permutations, so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..io import InputError, read_json, write_jsonl
from ..progress import progress
from .checkpoints import STATE_FILE, CheckpointInfo, list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .examples import EncodedSet, Example
from .logprobs import sequence_logprobs, unwrap
from .memory import checkpoint_blocks, compile_blocks, recompute_pointwise
from .objectives import objective_for
from .optim import build_optimizer
from .trackers import TENSORBOARD_DIR, build_trackers, config_values, flatten

Batch = dict[str, torch.Tensor]


def stream_indices(n: int, seed: int, start: int, count: int) -> list[int]:
    """Positions [start, start+count) of the endless stream perm_0 + perm_1 + ... of range(n)."""
    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, n)
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g).tolist()
        take = perm[offset:offset + count - len(out)]
        out.extend(take)
        pos += len(take)
    return out


def total_steps(cfg: TrainConfig, n_main: int, processes: int = 1) -> int:
    """Optimizer steps: ``max_steps`` or enough for ``epochs`` passes over the main set."""
    if cfg.max_steps:
        return cfg.max_steps
    per_step = cfg.batch_size * cfg.grad_accum * processes
    return max(1, math.ceil(cfg.epochs * n_main / per_step))


class Trainer:
    """Owns the (wrapped) model, optimizer and scheduler; ``train_step`` runs one optimizer step.

    ``model`` is a transformers CausalLM; LoRA (``cfg.full`` False) wraps it with peft in place.
    Batches are dicts from ``examples.collate``; a main batch may carry ``ref_logps`` (B,) (and
    ``rejected_ref_logps`` for pairs: the cached full-rank reference), otherwise the reference
    comes from the adapter-disabled model.
    """

    def __init__(self, model, tokenizer, cfg: TrainConfig, num_steps: int, accelerator=None):
        from accelerate import Accelerator

        self.cfg = cfg
        self.tokenizer = tokenizer
        self.objective = objective_for(cfg)
        if not self.objective.trains:
            raise ValueError(f"method {cfg.method} is training-free: train() applies its edit")
        self.accelerator = accelerator or Accelerator(
            mixed_precision="bf16" if torch.cuda.is_available() else "no")
        self.lora = not cfg.full
        model.config.use_cache = False
        if cfg.gradient_checkpointing:
            checkpoint_blocks(model, cfg.checkpoint_blocks)
        if cfg.recompute_pointwise:
            recompute_pointwise(model)
        if self.lora:
            model = self._wrap_lora(model)
        elif cfg.full_dtype == "fp32":
            model = model.float()
        if cfg.compile_blocks:
            compile_blocks(model)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, cfg.lr, cfg.weight_decay, cfg.kahan_sum, self.accelerator.num_processes)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.scheduler = self._scheduler(num_steps)
        self.num_steps = num_steps
        self._seen: list[torch.Tensor] = []  # mean policy log-prob of each ``logps`` call of a pass

    def _wrap_lora(self, model):
        from peft import LoraConfig, get_peft_model

        lc = self.cfg.lora
        peft_cfg = LoraConfig(r=lc.r, lora_alpha=lc.alpha if lc.alpha is not None else lc.r,
                              lora_dropout=lc.dropout, target_modules=lc.target_modules, task_type="CAUSAL_LM")
        # peft would upcast bf16/fp16 adapters to fp32; "model" keeps them in the base dtype
        model = get_peft_model(model, peft_cfg, autocast_adapter_dtype=lc.dtype == "fp32")
        if lc.dtype == "fp32":
            for p in model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()  # fp32 adapter weights; the frozen base keeps its dtype
        return model

    def _scheduler(self, num_steps: int):
        from transformers import get_scheduler

        name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[self.cfg.schedule]
        return get_scheduler(name, self.optimizer, num_warmup_steps=int(self.cfg.warmup_ratio * num_steps),
                             num_training_steps=num_steps)

    @property
    def unwrapped(self):
        """The peft (LoRA) or plain model without distributed wrappers."""
        return self.accelerator.unwrap_model(self.model)

    @property
    def num_layers(self) -> int:
        return len(unwrap(self.model).get_decoder().layers)

    def on_device(self, batch: Batch) -> Batch:
        """The batch's tensors on the accelerator's device (a no-op for tensors already there)."""
        return {k: v.to(self.accelerator.device) for k, v in batch.items()}

    def logps(self, batch: Batch, prefix: str = "") -> torch.Tensor:
        """Policy summed response log-probs (B,), with grad; ``prefix`` picks the batch's sequence."""
        batch = self.on_device(batch)
        out = sequence_logprobs(self.model, batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"],
                                batch[f"{prefix}labels"], self.cfg.logprob_chunk_size)
        if not prefix:
            self._seen.append(out.detach().float().mean())
        return out

    def _seen_logp(self, name: str) -> dict[str, float]:
        """{name: mean summed log-prob of the sequences the last pass scored}, or {} (e.g. RMU)."""
        seen, self._seen = self._seen, []
        return {name: torch.stack(seen).mean().item()} if seen else {}

    @contextlib.contextmanager
    def _frozen(self):
        """The frozen (adapter-disabled, eval-mode) model, without grad."""
        if not self.lora:
            raise ValueError(f"full-rank {self.cfg.method} has no frozen model: only cached reference log-probs")
        model = self.unwrapped
        model.eval()
        try:
            with torch.no_grad(), model.disable_adapter(), self.accelerator.autocast():
                yield model
        finally:
            model.train()

    def reference_logps(self, batch: Batch, prefix: str = "") -> torch.Tensor:
        """Reference summed response log-probs (B,): the batch's cached ``ref_logps`` or adapter-off model."""
        batch = self.on_device(batch)
        if f"{prefix}ref_logps" in batch:
            return batch[f"{prefix}ref_logps"]
        with self._frozen() as model:
            return sequence_logprobs(model, batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"],
                                     batch[f"{prefix}labels"], self.cfg.logprob_chunk_size)

    def _block_output(self, model, batch: Batch, layer: int) -> torch.Tensor:
        blocks = unwrap(model).get_decoder().layers
        batch = self.on_device(batch)
        if not 0 <= layer < len(blocks):
            raise ValueError(f"layer {layer} out of range: the model has {len(blocks)} decoder blocks")
        captured: list[torch.Tensor] = []
        handle = blocks[layer].register_forward_hook(
            lambda _m, _i, out: captured.append(out[0] if isinstance(out, tuple) else out))
        try:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                  logits_to_keep=1)
        finally:
            handle.remove()
        return captured[0]

    def hidden(self, batch: Batch, layer: int) -> torch.Tensor:
        """Policy output of decoder block ``layer`` (B, T, D), with grad."""
        return self._block_output(self.model, batch, layer)

    def reference_hidden(self, batch: Batch, layer: int) -> torch.Tensor:
        """Adapter-disabled output of decoder block ``layer`` (B, T, D), without grad."""
        with self._frozen() as model:
            return self._block_output(model, batch, layer)

    @torch.no_grad()
    def frozen_logps(self, batch: Batch, prefix: str = "") -> torch.Tensor:
        """Log-probs (B,) of the current model without grad (for caching a full-rank reference)."""
        model = self.unwrapped
        batch = self.on_device(batch)
        was_training = model.training
        model.eval()
        try:
            with self.accelerator.autocast():
                return sequence_logprobs(model, batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"],
                                         batch[f"{prefix}labels"], self.cfg.logprob_chunk_size)
        finally:
            model.train(was_training)

    def _backward(self, loss: torch.Tensor, sync: bool) -> None:
        ctx = contextlib.nullcontext() if sync else self.accelerator.no_sync(self.model)
        with ctx:
            self.accelerator.backward(loss / self.cfg.grad_accum)

    def train_step(self, micro_batches: list[tuple[Batch, Batch | None]]) -> dict[str, float]:
        """One optimizer step over (main batch, retain batch or None) micro-batches.

        Each micro-batch runs the main-set pass and then the retain pass, each with its own
        backward (only one graph alive at a time); gradients are synchronised across processes
        on the last backward only. Returns the mean of each logged loss part, of the policy's summed
        response log-probs on the main and retain batches (``main_logp``, ``retain_logp``) and the lr used.
        """
        sums: dict[str, float] = {}
        self._seen = []
        n_back = sum(1 + (r is not None) for _, r in micro_batches)
        done = 0
        for main, retain in micro_batches:
            main = self.on_device(main)
            with self.accelerator.autocast():
                loss, parts = self.objective.main_loss(self, main)
            parts.update(self._seen_logp("main_logp"))
            done += 1
            self._backward(loss, sync=done == n_back)
            total = loss.item()
            if retain is not None:
                retain = self.on_device(retain)
                with self.accelerator.autocast():
                    r_loss, r_parts = self.objective.retain_loss(self, retain)
                r_parts.update(self._seen_logp("retain_logp"))
                done += 1
                self._backward(r_loss, sync=done == n_back)
                total += r_loss.item()
                parts.update(r_parts)
            for k, v in {"loss": total, **parts}.items():
                sums[k] = sums.get(k, 0.0) + v / len(micro_batches)
        if self.cfg.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {**sums, "lr": lr}


def npo_step(trainer: Trainer, batch: Batch, retain: Batch | None = None) -> dict[str, float]:
    """One optimizer step on a single given batch (benchmarks call this)."""
    return trainer.train_step([(batch, retain)])


class _Data:
    """The main and retain sets, encoded, and the micro-batches of each step for this process."""

    def __init__(self, main: EncodedSet, retain: EncodedSet | None, cfg: TrainConfig, rank: int, world: int,
                 pad_id: int, ref_logps: dict[str, torch.Tensor] | None):
        self.main, self.retain, self.cfg = main, retain, cfg
        self.rank, self.world, self.pad_id = rank, world, pad_id
        self.ref_logps = ref_logps

    def step_batches(self, step: int) -> list[tuple[Batch, Batch | None]]:
        """Micro-batches of optimizer step ``step`` (1-based) for this process."""
        out = []
        for j in range(self.cfg.grad_accum):
            u = ((step - 1) * self.cfg.grad_accum + j) * self.world + self.rank
            b = self.cfg.batch_size
            main = self.main.batch(stream_indices(len(self.main), self.cfg.seed, u * b, b), self.pad_id)
            for prefix, values in (self.ref_logps or {}).items():
                main[f"{prefix}ref_logps"] = values[main["index"]]
            retain = None
            if self.retain is not None:
                rb = self.cfg.retain_batch_size
                retain = self.retain.batch(stream_indices(len(self.retain), self.cfg.seed + 1, u * rb, rb), self.pad_id)
            out.append((main, retain))
        return out


def _load(model_spec_or_model, dtype: str | None = None):
    """(model, tokenizer) from a spec (in ``dtype``; None = the device's default) or a given pair."""
    if isinstance(model_spec_or_model, str):
        from ..models import load_model, pick_device

        return load_model(model_spec_or_model, device=str(pick_device()), dtype=dtype)
    if isinstance(model_spec_or_model, tuple) and len(model_spec_or_model) == 2:
        return model_spec_or_model
    raise TypeError("train() takes a model spec string or a (model, tokenizer) pair")


def _truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop rows logged after the checkpoint a run resumes from."""
    if path.exists():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        write_jsonl(path, [r for r in rows if r["step"] <= max_step])


def _clear(out_dir: Path) -> None:
    """Remove a previous run's checkpoints, logs and cached reference from ``out_dir``."""
    for ckpt in list_checkpoints(out_dir):
        shutil.rmtree(ckpt.path)
    for name in ("train_log.jsonl", "diagnostics.jsonl", "reference_logps.pt"):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / TENSORBOARD_DIR, ignore_errors=True)


def _append_jsonl(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _cached_reference(trainer: Trainer, data: _Data, path: Path, key: dict) -> dict[str, torch.Tensor]:
    """{prefix: reference log-probs (N,)} of the main set's sequences under the untrained model.

    Computed once and saved (as ``<prefix>logps``) with ``key`` ({"ids", "model"}); a cache made
    for other examples or another model is an error.
    """
    prefixes = trainer.objective.sequences
    if path.exists():
        saved = torch.load(path, weights_only=True)
        if saved["key"] != key or any(f"{p}logps" not in saved for p in prefixes):
            raise InputError(f"{path}: cached reference log-probs are for other examples or another model; "
                             f"use a new out dir or resume=False")
        return {p: saved[f"{p}logps"] for p in prefixes}
    values = {p: torch.zeros(len(data.main)) for p in prefixes}
    bs = trainer.cfg.batch_size
    with progress() as bar:
        task = bar.add_task("reference log-probs", total=len(data.main))
        for start in range(0, len(data.main), bs):
            idx = list(range(start, min(start + bs, len(data.main))))
            batch = {k: v.to(trainer.accelerator.device) for k, v in data.main.batch(idx, data.pad_id).items()}
            for p in prefixes:
                values[p][idx] = trainer.frozen_logps(batch, p).float().cpu()
            bar.advance(task, len(idx))
    if trainer.accelerator.is_main_process:
        tmp = path.with_suffix(".tmp")
        torch.save({"key": key, **{f"{p}logps": v for p, v in values.items()}}, tmp)
        tmp.replace(path)
    return values


def train(model_spec_or_model, forget: list[Example], retain: list[Example] | None, cfg: TrainConfig,
          out_dir: Path, diagnostics=None, resume: bool = True, on_step: Callable[[int, dict], None] | None = None,
          contrast: list[str] | None = None) -> list[CheckpointInfo]:
    """Train and return every complete checkpoint in ``out_dir``.

    ``model_spec_or_model``: a model spec (hub id, dir, ``embedded:ALIAS``) or a (model,
    tokenizer) pair (LoRA wraps that model in place). ``forget`` is the main set: the forget
    set for NPO, the finetune set for CE, (preferred, rejected) pairs for DPO. ``retain`` is
    used when ``cfg.w2`` > 0.
    ``diagnostics`` (a ``Diagnostics``) runs at step 0 and at each checkpoint. With ``resume``
    the run continues after the last complete checkpoint in ``out_dir``. ``on_step(step, row)``
    is called after each logged step. A training-free method (``Edit``) instead edits the
    weights once from ``forget`` and the ``contrast`` prompts (``edits.apply_edit``).
    """
    from .diagnostics import DiagnosticsRunner

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not forget:
        raise InputError("the main training set (forget / finetune examples) is empty")
    objective = objective_for(cfg)
    if not objective.trains:
        from .edits import apply_edit

        return apply_edit(objective, model_spec_or_model, forget, contrast, cfg, out_dir, diagnostics, resume)
    if objective.uses_retain and not retain:
        raise InputError("w2 > 0 needs a non-empty retain set")
    if objective.pairs and any(e.rejected is None for e in forget):
        raise InputError(f"method {cfg.method} trains on pairs: every main example needs a rejected response")
    if not resume:
        _clear(out_dir)
    torch.manual_seed(cfg.seed)
    model, tokenizer = _load(model_spec_or_model)
    model_name = str(getattr(model.config, "_name_or_path", ""))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    main_set = EncodedSet(forget, tokenizer, cfg.max_length, cfg.system_prompt, pairs=objective.pairs)
    retain_set = EncodedSet(retain, tokenizer, cfg.max_length, cfg.system_prompt) if objective.uses_retain else None

    from accelerate import Accelerator

    done = list_checkpoints(out_dir) if resume else []
    start = done[-1].step if done else 0
    acc = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no",
                      log_with=build_trackers(cfg.log_with, out_dir, start) or None)
    steps = total_steps(cfg, len(main_set), acc.num_processes)
    trainer = Trainer(model, tokenizer, cfg, steps, acc)
    runner = (DiagnosticsRunner(diagnostics, tokenizer, out_dir, lora=not cfg.full, system_prompt=cfg.system_prompt)
              if diagnostics else None)
    if runner and cfg.full:
        runner.cache_aligned(trainer.unwrapped)  # before any update or resume: the aligned distributions
    data = _Data(main_set, retain_set, cfg, acc.process_index, acc.num_processes, pad_id, None)
    if cfg.full and objective.needs_reference:
        data.ref_logps = _cached_reference(trainer, data, out_dir / "reference_logps.pt",
                                           {"ids": [e.id for e in forget], "model": model_name})

    prior_elapsed = 0.0
    if done:
        last = done[-1]
        saved = read_json(last.path / STATE_FILE)
        if not cfg.trained_like(saved.get("config")) or saved.get("model", model_name) != model_name:
            raise InputError(f"{last.path}: was trained with another model or configuration; use a new "
                             f"out dir or resume=False")
        load_checkpoint(last, acc, trainer.model, trainer.optimizer, trainer.scheduler)
        prior_elapsed = float(saved.get("elapsed", 0.0))
    log_path, diag_path = out_dir / "train_log.jsonl", out_dir / "diagnostics.jsonl"
    if acc.is_main_process:
        _truncate_jsonl(log_path, start)
        _truncate_jsonl(diag_path, start if start else -1)
    acc.init_trackers("spillover", config=config_values(cfg.model_dump()))
    try:
        _loop(trainer, data, runner, out_dir, start, steps, prior_elapsed, model_name, on_step)
    finally:
        for tracker in acc.trackers:
            tracker.finish()
    return list_checkpoints(out_dir)


def _loop(trainer: Trainer, data: _Data, runner, out_dir: Path, start: int, steps: int, prior_elapsed: float,
          model_name: str, on_step: Callable[[int, dict], None] | None) -> None:
    """Steps start+1 .. steps: log each to the JSONL and trackers, checkpoint every ``save_every``."""
    acc, cfg, tokenizer = trainer.accelerator, trainer.cfg, trainer.tokenizer
    log_path, diag_path = out_dir / "train_log.jsonl", out_dir / "diagnostics.jsonl"
    if runner and start == 0:
        row0 = runner.run(trainer.unwrapped, 0)  # every process runs it (sharded models need all)
        if acc.is_main_process:
            _append_jsonl(diag_path, row0)
        acc.log(flatten(row0, "diagnostics"), step=0)
    t0 = time.monotonic()
    with progress() as bar:
        task = bar.add_task(f"{cfg.method} ({'lora' if trainer.lora else 'full'})", total=steps, completed=start)
        for step in range(start + 1, steps + 1):
            parts = trainer.train_step(data.step_batches(step))
            if acc.num_processes > 1:  # log the mean over processes
                mean = acc.reduce(torch.tensor(list(parts.values()), device=acc.device), reduction="mean")
                parts = dict(zip(parts, mean.tolist()))
            elapsed = prior_elapsed + time.monotonic() - t0
            row = {"step": step, **{k: round(v, 6) for k, v in parts.items()}, "elapsed": round(elapsed, 2)}
            if acc.is_main_process:
                _append_jsonl(log_path, row)
            acc.log(flatten(row, "train"), step=step)
            if on_step:
                on_step(step, row)
            bar.update(task, advance=1, description=f"{cfg.method} loss {parts['loss']:.4f}")
            if step % cfg.save_every == 0 or step == steps:
                # diagnostics first: a row whose checkpoint never got written is dropped on resume
                diag_row = runner.run(trainer.unwrapped, step) if runner else None
                if diag_row and acc.is_main_process:
                    _append_jsonl(diag_path, diag_row)
                    acc.log(flatten(diag_row, "diagnostics"), step=step)
                save_checkpoint(out_dir, step, acc, trainer.model, tokenizer, trainer.optimizer, trainer.scheduler,
                                {"elapsed": elapsed, "total_steps": steps, "model": model_name,
                                 "config": cfg.model_dump()}, adapter=trainer.lora)
