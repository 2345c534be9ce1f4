"""One loaded model at a time for the study's stages; LoRA adapters are swapped on it."""

from __future__ import annotations

import gc

import torch

from ..generation.loading import load_backend, make_backend
from .config import ModelsConfig


class ModelSlot:
    """Loads (model spec, adapter) on request, freeing the previous model first.

    The process never holds two models at once. Asked for another LoRA adapter on the model it
    holds, it swaps the adapter in place (peft ``load_adapter`` / ``delete_adapter``) instead of
    reloading the weights: checkpoint validation and evaluation load the aligned model once per
    training run, not once per checkpoint. A full-rank checkpoint directory (which holds its
    tokenizer) loads like any local model. ``loads`` counts weight loads. With ``quantize`` the backend
    generates with an int8 copy rebuilt after each swap (hf) or from the requantised GGUF (llamacpp);
    the weights returned stay unquantised.
    """

    def __init__(self, cfg: ModelsConfig):
        self.cfg = cfg
        self.loaded: tuple[str, str | None] | None = None
        self.backend = None
        self.loads = 0
        self.swaps = 0

    def get(self, spec: str, adapter: str | None = None, full_weights: str | None = None, base_ok: bool = False):
        """Return (model, tokenizer, backend); ``full_weights`` loads a full-rank checkpoint dir.

        ``base_ok``: a model without a chat template is prompted as a base model (labelers).
        """
        want = (full_weights or spec, adapter)
        if self.loaded is not None and self.loaded != want and adapter and self.loaded[0] == want[0]:
            self._swap(want[0], adapter)
        elif self.loaded != want:
            self.release()
            self.loads += 1
            self.backend = load_backend(self.cfg.backend, want[0], adapter=adapter, device=self.cfg.device,
                                        dtype=self.cfg.dtype, batch_size=self.cfg.batch_size, base_ok=base_ok,
                                        quantize=self.cfg.quantize)
            self.loaded = want
        return self.backend.model, self.backend.tokenizer, self.backend

    def _swap(self, model_spec: str, adapter: str) -> None:
        """Put ``adapter`` on the loaded weights (wrapping them with peft if they have none yet)."""
        from peft import PeftModel

        self.swaps += 1
        lm, name = self.backend.model, f"swap{self.swaps}"
        if isinstance(lm, PeftModel):
            lm.load_adapter(adapter, adapter_name=name)
            lm.set_adapter(name)
            for old in [a for a in lm.peft_config if a != name]:
                lm.delete_adapter(old)
        else:
            lm = PeftModel.from_pretrained(lm, adapter, adapter_name=name)
        self.backend = make_backend(self.cfg.backend, lm.eval(), self.backend.tokenizer, model_spec, adapter,
                                    self.cfg.batch_size, self.cfg.quantize)
        self.loaded = (model_spec, adapter)

    def release(self) -> None:
        self.backend = None
        self.loaded = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
