"""One loaded model at a time for the study's stages."""

from __future__ import annotations

import gc

import torch

from ..generation.hf import HFBackend
from ..generation.static import StaticBackend
from ..models import load_model, load_tokenizer, model_identity
from .config import ModelsConfig


class ModelSlot:
    """Loads (model spec, adapter) on request, freeing the previous model first.

    Trained adapters are applied on a fresh copy of the aligned weights, so the process never
    holds two models at once.
    """

    def __init__(self, cfg: ModelsConfig):
        self.cfg = cfg
        self.loaded: tuple[str, str | None] | None = None
        self.model = self.tokenizer = None

    def get(self, spec: str, adapter: str | None = None, full_weights: str | None = None):
        """Return (model, tokenizer, backend); ``full_weights`` loads a full-rank checkpoint dir."""
        want = (full_weights or spec, adapter)
        if self.loaded != want:
            self.release()
            model, tok = load_model(full_weights or spec, device=self.cfg.device, dtype=self.cfg.dtype)
            if full_weights:
                tok = load_tokenizer(spec)
            if adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter).eval()
            self.model, self.tokenizer, self.loaded = model, tok, want
        identity = model_identity(want[0], adapter)
        cls = StaticBackend if self.cfg.backend == "static" else HFBackend
        return self.model, self.tokenizer, cls(self.model, self.tokenizer, identity, self.cfg.batch_size)

    def release(self) -> None:
        self.model = self.tokenizer = None
        self.loaded = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
