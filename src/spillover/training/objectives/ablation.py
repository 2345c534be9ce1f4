"""Refusal-direction ablation of one domain (Arditi et al. 2024, "Refusal in language models is
mediated by a single direction"), training-free.

Direction: at hidden-state index ``l`` (the output of decoder block l, 1-based) and the last token
of the chat-templated prompt (the position that predicts the first response token;
``spillover.concepts.extract``), the difference of means of the main set's prompts (the target
domain's prompts the model refused) minus the contrast (benign) prompts, normalised
(``spillover.concepts.vectors.diffmean_concept_vectors``).

Layer rule, from those prompts only (the train split): the main and contrast prompts are split by
position into even and odd halves; at each candidate index 1 .. floor(max_layer_fraction x L)
(never L, which is after the final norm) the direction is fitted on the even halves and scored by
Cohen's d of the odd halves' projections on it (main minus contrast mean over the pooled standard
deviation); the largest d wins, the earlier index on ties, and the direction is refitted there on
all prompts. ``max_layer_fraction`` 0.8 follows the paper, which discards directions from the last
fifth of the layers.

Ablation by weight orthogonalisation: every matrix that writes into the residual stream (the token
embedding, each block's attention output and MLP down projections) becomes W - r r^T W (a bias
b - r r^T b), so no write has a component along r and neither does the residual stream, at every
layer and position: the same as projecting r out of every write at inference, in a plain model
that every backend loads. A tied LM head is untied first and keeps the original embedding, so the
outputs change only through the residual stream.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import Field

from ...io import InputError
from .base import Edit, EditArgs

#: Residual-stream writers of a decoder block (Llama-style: Qwen2, Llama, Mistral).
WRITERS = ("self_attn.o_proj", "mlp.down_proj")


def separation(main: np.ndarray, contrast: np.ndarray, direction: np.ndarray) -> float:
    """Cohen's d of the projections on ``direction`` (D,): main (N, D) minus contrast (M, D) means
    over the pooled standard deviation sqrt((var_main + var_contrast) / 2), variances with ddof 1."""
    a, b = main @ direction, contrast @ direction
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float((a.mean() - b.mean()) / max(pooled, 1e-12))


def choose_layer(main: np.ndarray, contrast: np.ndarray, candidates: list[int]) -> tuple[int, dict[int, float]]:
    """(best index, {index: held-out Cohen's d}) over ``candidates`` of states (L+1, N, D) and (L+1, M, D).

    Directions from the even positions, scored on the odd ones (the module docstring's rule).
    """
    from ...concepts.vectors import diffmean_concept_vectors

    fit = diffmean_concept_vectors(main[candidates, 0::2], contrast[candidates, 0::2])  # (C, D)
    scores = {layer: round(separation(main[layer, 1::2].astype(np.float64), contrast[layer, 1::2].astype(np.float64),
                                      fit[i]), 4)
              for i, layer in enumerate(candidates)}
    return max(candidates, key=lambda layer: (scores[layer], -layer)), scores


def writers(model) -> list[torch.nn.Module]:
    """The modules whose outputs are added to the residual stream: the token embedding, then each
    block's WRITERS; an architecture without them (or with a norm after them) is a ValueError."""
    blocks = model.get_decoder().layers
    out = [model.get_input_embeddings()]
    for i, block in enumerate(blocks):
        if hasattr(block, "post_feedforward_layernorm"):
            raise ValueError(f"{type(model).__name__}: block {i} normalises its MLP output before the residual "
                             "sum; orthogonalising its weights would not remove the direction")
        for name in WRITERS:
            try:
                out.append(block.get_submodule(name))
            except AttributeError:
                raise ValueError(f"{type(model).__name__}: decoder block {i} has no {name}; the ablation supports "
                                 f"Llama-style blocks ({', '.join(WRITERS)})") from None
    return out


@torch.no_grad()
def orthogonalise(model, direction: torch.Tensor) -> int:
    """Remove ``direction`` (D,) from every residual-stream write of ``model`` in place; untie a tied
    LM head first (it keeps the original embedding). Returns how many modules were changed.

    Embedding rows e -> e - (e.r) r; a Linear (D, in) W -> W - r (r^T W), its bias b -> b - (b.r) r.
    Computed in fp32 and stored in each weight's dtype.
    """
    r = direction.float() / direction.float().norm()
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if head is not None and head.weight.data_ptr() == embedding.weight.data_ptr():
        head.weight = torch.nn.Parameter(head.weight.detach().clone())
        model.config.tie_word_embeddings = False
    mods = writers(model)
    for module in mods:
        w = module.weight
        r_ = r.to(w.device)
        w32 = w.float()
        if isinstance(module, torch.nn.Embedding):
            w.copy_(w32 - torch.outer(w32 @ r_, r_))
        else:
            w.copy_(w32 - torch.outer(r_, r_ @ w32))
        bias = getattr(module, "bias", None)
        if bias is not None:
            b32 = bias.float()
            bias.copy_(b32 - (b32 @ r_) * r_)
    return len(mods)


class Ablation(Edit):
    """Projects the target domain's refusal direction out of the residual stream (module docstring)."""

    class Args(EditArgs):
        layer: int | None = Field(None, ge=1, description="Hidden-state index of the direction (1 = first "
                                                           "block's output); None = the layer rule.")
        max_layer_fraction: float = Field(0.8, gt=0.0, le=1.0, description="The rule's candidates: indices up "
                                                                           "to this fraction of the blocks.")

    name = "ablation"

    def edit(self, model, tokenizer, main, contrast, batch_size, system_prompt) -> dict:
        from ...concepts.extract import extract_last_token_states
        from ...concepts.vectors import diffmean_concept_vectors

        n_layers = len(model.get_decoder().layers)
        prompts = [e.prompt for e in main]
        states = extract_last_token_states(model, tokenizer, prompts, batch_size, system_prompt=system_prompt)
        benign = extract_last_token_states(model, tokenizer, contrast, batch_size, system_prompt=system_prompt)
        if self.args.layer is not None:
            if self.args.layer >= n_layers:
                raise InputError(f"method_args.ablation.layer: {self.args.layer} is not below {n_layers} "
                                 f"(index {n_layers} is after the final norm)")
            layer, scores = self.args.layer, {}
        else:
            if min(len(prompts), len(contrast)) < 4:
                raise InputError(f"the ablation's layer rule needs at least 4 main and 4 contrast prompts "
                                 f"({len(prompts)} and {len(contrast)} given); set method_args.ablation.layer")
            candidates = list(range(1, min(n_layers - 1, math.floor(self.args.max_layer_fraction * n_layers)) + 1))
            if not candidates:
                raise InputError(f"method_args.ablation.max_layer_fraction: no candidate layer among "
                                 f"{n_layers} blocks (index {n_layers} is after the final norm)")
            layer, scores = choose_layer(states, benign, candidates)
        diff = states[layer].astype(np.float64).mean(0) - benign[layer].astype(np.float64).mean(0)
        direction = diffmean_concept_vectors(states[[layer]], benign[[layer]])[0]
        changed = orthogonalise(model, torch.from_numpy(direction))
        return {"layer": layer, "separation": {str(k): v for k, v in scores.items()},
                "mean_difference_norm": round(float(np.linalg.norm(diff)), 4), "modules": changed,
                "direction": [round(float(x), 6) for x in direction]}

    def describe(self) -> str:
        layer = "by rule" if self.args.layer is None else self.args.layer
        return f"ablate diff-of-means direction[layer={layer}, last prompt token](forget vs benign)"
