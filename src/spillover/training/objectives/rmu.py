"""RMU (Li et al. 2024, WMDP): steer one layer's states on the forget set to a random direction.

Forget batches: the states of decoder block ``layer`` move toward ``steering_coef * u``, ``u`` a
fixed random unit vector (uniform [0, 1) entries, normalised, from ``seed``). Retain batches:
the states stay at the frozen (adapter-disabled) model's. Both terms are mean squared errors
over every real token of the chat-formatted example (prompt and response) and the hidden size.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .base import Batch, LossContext, MethodArgs, Objective, Parts


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (hidden - target)^2 over the positions where ``mask`` is 1 and the hidden size.

    hidden: (B, T, D); target: (B, T, D) or (D,); mask: (B, T) attention mask.
    """
    m = mask.to(hidden.dtype)[..., None]
    return (((hidden.float() - target.float()) ** 2) * m).sum() / (m.sum().clamp(min=1) * hidden.shape[-1])


def random_direction(dim: int, seed: int) -> torch.Tensor:
    """A fixed random unit vector (dim,): uniform [0, 1) entries from ``seed``, normalised."""
    u = torch.rand(dim, generator=torch.Generator().manual_seed(seed))
    return u / u.norm()


class RMU(Objective):
    """``weight`` x MSE(h_forget, c u) + w2 x MSE(h_retain, h_frozen); logged "rmu" and "retain_mse"."""

    class Args(MethodArgs):
        layer: int | None = Field(None, ge=0, description="Decoder block whose output is steered; "
                                                           "None = the middle one (num_layers // 2).")
        steering_coef: float = Field(20.0, gt=0.0, description="c: the norm of the forget states' target.")
        seed: int = Field(0, ge=0, description="Seed of the random direction u.")

    name = "rmu"
    needs_reference = True
    retain = "required"
    full_rank = False

    def layer(self, ctx: LossContext) -> int:
        return ctx.num_layers // 2 if self.args.layer is None else self.args.layer

    def main_loss(self, ctx: LossContext, batch: Batch) -> tuple[torch.Tensor, Parts]:
        hidden = ctx.hidden(batch, self.layer(ctx))
        target = self.args.steering_coef * random_direction(hidden.shape[-1], self.args.seed).to(hidden.device)
        part = masked_mse(hidden, target, batch["attention_mask"])
        return self.args.weight * part, {"rmu": part.item()}

    def retain_loss(self, ctx: LossContext, batch: Batch) -> tuple[torch.Tensor, Parts]:
        layer = self.layer(ctx)
        frozen = ctx.reference_hidden(batch, layer)
        part = masked_mse(ctx.hidden(batch, layer), frozen, batch["attention_mask"])
        return self.retain_weight * part, {"retain_mse": part.item()}

    def main_term(self) -> str:
        layer = "middle" if self.args.layer is None else self.args.layer
        return f"RMU[layer={layer}, c={self.args.steering_coef:g}](forget)"

    def retain_term(self) -> str:
        return "MSE[frozen states](retain)"
