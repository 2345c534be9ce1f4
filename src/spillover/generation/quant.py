"""Int8 generation copies of a model for CPUs without bf16 matrix instructions.

``torch.ao.quantization.quantize_dynamic`` turns each ``nn.Linear`` into one that stores its
weight as int8 (one scale per output channel) and quantises its input (B, T, in) to uint8 at run
time (one scale per call), so the GEMMs run in the fbgemm/x86 int8 kernels and the decode steps
read a quarter of the weight bytes. Embeddings, norms and attention stay fp32.
"""

from __future__ import annotations

import copy
import warnings

import torch

#: Each ``models.quantize`` value and the backend that generates with it (``none``: any).
QUANTIZE = {"none": None, "int8": "hf", "q8_0": "llamacpp"}


def check_quantize(quantize: str, backend: str) -> None:
    """Raise ValueError unless ``backend`` can generate with ``quantize``."""
    if quantize not in QUANTIZE:
        raise ValueError(f"unknown quantize {quantize!r}; use one of {', '.join(QUANTIZE)}")
    if QUANTIZE[quantize] not in (None, backend):
        raise ValueError(f"quantize {quantize!r} needs backend {QUANTIZE[quantize]}, not {backend!r}")


def int8_copy(model, fp32_modules: tuple[str, ...] = ()):
    """A quantised copy of ``model`` (which is left as it is) for generation only.

    A peft model's adapter is merged into the copy first (the int8 layers cannot carry LoRA).
    ``fp32_modules``: name endings of Linear modules kept in fp32 (``lm_head``, ``down_proj``).
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if model.device.type != "cpu":
        raise ValueError(f"int8 generation runs on CPU only; the model is on {model.device}")
    lm = copy.deepcopy(model)
    if hasattr(lm, "merge_and_unload"):
        lm = lm.merge_and_unload()
    spec = {name: per_channel_dynamic_qconfig for name, mod in lm.named_modules()
            if isinstance(mod, torch.nn.Linear) and not name.endswith(tuple(fp32_modules))}
    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = "x86" if "x86" in engines else "fbgemm"
    with warnings.catch_warnings():  # the eager-mode API's deprecation notice
        warnings.simplefilter("ignore")
        return quantize_dynamic(lm, spec, dtype=torch.qint8, inplace=True).eval()
