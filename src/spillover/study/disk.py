"""Disk use of a planned study (``--dry-run``): checkpoints, optimizer state, caches.

Parameter counts are those of the transformers model built from its config on the meta device
(no weights) and of each run's peft LoRA adapter on it. The config comes from the model's local
files (a directory, an embedded model's built cache, the Hugging Face cache; nothing is
downloaded), else from the throughput profile's ``model`` (whose parameter count a test checks
against a benchmark file), and the output says which. Weights are counted in their dtype
(``models.dtype``; ``auto`` as on the profile's ``device``); the optimizer state at what the
trainer's own optimizer (``training.optim.build_optimizer``) holds per trained parameter after
one step (a training-free edit: its full weights with a tied LM head counted on its own, as an
edit may untie it, and no optimizer state). A checkpoint is counted by its weights (not its
tokenizer files); only the latest one keeps the optimizer state (``training.checkpoints``), so a
run keeps one state, and pruning saves what the other checkpoints would hold (while a checkpoint
is being written, its run briefly holds two). Cache text is counted at ``plan.CHARS_PER_TOKEN``
per token, every response at ``max_new_tokens`` (the plan's upper bound), plus each cache line's
key and framing; a model judge's answer at its token limit, twice (raw answer and the explanation
taken from it). The concepts stage caches float16 hidden states of every layer and the
embeddings per prompt.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np
import torch

from ..cache import cache_key
from ..judges.api import MAX_NEW_TOKENS as API_JUDGE_TOKENS
from ..judges.base import REFUSAL
from ..judges.local import MAX_NEW_TOKENS as LOCAL_JUDGE_TOKENS
from ..models import EMBEDDED_PREFIX, embedded_cache_dir, pick_dtype
from ..training.objectives import objective_class
from ..training.optim import build_optimizer
from .plan import CHARS_PER_TOKEN


def _line_bytes(value) -> int:
    """Bytes of one cache line holding ``value`` (``cache.JsonlCache``'s format)."""
    return len(json.dumps({"key": cache_key(""), "value": value}, ensure_ascii=False).encode()) + 1


RESPONSE_LINE = _line_bytes([""])  # plus the response text
JUDGMENT_LINE = _line_bytes({"label": REFUSAL, "explanation": "", "raw": None})  # plus a model judge's answer


def model_config(spec: str, profile: dict):
    """(transformers config, what it describes) of ``spec`` from local files, else the profile's
    ``model``; (None, reason) when neither has one."""
    from transformers import AutoConfig

    path = str(embedded_cache_dir(spec)) if spec.startswith(EMBEDDED_PREFIX) else spec
    try:
        return AutoConfig.from_pretrained(path, local_files_only=True), spec
    except (OSError, ValueError):
        shape = profile.get("model")
        if shape is None:
            return None, f"{spec}: no local config and no model in the profile"
        config = AutoConfig.for_model(**shape["config"])
        why = ("its config from the profile: none in the local files" if shape["name"] == spec
               else f"the profile's model: {spec} has no config in the local files")
        return config, f"{shape['name']} ({why})"


@cache
def optimizer_bytes_per_param(dtype: torch.dtype, kahan: bool) -> float:
    """Bytes of optimizer state per trained parameter of ``dtype`` after one step."""
    n = 1024
    p = torch.nn.Parameter(torch.zeros(n, dtype=dtype))
    opt = build_optimizer([p], lr=1e-3, weight_decay=0.0, kahan=kahan)
    p.grad = torch.ones_like(p)
    opt.step()
    return sum(t.numel() * t.element_size() for t in opt.state[p].values()
               if isinstance(t, torch.Tensor) and t.numel() == n) / n


@dataclass
class ModelSizes:
    """Sizes of one model: parameters, LoRA adapters, hidden states; ``dtype`` of its weights."""

    config: object
    source: str
    dtype: torch.dtype
    _lora: dict = field(default_factory=dict, repr=False)

    @cached_property
    def _meta(self):
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(self.config)

    @cached_property
    def params(self) -> int:
        """Parameters (tied weights once, as a checkpoint stores them)."""
        return sum(p.numel() for p in self._meta.parameters())

    @cached_property
    def untied_params(self) -> int:
        """Parameters with a tied LM head stored on its own (an edited model may untie it)."""
        head = self._meta.get_output_embeddings()
        tied = getattr(self.config.get_text_config(), "tie_word_embeddings", False) and head is not None
        return self.params + (head.weight.numel() if tied else 0)

    def lora_params(self, lora) -> int:
        """Trainable parameters of the peft LoRA adapter of ``lora`` (``LoraSettings``) on this model."""
        from peft import LoraConfig, get_peft_model

        key = (lora.r, str(lora.target_modules))
        if key not in self._lora:
            settings = LoraConfig(r=lora.r, target_modules=lora.target_modules, task_type="CAUSAL_LM",
                                  init_lora_weights=False)
            peft = get_peft_model(copy.deepcopy(self._meta), settings, low_cpu_mem_usage=True)
            self._lora[key] = peft.get_nb_trainable_parameters()[0]
        return self._lora[key]

    def hidden_state_bytes(self, prompts: int) -> int:
        """float16 hidden states at one position, every layer and the embeddings, of ``prompts`` prompts."""
        return (self.config.num_hidden_layers + 1) * prompts * self.config.hidden_size * np.dtype(np.float16).itemsize


def model_sizes(cfg, profile: dict) -> ModelSizes | None:
    """The sizes of a study's aligned model, or None (with no config anywhere)."""
    config, source = model_config(cfg.models.aligned, profile)
    if config is None:
        return None
    return ModelSizes(config, source, pick_dtype(torch.device(profile.get("device", "cuda")), cfg.models.dtype))


@dataclass
class StageDisk:
    """Bytes one run of a stage leaves on disk: checkpoint weights, the latest checkpoint's
    optimizer state, that state on every checkpoint (without pruning), and cache lines."""

    name: str
    runs: int
    weights: int = 0
    optimizer: int = 0
    unpruned: int = 0
    caches: int = 0

    @property
    def total(self) -> int:
        return self.runs * (self.weights + self.optimizer + self.caches)


def _judge_answer_chars(kind: str, limit: int | None) -> int:
    if kind == "api":
        return 2 * CHARS_PER_TOKEN * (limit or API_JUDGE_TOKENS)
    if kind == "local model":
        return 2 * CHARS_PER_TOKEN * (limit or LOCAL_JUDGE_TOKENS)
    return 0


def stage_disk(stage, sizes: ModelSizes, judge_tokens: int | None) -> StageDisk:
    """The disk use of one planned stage (a ``plan.StagePlan``)."""
    out = StageDisk(stage.name, stage.runs)
    generated = stage.prompts + stage.label_prompts
    out.caches = (generated * RESPONSE_LINE + CHARS_PER_TOKEN * (stage.new_tokens + stage.label_tokens)
                  + sum(n * (JUDGMENT_LINE + _judge_answer_chars(kind, judge_tokens)) for kind, n in stage.judged.items())
                  + sizes.hidden_state_bytes(stage.hidden_states))
    tc = stage.training
    if tc is None:
        return out
    if not objective_class(tc.method).trains:  # a training-free edit: full weights, no optimizer state
        dtype = torch.float32 if tc.full_dtype == "fp32" else sizes.dtype
        out.weights = stage.checkpoints_saved * sizes.untied_params * torch.empty(0, dtype=dtype).element_size()
        return out
    if tc.full:
        trained = sizes.params
        dtype = torch.float32 if tc.full_dtype == "fp32" else sizes.dtype
    else:
        trained = sizes.lora_params(tc.lora)
        dtype = torch.float32 if tc.lora.dtype == "fp32" else sizes.dtype
    per_param = torch.empty(0, dtype=dtype).element_size()
    state = round(trained * optimizer_bytes_per_param(dtype, tc.kahan_sum))
    out.weights = stage.checkpoints_saved * trained * per_param
    out.optimizer = state
    out.unpruned = stage.checkpoints_saved * state
    return out


def _bytes(n: float) -> str:
    """At most three digits before the point: 1,000 of a unit or more is shown in the next one."""
    for unit, size in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size * 1000 / 1024:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B" if n else "-"


def disk_lines(cfg, stages: list, profile: dict) -> list[str]:
    """The disk table of a plan (stages with anything on disk, all runs), its total and the
    saving of optimizer-state pruning, as lines for ``plan.format_plan``."""
    sizes = model_sizes(cfg, profile)
    if sizes is None:
        return [f"disk: not estimated ({model_config(cfg.models.aligned, profile)[1]})"]
    disks = [d for d in (stage_disk(s, sizes, cfg.judges.max_new_tokens) for s in stages) if d.total]
    row = "{:<32} {:>4} {:>9} {:>9} {:>9} {:>9}"
    lines = [f"disk, sized for {sizes.source}: {sizes.params:,} parameters, {str(sizes.dtype).removeprefix('torch.')} "
             "weights (spillover.study.disk)",
             row.format("stage", "runs", "weights", "optimizer", "caches", "total")]
    for d in disks:
        lines.append(row.format(d.name[:32], d.runs, _bytes(d.runs * d.weights), _bytes(d.runs * d.optimizer),
                                _bytes(d.runs * d.caches), _bytes(d.total)))
    kept = sum(d.runs * d.optimizer for d in disks)
    every = sum(d.runs * d.unpruned for d in disks)
    lines += [row.format("total", "", _bytes(sum(d.runs * d.weights for d in disks)), _bytes(kept),
                         _bytes(sum(d.runs * d.caches for d in disks)), _bytes(sum(d.total for d in disks))),
              f"optimizer state on each run's latest checkpoint only: {_bytes(kept)}; on every checkpoint it "
              f"would be {_bytes(every)} (pruning saves {_bytes(every - kept)})"]
    return lines
