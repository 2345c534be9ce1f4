"""Training objectives: NPO on the forget set, cross-entropy, and their weighted sums.

    unlearn              = w1 * NPO(D_R)
    augmented unlearn    = w1 * NPO(D_R) + w2 * CE(D_T)
    finetune             = w3 * CE(D_C)
    augmented finetune   = w3 * CE(D_C) + w2 * CE(D_T)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F


def npo_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Mean over the batch of -(2/beta) * log sigmoid(-beta * (log pi_theta(y|x) - log pi_ref(y|x))).

    policy_logps, ref_logps: (B,) summed response log-probs. At policy == ref the loss is
    (2/beta) * log 2 and its gradient lowers the policy log-prob; it saturates as the policy
    log-prob falls below the reference, which keeps NPO from collapsing like gradient ascent.
    """
    return (-(2.0 / beta) * F.logsigmoid(-beta * (policy_logps - ref_logps))).mean()


def ce_loss(seq_logps: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """Mean token-level cross-entropy over the batch's response tokens.

    seq_logps: (B,) summed response log-probs; n_tokens: (B,) response token counts.
    """
    return -seq_logps.sum() / n_tokens.sum().clamp(min=1)


@dataclass(frozen=True)
class Objective:
    """What one training step minimises.

    kind "unlearn": ``main_weight`` * NPO on the main (forget) set; kind "finetune":
    ``main_weight`` * CE on the main (finetune) set. ``retain_weight`` > 0 adds that weight
    times CE on the retain set (the augmented variants).
    """

    kind: Literal["unlearn", "finetune"]
    main_weight: float = 1.0
    retain_weight: float = 0.0
    beta: float = 0.1

    @classmethod
    def from_config(cls, cfg) -> "Objective":
        """From a TrainConfig: method npo -> unlearn (w1), ce -> finetune (w3); retain weight w2."""
        if cfg.method == "npo":
            return cls("unlearn", cfg.w1, cfg.w2, cfg.beta)
        return cls("finetune", cfg.w3, cfg.w2, cfg.beta)

    @property
    def needs_reference(self) -> bool:
        return self.kind == "unlearn"

    @property
    def uses_retain(self) -> bool:
        return self.retain_weight > 0

    def main_loss(self, logps: torch.Tensor, n_tokens: torch.Tensor,
                  ref_logps: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted loss on a main-set batch and its logged parts ("npo" or "ce")."""
        if self.kind == "unlearn":
            if ref_logps is None:
                raise ValueError("NPO needs reference log-probs")
            part = npo_loss(logps, ref_logps, self.beta)
            return self.main_weight * part, {"npo": part.item()}
        part = ce_loss(logps, n_tokens)
        return self.main_weight * part, {"ce": part.item()}

    def retain_loss(self, logps: torch.Tensor, n_tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted CE on a retain-set batch and its logged part ("retain_ce")."""
        part = ce_loss(logps, n_tokens)
        return self.retain_weight * part, {"retain_ce": part.item()}
