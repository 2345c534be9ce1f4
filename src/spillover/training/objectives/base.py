"""The method interface, method arguments, and the cross-entropy every method can use.

A method is an ``Objective`` (trained) or an ``Edit`` (training-free), both ``Method``s. An
objective turns batches into a loss through a ``LossContext`` (the trainer): policy and
reference log-probs of the responses, and hidden states of one decoder layer. The trainer runs
``main_loss`` on each main-set micro-batch and ``retain_loss`` on each retain micro-batch, each
with its own backward; every entry of the returned parts dict is logged to train_log.jsonl. An
edit changes the weights once, from the main set's prompts and contrast prompts, with no
optimiser steps (``spillover.training.edits``).

CE is reduced per ``ce_reduction``: "token_mean" averages over the batch's response tokens;
"sequence_sum" (the paper's -E log pi(y|x)) sums each response's token losses and averages over
sequences, the scale of NPO's summed log-probs, so w2 weighs the retain term against NPO as written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal, Protocol

import torch
from pydantic import Field

from ...config import StrictModel
from ..examples import Example

Reduction = Literal["token_mean", "sequence_sum"]
Batch = dict[str, torch.Tensor]
Parts = dict[str, float]


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


class LossContext(Protocol):
    """What an objective may ask of the model (the trainer implements it).

    ``prefix`` picks a second sequence of the batch: ``"rejected_"`` reads
    ``rejected_input_ids`` / ``rejected_attention_mask`` / ``rejected_labels`` (preference pairs).
    """

    num_layers: int

    def logps(self, batch: Batch, prefix: str = "") -> torch.Tensor:
        """Policy summed response log-probs (B,), with grad."""

    def reference_logps(self, batch: Batch, prefix: str = "") -> torch.Tensor:
        """Frozen-model summed response log-probs (B,), without grad."""

    def hidden(self, batch: Batch, layer: int) -> torch.Tensor:
        """Policy output of decoder block ``layer`` (B, T, D), with grad."""

    def reference_hidden(self, batch: Batch, layer: int) -> torch.Tensor:
        """Frozen-model output of decoder block ``layer`` (B, T, D), without grad."""


def response_tokens(batch: Batch, prefix: str = "") -> torch.Tensor:
    """Scored response tokens per sequence (B,) (labels are shifted: position t scores token t)."""
    return (batch[f"{prefix}labels"][:, 1:] != -100).sum(dim=1)


class MethodArgs(StrictModel):
    """Arguments every method takes; a method's own ``Args`` subclass adds its fields."""

    weight: float = Field(1.0, ge=0.0, description="Weight of the main-set term (the paper's w1 / w3).")


class EditArgs(StrictModel):
    """Arguments every training-free method takes; a method's own ``Args`` subclass adds its fields."""

    n_contrast: int = Field(128, ge=1, description="Contrast prompts the edit reads: the first n given (a study "
                                                   "gives its benign train prompts).")


class Method(ABC):
    """What every registered method declares; ``Objective`` (trained) and ``Edit`` (training-free) fill it in.

    Class attributes declare what the trainer must provide: ``needs_reference`` (a frozen model:
    the LoRA adapter disabled, or cached log-probs in full-rank runs), ``retain`` ("optional":
    used when w2 > 0; "required": w2 > 0 is a config error otherwise; "none": w2 > 0 is a config
    error), ``sequences`` (batch prefixes of the main set's sequences: ``("", "rejected_")`` for
    pairs) and ``full_rank`` (False: the frozen model is only available as the adapter-disabled
    LoRA model). ``trains`` is False for methods that take no optimiser step.
    """

    name: ClassVar[str]
    Args: ClassVar[type[StrictModel]] = MethodArgs
    trains: ClassVar[bool] = True
    needs_reference: ClassVar[bool] = False
    retain: ClassVar[Literal["optional", "required", "none"]] = "optional"
    sequences: ClassVar[tuple[str, ...]] = ("",)
    full_rank: ClassVar[bool] = True

    def __init__(self, args: StrictModel | None = None, retain_weight: float = 0.0,
                 ce_reduction: Reduction = "token_mean"):
        self.args = args if args is not None else self.Args()
        self.retain_weight = retain_weight
        self.ce_reduction = ce_reduction

    @property
    def uses_retain(self) -> bool:
        return self.retain_weight > 0

    @property
    def pairs(self) -> bool:
        """Whether main-set examples are (preferred, rejected) pairs."""
        return len(self.sequences) > 1

    @abstractmethod
    def describe(self) -> str:
        """What the run does to the weights, as a formula (recorded in run.json and the manifest)."""


class Objective(Method):
    """One trained method: a loss on the main set, and (``retain_weight`` > 0) on the retain set."""

    @abstractmethod
    def main_loss(self, ctx: LossContext, batch: Batch) -> tuple[torch.Tensor, Parts]:
        """Weighted loss on a main-set batch and its logged (unweighted) parts."""

    @abstractmethod
    def main_term(self) -> str:
        """The main-set term of ``describe``, e.g. "NPO[beta=0.1](forget)"."""

    def retain_loss(self, ctx: LossContext, batch: Batch) -> tuple[torch.Tensor, Parts]:
        """``retain_weight`` x CE on a retain-set batch, logged as "retain_ce"."""
        part = ce_loss(ctx.logps(batch), response_tokens(batch), self.ce_reduction)
        return self.retain_weight * part, {"retain_ce": part.item()}

    def retain_term(self) -> str:
        return f"CE[{self.ce_reduction}](retain)"

    def describe(self) -> str:
        """The loss as a formula, e.g. "1 * NPO[beta=0.1](forget) + 1 * CE[sequence_sum](retain)"."""
        text = f"{self.args.weight:g} * {self.main_term()}"
        return text + (f" + {self.retain_weight:g} * {self.retain_term()}" if self.uses_retain else "")


class Edit(Method):
    """A training-free method: one change of the weights, computed from the main set and contrast prompts.

    The trainer loads the plain model (fp32 when ``full_dtype`` is fp32), calls ``edit`` once and
    saves the edited model as full weights in checkpoint-1 (step 1 = after the edit), which every
    generation backend loads like any local model; diagnostics run at steps 0 and 1. LoRA and
    optimiser settings do not apply.
    """

    Args: ClassVar[type[StrictModel]] = EditArgs
    trains = False
    retain = "none"

    @abstractmethod
    def edit(self, model, tokenizer, main: list[Example], contrast: list[str], batch_size: int,
             system_prompt: str | None) -> dict:
        """Edit ``model`` (a transformers CausalLM) in place and return what to record (JSON values).

        ``main``: the main set's ``Example``s (their prompts); ``contrast``: at most
        ``args.n_contrast`` contrast prompts; both are rendered with ``system_prompt``.
        """
