"""Build a generation backend by name."""

from __future__ import annotations

BACKENDS = ("hf", "static")


def load_backend(name: str, model: str, adapter: str | None = None, device: str = "auto",
                 dtype: str = "auto", batch_size: int = 8, base_ok: bool = False):
    """Return a backend for a model spec and optional peft adapter.

    ``hf``: transformers ``generate``; ``static``: a static KV cache with one CUDA graph per decode
    step (llama / mistral / qwen2 architectures; plain eager steps on CPU). The backend's
    identity (the response cache key) names the weights, the backend and the dtype. ``base_ok``:
    see ``models.load_model``.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; use one of {', '.join(BACKENDS)}")
    from ..models import load_model

    lm, tok = load_model(model, device=device, dtype=dtype, base_ok=base_ok)
    if adapter:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, adapter).eval()
    return make_backend(name, lm, tok, model, adapter, batch_size)


def make_backend(name: str, lm, tok, model: str, adapter: str | None = None, batch_size: int = 8):
    """Wrap a loaded model (``model`` spec, with ``adapter`` applied) in backend ``name``."""
    from ..models import model_identity
    from .hf import HFBackend
    from .static import StaticBackend

    cls = StaticBackend if name == "static" else HFBackend
    identity = f"{model_identity(model, adapter)}|{name}|{str(lm.dtype).removeprefix('torch.')}"
    return cls(lm, tok, identity, batch_size=batch_size)
