"""Training objectives: NPO on the forget set, cross-entropy, and their weighted sums.

    unlearn              = w1 * NPO(D_R)
    augmented unlearn    = w1 * NPO(D_R) + w2 * CE(D_T)
    finetune             = w3 * CE(D_C)
    augmented finetune   = w3 * CE(D_C) + w2 * CE(D_T)

CE is reduced per ``ce_reduction``: "token_mean" averages over the batch's response tokens;
"sequence_sum" (the paper's -E log pi(y|x)) sums each response's token losses and averages over
sequences, the scale of NPO's summed log-probs, so w2 weighs the retain term against NPO as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["token_mean", "sequence_sum"]


def npo_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Mean over the batch of -(2/beta) * log sigmoid(-beta * (log pi_theta(y|x) - log pi_ref(y|x))).

    policy_logps, ref_logps: (B,) summed response log-probs. At policy == ref the loss is
    (2/beta) * log 2 and its gradient lowers the policy log-prob; it saturates as the policy
    log-prob falls below the reference, which keeps NPO from collapsing like gradient ascent.
    """
    return (-(2.0 / beta) * F.logsigmoid(-beta * (policy_logps - ref_logps))).mean()


def ce_loss(seq_logps: torch.Tensor, n_tokens: torch.Tensor, reduction: Reduction = "token_mean") -> torch.Tensor:
    """Cross-entropy of the batch's responses: per response token ("token_mean") or per sequence.

    seq_logps: (B,) summed response log-probs; n_tokens: (B,) response token counts.
    "sequence_sum" = -mean_i log pi(y_i|x_i), about mean(n_tokens) times the token mean.
    """
    if reduction == "sequence_sum":
        return -seq_logps.mean()
    if reduction != "token_mean":
        raise ValueError(f"unknown CE reduction {reduction!r}")
    return -seq_logps.sum() / n_tokens.sum().clamp(min=1)


@dataclass(frozen=True)
class Objective:
    """What one training step minimises.

    kind "unlearn": ``main_weight`` * NPO on the main (forget) set; kind "finetune":
    ``main_weight`` * CE on the main (finetune) set. ``retain_weight`` > 0 adds that weight
    times CE on the retain set (the augmented variants). Every CE term uses ``ce_reduction``.
    """

    kind: Literal["unlearn", "finetune"]
    main_weight: float = 1.0
    retain_weight: float = 0.0
    beta: float = 0.1
    ce_reduction: Reduction = "token_mean"

    @classmethod
    def from_config(cls, cfg) -> "Objective":
        """From a TrainConfig: method npo -> unlearn (w1), ce -> finetune (w3); retain weight w2."""
        if cfg.method == "npo":
            return cls("unlearn", cfg.w1, cfg.w2, cfg.beta, cfg.ce_reduction)
        return cls("finetune", cfg.w3, cfg.w2, cfg.beta, cfg.ce_reduction)

    def describe(self) -> str:
        """The loss as a formula, e.g. "1 * NPO[beta=0.1](forget) + 1 * CE[sequence_sum](retain)"."""
        ce = f"CE[{self.ce_reduction}]"
        main = f"NPO[beta={self.beta:g}](forget)" if self.kind == "unlearn" else f"{ce}(finetune)"
        text = f"{self.main_weight:g} * {main}"
        return text + (f" + {self.retain_weight:g} * {ce}(retain)" if self.uses_retain else "")

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
        part = ce_loss(logps, n_tokens, self.ce_reduction)
        return self.main_weight * part, {"ce": part.item()}

    def retain_loss(self, logps: torch.Tensor, n_tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted CE on a retain-set batch and its logged part ("retain_ce")."""
        part = ce_loss(logps, n_tokens, self.ce_reduction)
        return self.retain_weight * part, {"retain_ce": part.item()}
