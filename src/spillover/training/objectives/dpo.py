"""DPO (Rafailov et al. 2023) on (compliant answer, refusal) pairs of the target prompts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Batch, LossContext, MethodArgs, Objective, Parts


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float = 0.1) -> torch.Tensor:
    """Mean over the batch of -log sigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected))).

    All inputs (B,): summed response log-probs of the preferred (compliant) and rejected
    (refusal) responses under the policy and the reference. At policy == ref the loss is log 2.
    """
    return -F.logsigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()


class DPO(Objective):
    """``weight`` x DPO, preferred = the label model's compliant answer, rejected = the model's refusal.

    Main batches carry the pair: the preferred response under the plain keys and the refusal
    under ``rejected_*``. Logged as "dpo".
    """

    class Args(MethodArgs):
        beta: float = Field(0.1, gt=0.0, description="Inverse temperature of the implicit reward.")

    name = "dpo"
    needs_reference = True
    sequences = ("", "rejected_")

    def main_loss(self, ctx: LossContext, batch: Batch) -> tuple[torch.Tensor, Parts]:
        ref_c, ref_r = ctx.reference_logps(batch), ctx.reference_logps(batch, "rejected_")
        part = dpo_loss(ctx.logps(batch), ctx.logps(batch, "rejected_"), ref_c, ref_r, self.args.beta)
        return self.args.weight * part, {"dpo": part.item()}

    def main_term(self) -> str:
        return f"DPO[beta={self.args.beta:g}](compliant > refusal)"
