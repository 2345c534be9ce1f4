"""A gated MLP's ``down(act(gate) * up)`` for a peft LoRA down_proj, without keeping the product.

``h = act(gate) * up`` (B, T, I) is what the down_proj's LoRA A matmul keeps for its weight
gradient. ``down_from_gate_up`` keeps gate and up (B, T, I) instead, which the activation's
backward needs anyway, and the small z = h A^T (B, T, r), and recomputes h in backward: pointwise
work only, no matmul is rerun. Loss and gradients equal peft's own forward bit for bit (the same
ops on the same values; backward replays autograd's formulas for ``F.linear``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _GatedLoraDown(torch.autograd.Function):
    """y = h W^T (+ bias) + (h A^T) B^T * scaling with h = act(gate) * up.

    gate, up (B, T, I); a (r, I), b (D, r): the adapter; w (D, I), bias (D,) or None: the frozen
    base layer; y (B, T, D).
    """

    @staticmethod
    def forward(ctx, gate, up, a, b, w, bias, act, scaling):
        h = act(gate) * up
        z = F.linear(h, a)
        ctx.save_for_backward(gate, up, a, b, w, z)
        ctx.act, ctx.scaling = act, scaling
        return F.linear(h, w, bias) + F.linear(z, b) * scaling

    @staticmethod
    def backward(ctx, dy):
        gate, up, a, b, w, z = ctx.saved_tensors
        needs = ctx.needs_input_grad
        with torch.enable_grad():
            g = gate.detach().requires_grad_(needs[0])
            u = up.detach().requires_grad_(needs[1])
            h = ctx.act(g) * u
        dy2 = dy.reshape(-1, dy.shape[-1])                            # (BT, D)
        dlo = (dy * ctx.scaling).reshape(dy2.shape)                   # (BT, D)
        dz = dlo.mm(b)                                                # (BT, r)
        da = dz.t().mm(h.detach().reshape(-1, h.shape[-1])) if needs[2] else None
        db = dlo.t().mm(z.reshape(-1, z.shape[-1])) if needs[3] else None
        grads = dict.fromkeys((0, 1))
        wanted = [i for i, t in enumerate((g, u)) if t.requires_grad]
        if wanted:
            dh = (dy2.mm(w) + dz.mm(a)).view(h.shape)                 # (B, T, I)
            got = torch.autograd.grad(h, [(g, u)[i] for i in wanted], dh)
            grads.update(zip(wanted, got))
        return grads[0], grads[1], da, db, None, None, None, None


def _hooked(*modules: torch.nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def lora_down_parts(down: torch.nn.Module):
    """(A, B, W, bias, scaling) of ``down`` when it is a peft ``lora.Linear`` this path supports, else None.

    Supported: one active adapter, no dropout, no DoRA or other variant, no LoRA bias, a frozen
    ``nn.Linear`` base, no forward hooks on any of its modules.
    """
    from peft.tuners.lora import Linear as LoraLinear

    if not isinstance(down, LoraLinear) or down.disable_adapters or down.merged:
        return None
    active = [n for n in down.active_adapters if n in down.lora_A]
    if len(active) != 1:
        return None
    name = active[0]
    base, lora_a, lora_b = down.get_base_layer(), down.lora_A[name], down.lora_B[name]
    if (name in getattr(down, "lora_variant", {}) or getattr(down, "use_dora", {}).get(name)
            or not isinstance(down.lora_dropout[name], torch.nn.Identity)
            or type(base) is not torch.nn.Linear or lora_a.bias is not None or lora_b.bias is not None
            or base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad)
            or _hooked(down, base, lora_a, lora_b)):
        return None
    return lora_a.weight, lora_b.weight, base.weight, base.bias, down.scaling[name]


def down_from_gate_up(down: torch.nn.Module, act, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor | None:
    """``down(act(gate) * up)`` (B, T, D) keeping gate and up but not the product; None where unsupported.

    Unsupported: ``down`` not accepted by ``lora_down_parts``, or dtypes that peft or autocast would
    cast (gate, up, A, B, W and the bias must share one dtype, autocast off or in that dtype).
    """
    parts = lora_down_parts(down)
    if parts is None:
        return None
    a, b, w, bias, scaling = parts
    kind = gate.device.type
    autocast = torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) != gate.dtype
    dtypes = {t.dtype for t in (gate, up, a, b, w, bias) if t is not None}
    if autocast or dtypes != {gate.dtype}:
        return None
    return _GatedLoraDown.apply(gate, up, a, b, w, bias, act, scaling)
