"""SimNPO (Fan et al. 2024, "Simplicity Prevails"): reference-free, length-normalised NPO."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Batch, LossContext, MethodArgs, Objective, Parts, response_tokens


def simnpo_loss(policy_logps: torch.Tensor, n_tokens: torch.Tensor, beta: float = 4.5,
                gamma: float = 0.0) -> torch.Tensor:
    """Mean over the batch of -(2/beta) * log sigmoid(-(beta/|y|) * log pi(y|x) - gamma).

    policy_logps: (B,) summed response log-probs; n_tokens: (B,) response lengths |y|.
    open-unlearning writes the margin as delta = gamma / beta.
    """
    return (-(2.0 / beta) * F.logsigmoid(-(beta / n_tokens.clamp(min=1)) * policy_logps - gamma)).mean()


class SimNPO(Objective):
    """``weight`` x SimNPO on the forget set (logged as "simnpo"); no reference model."""

    class Args(MethodArgs):
        beta: float = Field(4.5, gt=0.0, description="Inverse temperature (4.5: open-unlearning's default).")
        gamma: float = Field(0.0, ge=0.0, description="Reward margin (0 in the paper's TOFU runs).")

    name = "simnpo"

    def main_loss(self, ctx: LossContext, batch: Batch) -> tuple[torch.Tensor, Parts]:
        part = simnpo_loss(ctx.logps(batch), response_tokens(batch), self.args.beta, self.args.gamma)
        return self.args.weight * part, {"simnpo": part.item()}

    def main_term(self) -> str:
        return f"SimNPO[beta={self.args.beta:g}, gamma={self.args.gamma:g}](forget)"
