"""Build a generation backend by name."""

from __future__ import annotations


def load_backend(name: str, model: str, adapter: str | None = None, device: str = "auto",
                 dtype: str = "auto", batch_size: int = 8):
    """Return a backend ('hf' or 'vllm') for a model spec and optional peft adapter."""
    from ..models import load_model, model_identity

    identity = model_identity(model, adapter)
    if name == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(model, adapter=adapter, identity=identity)
    if name != "hf":
        raise ValueError(f"unknown generation backend {name!r}; use 'hf' or 'vllm'")
    lm, tok = load_model(model, device=device, dtype=dtype)
    if adapter:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, adapter).eval()
    from .hf import HFBackend

    return HFBackend(lm, tok, identity, batch_size=batch_size)
