"""Static-cache decoding: eager on CPU against transformers' generate; CUDA graphs when a GPU is present."""

from __future__ import annotations

import pytest
import torch

from spillover.generation import Decoding, generate_responses
from spillover.generation.hf import HFBackend
from spillover.generation.static import (StaticBackend, UnsupportedModelError, check_supported,
                                         static_generate)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _model(path, dtype=torch.float32, device="cpu"):
    """The tiny model with its matrices redrawn at std 0.3, so greedy outputs vary token to token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for w in model.parameters():
            if w.dim() == 2:
                w.copy_(torch.randn(w.shape, generator=gen) * 0.3)
    model.to(device)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    return model, tok


def _prompts(tok, n=5):
    texts = ["Hello there", "What is the capital of France? Tell me about Paris.", "Reverse a string",
             "I'm sorry", "user assistant system"][:n]
    return tok([tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False,
                                        add_generation_prompt=True) for t in texts],
               return_tensors="pt", padding=True, add_special_tokens=False)


def _hf_greedy(model, tok, enc, n):
    out = model.generate(**enc, max_new_tokens=n, do_sample=False, min_new_tokens=n,
                         pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
    return out[:, enc["input_ids"].shape[1]:]


def test_greedy_tokens_equal_transformers_generate(tiny_model_dir):
    model, tok = _model(tiny_model_dir)
    enc = _prompts(tok)
    assert (enc["attention_mask"] == 0).any(), "the batch must contain left padding"
    ours = static_generate(model, enc["input_ids"], enc["attention_mask"], 12, use_graph=False)
    assert len(set(ours.flatten().tolist())) > 20  # a real test: the outputs are not one repeated token
    assert torch.equal(ours, _hf_greedy(model, tok, enc, 12))


def test_prefill_logits_match_full_forward(tiny_model_dir):
    from spillover.generation.static import StaticDecoder

    model, tok = _model(tiny_model_dir)
    enc = _prompts(tok)
    dec = StaticDecoder(model, enc["input_ids"].shape[0], enc["input_ids"].shape[1] + 4, use_graph=False)
    ours = dec.prefill(enc["input_ids"], enc["attention_mask"])
    pos = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    ref = model(**enc, position_ids=pos).logits[:, -1]
    assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4)


def test_static_backend_matches_hf_backend_text(tiny_model_dir):
    model, tok = _model(tiny_model_dir)
    prompts = ["Hello there", "Tell me about Paris, the capital of France.", "Reverse a string"]
    dec = Decoding(max_new_tokens=10)
    ref = generate_responses(HFBackend(model, tok, "tiny"), prompts, dec)
    ours = generate_responses(StaticBackend(model, tok, "tiny"), prompts, dec)
    assert ours == ref


def test_sampling_is_seeded_and_respects_n(tiny_model_dir):
    model, tok = _model(tiny_model_dir)
    backend = StaticBackend(model, tok, "tiny")
    dec = Decoding(max_new_tokens=8, temperature=1.0, top_p=0.9, n=3, seed=7)
    first = backend.generate([backend.render([{"role": "user", "content": "Hello"}])], dec)
    again = backend.generate([backend.render([{"role": "user", "content": "Hello"}])], dec)
    assert len(first) == 1 and len(first[0]) == 3
    assert first == again


def test_unsupported_architecture_is_named(tiny_model_dir):
    model, _ = _model(tiny_model_dir)
    model.config.model_type = "gpt2"
    with pytest.raises(UnsupportedModelError, match="gpt2"):
        check_supported(model, 16)


def test_lora_adapter_is_applied_unmerged(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    model, tok = _model(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  init_lora_weights=False)).eval()
    enc = _prompts(tok, 3)
    ours = static_generate(peft_model, enc["input_ids"], enc["attention_mask"], 8, use_graph=False)
    assert torch.equal(ours, _hf_greedy(peft_model, tok, enc, 8))


@cuda
def test_cuda_graph_decoding_equals_eager(tiny_model_dir):
    model, tok = _model(tiny_model_dir, torch.float32, "cuda")
    enc = {k: v.cuda() for k, v in _prompts(tok).items()}
    eager = static_generate(model, enc["input_ids"], enc["attention_mask"], 16, use_graph=False)
    graph = static_generate(model, enc["input_ids"], enc["attention_mask"], 16, use_graph=True)
    assert torch.equal(eager, graph)
    assert torch.equal(graph, _hf_greedy(model, tok, enc, 16))
