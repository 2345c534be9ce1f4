"""Training hyperparameters (validated; presets live in YAML, see configs/train-*.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import Seed, StrictModel


class LoraSettings(StrictModel):
    """peft LoRA settings; ``alpha`` None means alpha = r (the paper's grid)."""

    r: int = Field(16, ge=1)
    alpha: float | None = Field(None, gt=0.0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    #: "all-linear" = every linear layer of the decoder blocks (attention and MLP), not the LM head.
    target_modules: list[str] | str = "all-linear"
    #: Adapter weights in the model's dtype (default; bf16 on a GPU, trained with Kahan-compensated
    #: AdamW so no update is lost), or fp32. On an H200 bf16 adapters save memory and step time on a
    #: 7B model; on a real model their NPO curves match fp32 adapters (bench/README.md).
    dtype: Literal["fp32", "model"] = "model"


class TrainConfig(StrictModel):
    """One training run.

    ``method`` names a method (``spillover.training.objectives.OBJECTIVES``: npo = unlearning
    by NPO on the forget set, ce = finetuning by CE on the finetune set, ...; a training-free
    method edits the weights once and reads only ``full_dtype``, ``batch_size``, ``system_prompt``
    and its own arguments); ``method_args``
    holds each method's own arguments by method name (e.g. ``{npo: {beta: 0.1, weight: 1}}``),
    validated against that method's ``Args``; the active method's entry is always filled with its
    defaults. ``w2`` > 0 adds w2 times the method's retain term (CE on the retain set unless the
    method says otherwise). ``batch_size`` is per device and
    per micro-batch; an optimizer step sees batch_size x grad_accum x processes examples. A
    retain micro-batch holds round(batch_size x retain_ratio) examples, so a retain set
    ``retain_ratio`` times the forget set is seen once per epoch.
    """

    method: str = "npo"
    method_args: dict[str, dict[str, Any]] = Field(default_factory=dict)
    w2: float = Field(0.0, ge=0.0)
    lora: LoraSettings = LoraSettings()
    full: bool = False
    #: dtype of the trained weights in full-rank runs: the model's own (bf16 on GPU; with
    #: ``kahan_sum`` no update is lost, at 10 bytes per weight) or fp32 master weights (bf16
    #: autocast on GPU; 16 bytes per weight: a 7B needs FSDP over 2 GPUs). docs/training.md.
    full_dtype: Literal["fp32", "model"] = "model"
    #: Kahan-compensated AdamW (torch-optimi) for weights stored in bf16/fp16; False = torch
    #: AdamW, whose bf16 updates smaller than half the weight's rounding step are lost.
    kahan_sum: bool = True
    lr: float = Field(1e-5, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float | None = Field(1.0, gt=0.0)
    epochs: float = Field(5.0, gt=0.0)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    seed: Seed = 0
    save_every: int = Field(50, ge=1)
    #: activation checkpointing of the decoder blocks (transformers' own): every block, or only the
    #: first ``checkpoint_blocks`` of them (each recomputed block costs one more forward of it).
    gradient_checkpointing: bool = False
    checkpoint_blocks: int | None = Field(None, ge=1)
    #: recompute norms, the MLP's activation function and (for a LoRA down_proj) the MLP's product
    #: in backward instead of storing them (exact; training/memory.py): less activation memory for
    #: little extra time.
    recompute_pointwise: bool = False
    #: regional ``torch.compile`` of every decoder block (training/memory.py, ``compile_blocks``):
    #: fused pointwise kernels, and a backward that recomputes pointwise values instead of storing
    #: them. Not bit-exact (fused kernels round differently); the first steps pay the compilation.
    compile_blocks: bool = False
    max_length: int = Field(512, ge=8)
    retain_ratio: float = Field(1.0, gt=0.0)
    #: reduction of every CE term (retain, finetune): "token_mean" = per response token;
    #: "sequence_sum" = per-sequence sum averaged over the batch (the paper's -E log pi(y|x), the
    #: scale of NPO's summed log-probs). docs/training.md, "Loss scale".
    ce_reduction: Literal["token_mean", "sequence_sum"] = "token_mean"
    #: rows of the LM head computed at once for log-probs; 0 = plain full-logit log-softmax.
    logprob_chunk_size: int = Field(1024, ge=0)
    system_prompt: str | None = None
    #: Experiment trackers that also receive the logged metrics, through accelerate: "tensorboard"
    #: (event files in ``out_dir/tensorboard``), "wandb" (offline unless ``WANDB_MODE`` is set).
    #: It does not change the trained weights: a run resumes and a study keeps its keys across it.
    log_with: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _method_args(cls, data: Any) -> Any:
        """Validate every method_args entry and fill the active method's defaults."""
        from .objectives import objective_class, parse_args

        if not isinstance(data, dict):
            return data
        method = data.get("method", "npo")
        try:
            objective_class(method)
        except ValueError as e:
            raise ValueError(f"method: {e}") from None
        given = data.get("method_args") or {}
        if not isinstance(given, dict):
            raise ValueError("method_args: expected a mapping {method: {argument: value}}")
        args = {name: parse_args(name, a or {}).model_dump() for name, a in given.items()}
        args.setdefault(method, parse_args(method, {}).model_dump())
        return {**data, "method_args": args}

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        from .objectives import objective_class

        cls = objective_class(self.method)
        if cls.trains and self.args.weight == 0 and self.w2 == 0:
            raise ValueError(f"method_args.{self.method}.weight and w2 are both 0: nothing to train")
        if cls.retain == "required" and self.w2 == 0:
            raise ValueError(f"w2: method {self.method} needs its retain term (w2 > 0)")
        if cls.retain == "none" and self.w2 > 0:
            raise ValueError(f"w2: method {self.method} has no retain term (w2 must be 0)")
        if self.checkpoint_blocks is not None and not self.gradient_checkpointing:
            raise ValueError("checkpoint_blocks: set gradient_checkpointing: true as well (it picks which blocks)")
        if self.compile_blocks and self.recompute_pointwise:
            raise ValueError("compile_blocks: drop recompute_pointwise (the compiled backward recomputes pointwise "
                             "values itself)")
        if self.full and not cls.full_rank:
            raise ValueError(f"full: method {self.method} needs LoRA (its frozen model is the adapter-disabled one)")
        return self

    def weights_config(self, mode: Literal["python", "json"] = "python") -> dict:
        """The dump of every field that decides the trained weights (all but ``log_with``).

        ``compile_blocks`` enters only when set, so the keys and resumable checkpoints of eager runs
        stay as they were before it existed."""
        return self.model_dump(mode=mode, exclude={"log_with"} | (set() if self.compile_blocks else {"compile_blocks"}))

    def trained_like(self, saved: dict | None) -> bool:
        """Whether a checkpoint's saved ``config`` (a full ``model_dump``) decides the same weights as this one."""
        saved = {k: v for k, v in (saved or {}).items() if k != "log_with"}
        if not saved.get("compile_blocks", False):
            saved.pop("compile_blocks", None)
        return saved == self.weights_config()

    @property
    def args(self):
        """The active method's arguments (its ``Args`` model)."""
        from .objectives import parse_args

        return parse_args(self.method, self.method_args[self.method])

    @property
    def retain_batch_size(self) -> int:
        return max(1, round(self.batch_size * self.retain_ratio))
