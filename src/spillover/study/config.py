"""The study configuration: one YAML file describes the whole protocol."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..config import StrictModel
from ..data.suite import DataConfig
from ..domains import DOMAINS, Domain, parse_domains
from ..generation.base import Decoding
from ..models import DEFAULT_ALIGNED, DEFAULT_LABELER
from ..training.config import TrainConfig

Variant = Literal["unlearn", "finetune", "aug_unlearn", "aug_finetune"]
VARIANTS: tuple[str, ...] = ("unlearn", "finetune", "aug_unlearn", "aug_finetune")


class ModelsConfig(StrictModel):
    """Which models play which role, and where they run."""

    aligned: str = DEFAULT_ALIGNED
    labeler: str = Field(DEFAULT_LABELER, description="Unaligned model that writes finetuning labels.")
    target_labeler: dict[Domain, str] = Field(default_factory=dict,
                                              description="Per-target labeler overriding labeler (may be a base model).")
    device: str = "auto"
    dtype: str = "auto"
    backend: Literal["hf", "static"] = Field("hf", description="Generation backend; static = CUDA graphs (GPU).")
    batch_size: int = 8

    def labeler_for(self, target: str) -> str:
        return self.target_labeler.get(Domain(target), self.labeler)


class JudgesConfig(StrictModel):
    """The primary judge scores every response; the audit judge re-scores a random subsample."""

    primary: str = "keyword"
    per_set: dict[str, str] = Field(default_factory=lambda: {"bias": "bbq"},
                                    description="Judge spec per evaluation set, overriding primary.")
    audit: str | None = None
    audit_sample: int = 0
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_new_tokens: int = 96

    def spec_for(self, name: str) -> str:
        return self.per_set.get(name, self.primary)


class EvaluationConfig(StrictModel):
    """Test slices, decoding and the EMA threshold."""

    n_per_set: int | None = Field(None, description="First n prompts of each (seed-shuffled) test split; None = all.")
    sets: list[str] = Field(default_factory=lambda: [d.value for d in DOMAINS] + ["xstest"])
    mmlu_n: int | None = None
    mmlu_method: Literal["letter", "cloze"] = Field("letter", description="MMLU scoring (see spillover.mmlu).")
    decoding: Decoding = Field(default_factory=Decoding)
    ema_threshold: float = Field(15.0, description="Off-target refusal drop (points) flagged as EMA.")
    examples_per_set: int = 3


class CollectConfig(StrictModel):
    """Phase 1: forget, retain and finetune sets from the models' own responses."""

    n_target_train: int | None = Field(None, description="Cap on target-domain train prompts run for collection.")
    n_other_train: int | None = Field(None, description="Cap on each other domain's train prompts run for the retain set.")
    retain_ratio: int = Field(2, ge=1, description="Retain examples per forget example (paper tried 1, 2, 3).")
    benign_fraction: float = Field(0.5, ge=0.0, le=1.0, description="Share of the retain set that is benign instructions.")
    benign_responses: Literal["model", "dataset"] = "model"
    validation_n: int = Field(8, description="Held-out target train prompts used to pick checkpoints.")
    decoding: Decoding = Field(default_factory=Decoding)


class SelectionConfig(StrictModel):
    """Checkpoint selection: MMLU drop under max_mmlu_drop, then lowest target refusal."""

    max_mmlu_drop: float = 3.0
    mmlu_n: int | None = Field(40, description="MMLU questions (disjoint from evaluation's) scored per checkpoint.")
    kl_prompts: int = Field(16, description="Held-out test prompts per domain for first-token KL.")


class ConceptsConfig(StrictModel):
    enabled: bool = True
    n_per_domain: int = 200
    method: Literal["pca", "diffmean"] = "pca"
    layers: list[int] | None = None


class StudyConfig(StrictModel):
    """A whole study: targets x variants x seeds on one aligned model."""

    name: str
    targets: list[Domain] = Field(default_factory=lambda: [Domain.CYBERSECURITY])
    variants: list[Variant] = Field(default_factory=lambda: ["unlearn", "finetune"])
    seeds: list[int] = Field(default_factory=lambda: [0])
    output_dir: str = "runs"
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    judges: JudgesConfig = Field(default_factory=JudgesConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    collect: CollectConfig = Field(default_factory=CollectConfig)
    training: TrainConfig = Field(default_factory=TrainConfig)
    variant_training: dict[Variant, dict] = Field(default_factory=dict,
                                                  description="Per-variant overrides of training fields.")
    target_training: dict[Domain, dict] = Field(default_factory=dict,
                                                description="Per-target overrides (e.g. full-rank for safety).")
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    concepts: ConceptsConfig = Field(default_factory=ConceptsConfig)

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, v):
        return parse_domains(v)

    def training_for(self, variant: str, seed: int, target: str | None = None) -> TrainConfig:
        """The base training config with the variant's objective, the seed and overrides applied.

        unlearn = NPO on the forget set; aug_unlearn adds w2 * CE on the retain set; finetune =
        CE on the finetune labels; aug_finetune adds w2 * CE on the retain set. The retain weight
        comes from ``training.w2`` (a base value of 0 means 1 for the augmented variants). Per-target
        overrides apply first, then per-variant ones.
        """
        base = self.training.model_dump()
        w2 = base["w2"] or 1.0
        base.update(method="ce" if variant in ("finetune", "aug_finetune") else "npo",
                    w2=w2 if variant.startswith("aug_") else 0.0, seed=seed,
                    retain_ratio=float(self.collect.retain_ratio))
        if target is not None:
            base.update(self.target_training.get(Domain(target), {}))
        base.update(self.variant_training.get(variant, {}))
        return TrainConfig.model_validate(base)
