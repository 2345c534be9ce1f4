"""Write a peft LoRA adapter directory as a llama.cpp LoRA GGUF.

llama.cpp adds ``scale * B @ (A @ x)`` to each adapted matmul, with ``scale = alpha / rank`` (or
1 when ``adapter.lora.alpha`` is 0). The peft scaling (``lora_alpha / r``, or ``/ sqrt(r)`` with
rsLoRA, per module rank) is folded into B and alpha is written as 0, so every module keeps its
own scale. Tensors: ``blk.N.attn_q.weight.lora_a`` holds peft's A (r, in) and ``.lora_b`` its B
(out, r), both fp32; GGUF's reversed dimension order makes them the (in, r) and (r, out) ggml
tensors llama.cpp multiplies. The llama architecture stores q/k rows in llama.cpp's rope order,
so B's rows of those projections get the same permutation as the converted base weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

#: Architectures whose tensor layout this writer knows (the embedded models'); ``llama`` permutes q/k.
ARCHS = ("qwen2", "llama")
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")


def rope_permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """Rows (out, r) of a q or k projection in llama.cpp's rope order (``convert_hf_to_gguf``)."""
    return rows.reshape(n_head, 2, rows.shape[0] // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _check_config(cfg: dict) -> None:
    unsupported = {"use_dora": cfg.get("use_dora"), "alpha_pattern": cfg.get("alpha_pattern"),
                   "modules_to_save": cfg.get("modules_to_save"), "fan_in_fan_out": cfg.get("fan_in_fan_out"),
                   "bias": cfg.get("bias") not in (None, "none")}
    bad = [k for k, v in unsupported.items() if v]
    if cfg.get("peft_type", "LORA") != "LORA" or bad:
        raise ValueError("the llama.cpp LoRA writer supports plain LoRA only; this adapter sets "
                         + (", ".join(bad) or str(cfg.get("peft_type"))))


def lora_tensors(adapter_dir: str | Path, arch: str, n_blocks: int, n_head: int, n_head_kv: int) -> dict[str, np.ndarray]:
    """The llama.cpp tensors (name -> fp32 array) of a peft adapter, scaling folded into ``lora_b``."""
    import gguf
    from safetensors.numpy import load_file

    if arch not in ARCHS:
        raise ValueError(f"no llama.cpp LoRA layout for architecture {arch!r}; supported: {', '.join(ARCHS)}")
    adapter_dir = Path(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    _check_config(cfg)
    names = gguf.get_tensor_name_map(next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch), n_blocks)
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    out = {}
    for key, value in weights.items():
        match = _KEY.match(key)
        target = names.get_name(match["module"]) if match else None
        if target is None:
            raise ValueError(f"adapter tensor {key!r} has no llama.cpp counterpart")
        value = value.astype(np.float32)
        if match["ab"] == "B":
            rank = value.shape[1]
            value = value * (cfg["lora_alpha"] / (rank ** 0.5 if cfg.get("use_rslora") else rank))
            if arch == "llama" and target.endswith(("attn_q", "attn_k")):
                value = rope_permute(value, n_head if target.endswith("attn_q") else n_head_kv)
        out[f"{target}.weight.lora_{match['ab'].lower()}"] = np.ascontiguousarray(value)
    return out


def write_lora_gguf(adapter_dir: str | Path, out: str | Path, arch: str, n_blocks: int, n_head: int,
                    n_head_kv: int) -> Path:
    """Write ``adapter_dir`` (adapter_config.json + adapter_model.safetensors) as a LoRA GGUF at ``out``."""
    import gguf

    tensors = lora_tensors(adapter_dir, arch, n_blocks, n_head, n_head_kv)
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)
    for name, value in sorted(tensors.items()):
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)
