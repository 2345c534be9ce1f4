"""Summed response-token log-probs without the full (B, T, V) fp32 log-softmax.

The model runs once with ``logits_to_keep=1`` (so the LM head sees one position), a forward
hook takes the decoder's final hidden states (B, T, D), and only the labelled positions go
through the LM head, ``chunk_size`` rows at a time. Each chunk is wrapped in activation
checkpointing, so backward also holds one (chunk, V) block at a time: memory is O(chunk x V)
instead of O(B x T x V).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..generation.base import render_chat
from .examples import IGNORE


def unwrap(model):
    """The underlying transformers CausalLM of a DDP/peft-wrapped model (LoRA layers stay injected)."""
    while hasattr(model, "module"):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def supports_chunked(model) -> bool:
    """False for heads that transform logits (softcapping, scaling): those need the naive path."""
    cfg = unwrap(model).config
    cfg = getattr(cfg, "text_config", None) or cfg
    return not any(getattr(cfg, k, None) not in (None, 1.0) for k in
                   ("final_logit_softcapping", "logit_scale", "logits_scaling"))


def response_token_counts(labels: torch.Tensor) -> torch.Tensor:
    """Number of scored response tokens per sequence, (B,)."""
    return (labels[:, 1:] != IGNORE).sum(dim=1)


def _chunk_logprobs(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None) -> torch.Tensor:
    """log p(target) for rows of hidden (n, D) -> (n,) fp32."""
    logits = F.linear(hidden, weight, bias).float()  # (n, V)
    return logits.gather(1, targets[:, None]).squeeze(1) - torch.logsumexp(logits, dim=1)


def naive_sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                            labels: torch.Tensor) -> torch.Tensor:
    """Reference implementation: full-logit log-softmax, summed over labelled tokens -> (B,)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE
    lp = torch.log_softmax(logits, dim=-1).gather(2, targets.clamp(min=0)[..., None]).squeeze(-1)
    return (lp * mask).sum(dim=1)


def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                      chunk_size: int = 1024, sync_free: bool | None = None) -> torch.Tensor:
    """Sum of log p(response token) per sequence, (B,) fp32.

    input_ids, attention_mask, labels: (B, T); labels are -100 on prompt and padding (the token
    at t is scored by the logits at t-1). ``chunk_size`` <= 0, or a model whose head transforms
    logits, uses the naive full-logit path. ``sync_free`` (default: on CUDA) runs the head over
    every position and zeroes the unlabelled ones, instead of first selecting the labelled rows:
    selecting by a mask makes the host wait for the GPU, which leaves a launch-bound step idle;
    on a CPU the selection saves the head's work on prompt and padding rows.
    """
    if chunk_size <= 0 or not supports_chunked(model):
        return naive_sequence_logprobs(model, input_ids, attention_mask, labels)
    lm = unwrap(model)
    decoder = lm.get_decoder()
    head = lm.get_output_embeddings()
    captured: list[torch.Tensor] = []

    def grab(_module, _inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    handle = decoder.register_forward_hook(grab)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, logits_to_keep=1)
    finally:
        handle.remove()
    hidden = captured[-1][:, :-1]  # (B, T-1, D)
    targets = labels[:, 1:]
    mask = targets != IGNORE
    sync_free = input_ids.is_cuda if sync_free is None else sync_free
    if sync_free:
        rows, tgt = hidden.reshape(-1, hidden.shape[-1]), targets.clamp(min=0).reshape(-1)  # (B*(T-1), D)
    else:
        rows, tgt = hidden[mask], targets[mask]  # (N, D), (N,): labelled positions only
    use_ckpt = torch.is_grad_enabled() and (rows.requires_grad or head.weight.requires_grad)
    parts = []
    for start in range(0, rows.shape[0], chunk_size):
        args = (rows[start:start + chunk_size], tgt[start:start + chunk_size], head.weight, head.bias)
        parts.append(checkpoint(_chunk_logprobs, *args, use_reentrant=False) if use_ckpt
                     else _chunk_logprobs(*args))
    token_lp = torch.cat(parts) if parts else rows.new_zeros(0, dtype=torch.float32)
    if sync_free:
        return (token_lp.view(mask.shape) * mask).sum(dim=1)
    owner = mask.nonzero()[:, 0]  # (N,) sequence of each row
    return torch.zeros(input_ids.shape[0], dtype=torch.float32, device=input_ids.device).index_add(0, owner, token_lp)


@torch.no_grad()
def next_token_logprobs(model, tokenizer, prompts: list[str], batch_size: int = 8,
                        system_prompt: str | None = None):
    """Yield, batch by batch, log-softmax (b, V) fp32 of the first response token of each prompt.

    Each prompt is rendered as a user turn with the chat template and the generation prompt,
    left-padded, and only the last position's logits are computed.
    """
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [render_chat(tokenizer, p, system_prompt) for p in prompts[start:start + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            logits = model(**enc, use_cache=False, logits_to_keep=1).logits[:, -1].float()
            yield torch.log_softmax(logits, dim=-1)
    finally:
        tokenizer.padding_side = side
