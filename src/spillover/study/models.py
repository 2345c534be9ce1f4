"""One loaded model at a time for the study's stages."""

from __future__ import annotations

import gc

import torch

from ..generation.loading import load_backend
from .config import ModelsConfig


class ModelSlot:
    """Loads (model spec, adapter) on request, freeing the previous model first.

    Trained adapters are applied on a fresh copy of the aligned weights, so the process never
    holds two models at once. A full-rank checkpoint directory (which holds its tokenizer) loads
    like any local model.
    """

    def __init__(self, cfg: ModelsConfig):
        self.cfg = cfg
        self.loaded: tuple[str, str | None] | None = None
        self.backend = None

    def get(self, spec: str, adapter: str | None = None, full_weights: str | None = None, base_ok: bool = False):
        """Return (model, tokenizer, backend); ``full_weights`` loads a full-rank checkpoint dir.

        ``base_ok``: a model without a chat template is prompted as a base model (labelers).
        """
        want = (full_weights or spec, adapter)
        if self.loaded != want:
            self.release()
            self.backend = load_backend(self.cfg.backend, want[0], adapter=adapter, device=self.cfg.device,
                                        dtype=self.cfg.dtype, batch_size=self.cfg.batch_size, base_ok=base_ok)
            self.loaded = want
        return self.backend.model, self.backend.tokenizer, self.backend

    def release(self) -> None:
        self.backend = None
        self.loaded = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
