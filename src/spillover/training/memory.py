"""Activation memory of a training step: which activations backward keeps and which it recomputes.

Two settings, both exact (the recomputed values equal the stored ones bit for bit), through
``torch.utils.checkpoint`` (non-reentrant) and, for a LoRA down_proj, ``lora_mlp``:

- ``checkpoint_blocks(model, k)``: full activation checkpointing of the first ``k`` decoder blocks
  (transformers' own per-block checkpointing, switched off for the others). Each block stores
  only its input (B, T, D) and recomputes everything else; costs one more forward of those blocks.
- ``recompute_pointwise(model)``: keep the matmuls' activations, recompute the cheap pointwise
  ones. Every RMSNorm stores its (B, T, D) input instead of the fp32 copies its upcast makes, and
  a gated MLP ``down(act(gate(x)) * up(x))`` stores gate(x) and up(x) (B, T, I) but neither
  act(gate(x)) nor, where down is a peft LoRA layer (``lora_mlp.py``), the product act(gate(x)) *
  up(x) that the LoRA A matmul would keep: two (B, T, I) tensors per block instead of four, for
  the price of re-running norms, one activation function and one product in backward.
"""

from __future__ import annotations

import types

import torch
from torch.utils.checkpoint import checkpoint

from .logprobs import unwrap
from .lora_mlp import down_from_gate_up, lora_down_parts


def _gated(act, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return act(gate) * up


def _lean_norm_forward(self, hidden: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and hidden.requires_grad:
        return checkpoint(type(self).forward, self, hidden, use_reentrant=False)
    return type(self).forward(self, hidden)


def _lean_mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    gate, up = self.gate_proj(x), self.up_proj(x)
    if not (torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad)):
        return self.down_proj(_gated(self.act_fn, gate, up))
    y = down_from_gate_up(self.down_proj, self.act_fn, gate, up)
    if y is None:  # not a LoRA down_proj that lora_mlp supports: it keeps the product
        y = self.down_proj(checkpoint(_gated, self.act_fn, gate, up, use_reentrant=False))
    return y


def _is_gated_mlp(module: torch.nn.Module) -> bool:
    return all(hasattr(module, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn"))


def recompute_pointwise(model) -> dict[str, int]:
    """Make ``model``'s RMSNorms and gated MLPs recompute their pointwise activations in backward.

    Works on the instances (no class is changed). Returns how many modules of each kind were
    switched: {"norms": n, "mlps": m}; a model with neither raises ValueError.
    """
    counts = {"norms": 0, "mlps": 0}
    for module in unwrap(model).modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(_lean_norm_forward, module)
            counts["norms"] += 1
        elif _is_gated_mlp(module):
            module.forward = types.MethodType(_lean_mlp_forward, module)
            counts["mlps"] += 1
    if not any(counts.values()):
        raise ValueError(f"recompute_pointwise: {type(unwrap(model)).__name__} has no RMSNorm or gated MLP "
                         "module (gate_proj/up_proj/down_proj/act_fn)")
    return counts


def lean_lora_mlps(model) -> int:
    """How many of ``model``'s switched gated MLPs have a down_proj that ``lora_mlp`` supports.

    Those keep no act(gate) * up product, as long as their dtypes match at run time.
    """
    return sum(getattr(m.forward, "__func__", None) is _lean_mlp_forward and lora_down_parts(m.down_proj) is not None
               for m in unwrap(model).modules() if _is_gated_mlp(m))


def checkpoint_blocks(model, blocks: int | None = None) -> int:
    """Activation checkpointing of the first ``blocks`` decoder blocks (None: all); returns how many."""
    lm = unwrap(model)
    layers = lm.get_decoder().layers
    if blocks is not None and blocks > len(layers):
        raise ValueError(f"checkpoint_blocks: {blocks} blocks asked for, the model has {len(layers)}")
    lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    n = len(layers) if blocks is None else blocks
    for i, layer in enumerate(layers):
        if not hasattr(layer, "gradient_checkpointing"):
            raise ValueError(f"checkpoint_blocks: {type(layer).__name__} has no per-block checkpointing")
        layer.gradient_checkpointing = i < n
    return n


def compile_blocks(model) -> int:
    """Regional ``torch.compile`` of every decoder block of ``model`` in place; returns how many.

    One compiled graph serves all blocks (they share code and shapes); the embedding, the LM head
    and the loss stay eager. Apply after peft wrapping, so the adapters' matmuls and scale-adds
    are inside the compiled region.
    """
    layers = unwrap(model).get_decoder().layers
    for layer in layers:
        layer.compile()
    return len(layers)
