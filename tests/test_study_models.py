"""The study's model slot swaps LoRA adapters on the weights it holds instead of reloading them."""

from __future__ import annotations

import torch

from spillover.models import load_model
from spillover.study.config import ModelsConfig
from spillover.study.models import ModelSlot


def _adapter(base_dir, out, seed):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model, _ = load_model(str(base_dir), device="cpu", dtype="fp32")
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(out)
    return str(out)


def _logits(slot, spec, adapter):
    model, tok, backend = slot.get(spec, adapter)
    ids = tok("Tell me about Paris.", return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits, backend.identity


def test_swapped_adapters_give_what_a_fresh_load_gives_with_one_load(tiny_model_dir, tmp_path):
    spec = str(tiny_model_dir)
    a, b = _adapter(tiny_model_dir, tmp_path / "a", 1), _adapter(tiny_model_dir, tmp_path / "b", 2)
    cfg = ModelsConfig(aligned=spec, dtype="fp32", device="cpu")
    slot = ModelSlot(cfg)
    base, base_id = _logits(slot, spec, None)
    got = {name: _logits(slot, spec, path) for name, path in (("a", a), ("b", b), ("a2", a))}
    assert slot.loads == 1 and slot.swaps == 3  # base, then three adapters on the same weights
    for name, path in (("a", a), ("b", b), ("a2", a)):
        fresh = ModelSlot(cfg)
        want, want_id = _logits(fresh, spec, path)
        torch.testing.assert_close(got[name][0], want)
        assert got[name][1] == want_id != base_id
    assert not torch.allclose(got["a"][0], got["b"][0]) and not torch.allclose(got["a"][0], base)
    assert len(slot.backend.model.peft_config) == 1  # swapped-out adapters are deleted
