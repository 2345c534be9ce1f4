"""NPO (Zhang et al. 2024): negative preference optimisation on the forget set."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Batch, LossContext, MethodArgs, Objective, Parts


def npo_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Mean over the batch of -(2/beta) * log sigmoid(-beta * (log pi_theta(y|x) - log pi_ref(y|x))).

    policy_logps, ref_logps: (B,) summed response log-probs. At policy == ref the loss is
    (2/beta) * log 2 and its gradient lowers the policy log-prob; it saturates as the policy
    log-prob falls below the reference, which keeps NPO from collapsing like gradient ascent.
    """
    return (-(2.0 / beta) * F.logsigmoid(-beta * (policy_logps - ref_logps))).mean()


class NPO(Objective):
    """``weight`` x NPO on the forget set (logged as "npo")."""

    class Args(MethodArgs):
        beta: float = Field(0.1, gt=0.0, description="Inverse temperature (0.1: the NPO authors' default).")

    name = "npo"
    needs_reference = True

    def main_loss(self, ctx: LossContext, batch: Batch) -> tuple[torch.Tensor, Parts]:
        ref = ctx.reference_logps(batch)
        part = npo_loss(ctx.logps(batch), ref, self.args.beta)
        return self.args.weight * part, {"npo": part.item()}

    def main_term(self) -> str:
        return f"NPO[beta={self.args.beta:g}](forget)"
