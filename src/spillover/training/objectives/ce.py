"""Finetuning: cross-entropy on the finetune set (the label model's compliant answers)."""

from __future__ import annotations

import torch

from .base import Batch, LossContext, Objective, Parts, ce_loss, response_tokens


class CE(Objective):
    """``weight`` x CE on the finetune set (logged as "ce")."""

    name = "ce"

    def main_loss(self, ctx: LossContext, batch: Batch) -> tuple[torch.Tensor, Parts]:
        part = ce_loss(ctx.logps(batch), response_tokens(batch), self.ce_reduction)
        return self.args.weight * part, {"ce": part.item()}

    def main_term(self) -> str:
        return f"CE[{self.ce_reduction}](finetune)"
