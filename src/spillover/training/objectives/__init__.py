"""Training methods, by name: one class per method (see base.Method), listed in OBJECTIVES.

Adding a method = a module with an ``Objective`` (trained) or ``Edit`` (training-free) subclass +
its entry below (docs/extending.md).
"""

from __future__ import annotations

from pydantic import ValidationError

from .ablation import Ablation
from .base import (Batch, Edit, EditArgs, LossContext, Method, MethodArgs, Objective, Reduction, ce_loss,
                   response_tokens)
from .ce import CE
from .dpo import DPO, dpo_loss
from .graddiff import GradDiff, gradient_ascent_loss
from .npo import NPO, npo_loss
from .rmu import RMU, masked_mse, random_direction
from .simnpo import SimNPO, simnpo_loss

OBJECTIVES: dict[str, type[Method]] = {cls.name: cls for cls in (NPO, CE, GradDiff, SimNPO, DPO, RMU, Ablation)}


def objective_class(name: str) -> type[Method]:
    """The registered class of method ``name``; unknown names are a ValueError listing the known ones."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (known: {', '.join(OBJECTIVES)})") from None


def parse_args(name: str, args: dict) -> MethodArgs | EditArgs:
    """Validate ``args`` against method ``name``'s Args; errors name the field (method_args.NAME.FIELD)."""
    try:
        return objective_class(name).Args.model_validate(args)
    except ValidationError as e:
        raise ValueError("; ".join(f"method_args.{name}.{'.'.join(map(str, x['loc']))}: {x['msg']}"
                                   for x in e.errors())) from None


def objective_for(cfg) -> Method:
    """The method of a TrainConfig: its class, that method's arguments, w2 and ce_reduction."""
    return objective_class(cfg.method)(cfg.args, cfg.w2, cfg.ce_reduction)


__all__ = ["CE", "DPO", "NPO", "OBJECTIVES", "RMU", "Ablation", "Batch", "Edit", "EditArgs", "GradDiff", "LossContext",
           "Method", "MethodArgs", "Objective", "Reduction", "SimNPO", "ce_loss", "dpo_loss", "gradient_ascent_loss",
           "masked_mse", "npo_loss", "objective_class", "objective_for", "parse_args", "random_direction",
           "response_tokens", "simnpo_loss"]
