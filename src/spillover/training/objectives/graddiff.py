"""Gradient difference: gradient ascent on the forget set plus CE on the retain set."""

from __future__ import annotations

import torch

from .base import Batch, LossContext, Objective, Parts


def gradient_ascent_loss(policy_logps: torch.Tensor) -> torch.Tensor:
    """Mean summed response log-prob, mean_i log pi(y_i|x_i); minimising it ascends the NLL.

    policy_logps: (B,) summed response log-probs. Unbounded below (the forget responses can be
    pushed to log-prob -inf), which is why the retain term is required.
    """
    return policy_logps.mean()


class GradDiff(Objective):
    """``weight`` x mean log pi(forget) + w2 x CE(retain); logged as "ga" (the mean log-prob) and "retain_ce"."""

    name = "graddiff"
    retain = "required"

    def main_loss(self, ctx: LossContext, batch: Batch) -> tuple[torch.Tensor, Parts]:
        part = gradient_ascent_loss(ctx.logps(batch))
        return self.args.weight * part, {"ga": part.item()}

    def main_term(self) -> str:
        return "GA(forget)"
