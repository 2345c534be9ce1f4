"""Build a generation backend by name."""

from __future__ import annotations

BACKENDS = ("hf", "static", "llamacpp")


def load_backend(name: str, model: str, adapter: str | None = None, device: str = "auto",
                 dtype: str = "auto", batch_size: int = 8, base_ok: bool = False, quantize: str = "none"):
    """Return a backend for a model spec and optional peft adapter.

    ``hf``: transformers ``generate``; ``static``: a static KV cache with one CUDA graph per decode
    step (llama / mistral / qwen2 architectures; plain eager steps on CPU); ``llamacpp``: llama.cpp
    on the embedded model's GGUF weights (CPU; ``generation.llamacpp``). The backend's
    identity (the response cache key) names the weights, the backend and the dtype. ``base_ok``:
    see ``models.load_model``; ``quantize``: see ``make_backend``.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; use one of {', '.join(BACKENDS)}")
    from ..models import load_model

    lm, tok = load_model(model, device=device, dtype=dtype, base_ok=base_ok)
    if adapter:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, adapter).eval()
    return make_backend(name, lm, tok, model, adapter, batch_size, quantize)


def make_backend(name: str, lm, tok, model: str, adapter: str | None = None, batch_size: int = 8,
                 quantize: str = "none"):
    """Wrap a loaded model (``model`` spec, with ``adapter`` applied) in backend ``name``.

    ``quantize="int8"`` (``hf`` on CPU): generate with an int8 copy of ``lm`` (``quant.int8_copy``),
    named ``|int8`` in the identity so its responses never mix with the unquantised model's.
    ``quantize="q8_0"`` (``llamacpp``): generate from the GGUF requantised to Q8_0 (``|llamacpp|q8_0``).
    """
    from ..models import model_identity
    from .hf import HFBackend
    from .quant import check_quantize, int8_copy
    from .static import StaticBackend

    check_quantize(quantize, name)
    if name == "llamacpp":
        return _llamacpp_backend(lm, tok, model, adapter, batch_size, quantize)
    identity = f"{model_identity(model, adapter)}|{name}|{str(lm.dtype).removeprefix('torch.')}"
    if quantize == "none":
        return (StaticBackend if name == "static" else HFBackend)(lm, tok, identity, batch_size=batch_size)
    return HFBackend(lm, tok, f"{identity}|{quantize}", batch_size=batch_size, generator=int8_copy(lm))


def _llamacpp_backend(lm, tok, model: str, adapter: str | None, batch_size: int, quantize: str):
    """The llama.cpp backend on the GGUF of embedded ``model``; identity ``...|llamacpp|<weights>``."""
    from ..models import EMBEDDED_PREFIX, cache_root, embedded_cache_dir, embedded_gguf, model_identity
    from .llamacpp import LlamaCppBackend, requantized_gguf

    if not model.startswith(EMBEDDED_PREFIX):
        raise ValueError(f"the llamacpp backend runs embedded models (their GGUF weights) only, not {model!r}")
    if lm.device.type != "cpu":
        raise ValueError(f"the llamacpp backend runs on CPU; the model is on {lm.device}")
    gguf = embedded_gguf(model)
    if quantize != "none":
        gguf = requantized_gguf(gguf, quantize, cache_root() / "gguf" / f"{embedded_cache_dir(model).name}-{quantize}.gguf")
    return LlamaCppBackend(lm, tok, model_identity(model, adapter), gguf, adapter, batch_size)
