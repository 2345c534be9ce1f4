"""Hidden states at the last prompt token, for every layer, batched and cached on disk.

Position: each prompt is rendered with the tokenizer's own chat template as one user turn
(``add_generation_prompt=True``), so the rendered text ends with the assistant prefix. The state
kept is the one at the LAST token of that text, i.e. the position whose output predicts the
first response token. For ChatML models (Qwen2.5) this is the ``"\\n"`` after
``<|im_start|>assistant``. :func:`describe_position` names it for a given tokenizer.

Layers: index 0 is the token embedding, index ``l`` (1..L) the output of decoder layer ``l``, as
transformers returns them with ``output_hidden_states=True`` (the last entry is after the
model's final norm). At index 0 every prompt has the same state, because the last token is the
same template token for all of them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..generation.base import render_chat
from ..io import atomic_path, stable_hash
from ..progress import progress


def describe_position(tokenizer, system_prompt: str | None = None) -> str:
    """A sentence naming the token whose state is extracted and the template text it ends."""
    marker = "PROMPT"
    text = render_chat(tokenizer, marker, system_prompt)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    suffix = text[text.rindex(marker) + len(marker):]
    return (
        f"last token of the chat-templated prompt (add_generation_prompt=True): "
        f"{tokenizer.decode(ids[-1:])!r} (id {ids[-1]}), the end of the template text after the prompt {suffix!r}"
    )


def model_fingerprint(model) -> str:
    """A short hash of the config and an even sample of every parameter (catches fine-tunes)."""
    h = hashlib.sha256(model.config.to_json_string().encode())
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            k = min(256, flat.numel())
            idx = torch.arange(k, device=flat.device) * (flat.numel() - 1) // max(k - 1, 1)
            h.update(name.encode())
            h.update(flat[idx].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.inference_mode()
def _forward_last(model, tokenizer, texts: list[str]) -> np.ndarray:
    """Left-padded forward of one batch; returns float16 (L+1, B, D) at each last token."""
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    mask = enc["attention_mask"].to(model.device)
    ids = enc["input_ids"].to(model.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # pads do not shift the real tokens' positions
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True, use_cache=False)
    last = torch.stack([h[:, -1, :] for h in out.hidden_states])  # (L+1, B, D)
    return last.float().cpu().numpy().astype(np.float16)


def extract_last_token_states(
    model,
    tokenizer,
    prompts: list[str],
    batch_size: int = 8,
    cache: Path | None = None,
    system_prompt: str | None = None,
    identity: str | None = None,
) -> np.ndarray:
    """Hidden states at the last prompt token: float16 array of shape (L+1, N, D).

    Batches are sorted by token length and left-padded; only the last-token row of each layer is
    kept, so memory is one batch of activations plus the (L+1, N, D) result. With ``cache`` (a
    directory) the result is stored as ``states-<key>.npy``, keyed by the model (``identity`` or a
    fingerprint of its weights) and the rendered prompts; a repeat call reads it back.
    """
    if not prompts:
        raise ValueError("extract_last_token_states: no prompts given")
    texts = [render_chat(tokenizer, p, system_prompt) for p in prompts]
    path = None
    if cache is not None:
        key = stable_hash({"model": identity or model_fingerprint(model), "texts": texts, "position": "last"})
        path = Path(cache) / f"states-{key}.npy"
        if path.exists():
            return np.load(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = np.argsort(lengths, kind="stable")
    result: np.ndarray | None = None
    with progress() as bar:
        task = bar.add_task("hidden states", total=len(texts))
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            states = _forward_last(model, tokenizer, [texts[i] for i in idx])
            if result is None:
                result = np.empty((states.shape[0], len(texts), states.shape[2]), dtype=np.float16)
            result[:, idx, :] = states
            bar.advance(task, len(idx))
    assert result is not None
    if not np.isfinite(result).all():
        raise ValueError("hidden states overflow float16 (inf/nan); this model's activations are too large to store")
    if path is not None:
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.save(f, result)
    return result
