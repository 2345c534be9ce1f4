"""Int8 generation copies: which layers are quantised, LoRA merged first, a cache identity of their own."""

from __future__ import annotations

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

from spillover.generation import Decoding, generate_responses
from spillover.generation.loading import load_backend
from spillover.generation.quant import int8_copy
from spillover.models import load_model
from spillover.study.config import ModelsConfig


def _linears(model, cls) -> set[str]:
    return {n for n, m in model.named_modules() if type(m) is cls}


def test_int8_copy_quantises_the_linear_layers_and_leaves_the_model(tiny_model_dir):
    model, _ = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    names = _linears(model, torch.nn.Linear)
    q = int8_copy(model)
    assert _linears(q, Int8Linear) == names and not _linears(q, torch.nn.Linear)
    assert _linears(model, torch.nn.Linear) == names  # the source keeps its fp32 layers
    kept = int8_copy(model, ("lm_head", "down_proj"))
    assert _linears(kept, torch.nn.Linear) == {n for n in names if n.endswith(("lm_head", "down_proj"))}
    ids = torch.tensor([[3, 5, 7, 9]])
    with torch.no_grad():
        torch.testing.assert_close(q(ids).logits, model(ids).logits, atol=0.1, rtol=0.1)


def test_a_lora_adapter_is_merged_before_quantising(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model, _ = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    q = int8_copy(peft)
    assert not any("lora" in n for n, _ in q.named_modules())
    ids = torch.tensor([[3, 5, 7, 9]])
    with torch.no_grad():
        torch.testing.assert_close(q(ids).logits, peft(ids).logits, atol=0.1, rtol=0.1)
    assert any("lora" in n for n, _ in peft.named_modules())  # the adapter stays on the source


def test_int8_backend_generates_with_the_copy_under_its_own_identity(tiny_model_dir):
    plain = load_backend("hf", str(tiny_model_dir), device="cpu", dtype="fp32")
    int8 = load_backend("hf", str(tiny_model_dir), device="cpu", dtype="fp32", quantize="int8")
    assert int8.identity == plain.identity + "|int8"
    assert plain.generator is plain.model and _linears(int8.model, Int8Linear) == set()
    assert _linears(int8.generator, Int8Linear)
    out = generate_responses(int8, ["Tell me about Paris."], Decoding(max_new_tokens=4))
    assert len(out) == 1 and isinstance(out[0][0], str)


def test_each_quantize_needs_its_backend(tiny_model_dir):
    with pytest.raises(ValueError, match="backend hf"):
        ModelsConfig(quantize="int8", backend="static")
    with pytest.raises(ValueError, match="needs backend hf, not 'static'"):
        load_backend("static", str(tiny_model_dir), device="cpu", dtype="fp32", quantize="int8")
    with pytest.raises(ValueError, match="needs backend llamacpp, not 'hf'"):
        load_backend("hf", str(tiny_model_dir), device="cpu", dtype="fp32", quantize="q8_0")


def test_the_model_slot_requantises_after_an_adapter_swap(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    from spillover.study.models import ModelSlot

    model, _ = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False)).save_pretrained(
        tmp_path / "a")
    slot = ModelSlot(ModelsConfig(aligned=str(tiny_model_dir), device="cpu", dtype="fp32", quantize="int8"))
    base_id = slot.get(str(tiny_model_dir))[2].identity
    lm, _, backend = slot.get(str(tiny_model_dir), str(tmp_path / "a"))
    assert slot.loads == 1 and slot.swaps == 1
    assert backend.identity.endswith("|int8") and backend.identity != base_id
    assert any("lora" in n for n, _ in lm.named_modules()) and _linears(lm, Int8Linear) == set()
    assert not any("lora" in n for n, _ in backend.generator.named_modules())
