"""The variant table: every trained variant of a study, in one place.

A variant is a training objective (``spillover.training.objectives``) on a main set, with or
without the retain set. Study validation, stage keys, the planner, results and the report read
this table (it imports nothing heavy, so the report stays free of torch).

Main sets (``spillover.study.collect``): "forget" = the aligned model's refusals on the target
prompts; "finetune" = the label model's compliant answers to them; "pairs" = (compliant answer,
refusal) for the prompts that have both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MainSet = Literal["forget", "finetune", "pairs"]


@dataclass(frozen=True)
class VariantSpec:
    """One row of the table; ``retain`` True trains with ``w2`` times the retain term."""

    name: str
    method: str
    main: MainSet
    retain: bool
    label: str
    colour: str

    @property
    def needs_labels(self) -> bool:
        """Whether the label model's answers (the finetune set) are needed."""
        return self.main in ("finetune", "pairs")


VARIANT_TABLE: dict[str, VariantSpec] = {v.name: v for v in (
    VariantSpec("unlearn", "npo", "forget", False, "unlearn", "#d62728"),
    VariantSpec("finetune", "ce", "finetune", False, "finetune", "#ff7f0e"),
    VariantSpec("aug_unlearn", "npo", "forget", True, "aug. unlearn", "#1f77b4"),
    VariantSpec("aug_finetune", "ce", "finetune", True, "aug. finetune", "#2ca02c"),
    VariantSpec("graddiff", "graddiff", "forget", True, "grad. diff", "#9467bd"),
    VariantSpec("simnpo", "simnpo", "forget", False, "SimNPO", "#8c564b"),
    VariantSpec("dpo", "dpo", "pairs", False, "DPO", "#e377c2"),
    VariantSpec("rmu", "rmu", "forget", True, "RMU", "#17becf"),
    VariantSpec("ablation", "ablation", "forget", False, "dir. ablation", "#7f7f7f"),
)}
#: The untrained model's row in tables and figures.
ALIGNED = VariantSpec("aligned", "", "forget", False, "aligned", "#222222")


def variant_spec(name: str) -> VariantSpec:
    """The table row of ``name``; an unknown name is a ValueError listing the known ones."""
    try:
        return VARIANT_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r} (valid: {', '.join(VARIANT_TABLE)})") from None
