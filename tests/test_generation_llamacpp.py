"""The llamacpp backend: the LoRA GGUF writer, logits with an adapter against torch + peft, batching,
sampling, identity and the config checks."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

from spillover.generation import Decoding, generate_responses
from spillover.generation.lora_gguf import lora_tensors, rope_permute, write_lora_gguf
from spillover.study.config import ModelsConfig

SMOL = "embedded:smollm2-135m-instruct"
QWEN = "embedded:qwen2.5-coder-0.5b-instruct"
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture
def llama_cpp():
    return pytest.importorskip("llama_cpp")


def _adapter_dir(tmp_path, weights: dict[str, np.ndarray], **config):
    from safetensors.numpy import save_file

    tmp_path.mkdir(exist_ok=True)
    save_file(weights, tmp_path / "adapter_model.safetensors")
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 8, **config}))
    return tmp_path


def _qv_adapter(tmp_path, **config):
    rng = np.random.default_rng(0)
    w = {f"base_model.model.model.layers.0.self_attn.{m}.lora_{ab}.weight": rng.normal(size=shape).astype(np.float32)
         for m in ("q_proj", "v_proj") for ab, shape in (("A", (2, 16)), ("B", (8, 2)))}
    return _adapter_dir(tmp_path, w, **config), w


def test_lora_tensors_fold_the_scale_into_b_and_permute_llama_q(tmp_path):
    adapter, w = _qv_adapter(tmp_path)
    key = "base_model.model.model.layers.0.self_attn.{}.lora_{}.weight"
    qwen = lora_tensors(adapter, "qwen2", 1, n_head=2, n_head_kv=2)
    assert set(qwen) == {f"blk.0.attn_{m}.weight.lora_{ab}" for m in ("q", "v") for ab in "ab"}
    np.testing.assert_array_equal(qwen["blk.0.attn_q.weight.lora_a"], w[key.format("q_proj", "A")])
    np.testing.assert_allclose(qwen["blk.0.attn_q.weight.lora_b"], 4 * w[key.format("q_proj", "B")])  # 8 / r 2
    llama = lora_tensors(adapter, "llama", 1, n_head=2, n_head_kv=2)
    np.testing.assert_allclose(llama["blk.0.attn_q.weight.lora_b"], rope_permute(4 * w[key.format("q_proj", "B")], 2))
    np.testing.assert_allclose(llama["blk.0.attn_v.weight.lora_b"], qwen["blk.0.attn_v.weight.lora_b"])
    rs = lora_tensors(_qv_adapter(tmp_path / "rs", use_rslora=True)[0], "qwen2", 1, 2, 2)
    np.testing.assert_allclose(rs["blk.0.attn_v.weight.lora_b"], 8 / np.sqrt(2) * w[key.format("v_proj", "B")], rtol=1e-6)


def test_rope_permute_is_undone_by_the_transformers_gguf_loader():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rows = np.arange(48 * 3, dtype=np.float32).reshape(48, 3)
    undo = LlamaTensorProcessor()._reverse_permute_weights
    np.testing.assert_array_equal(undo(rope_permute(rows, 6), 6, 6), rows)
    np.testing.assert_array_equal(undo(rope_permute(rows[:16], 2), 6, 2), rows[:16])  # k with 2 kv heads
    assert not np.array_equal(rope_permute(rows, 6), rows)


def test_the_gguf_carries_the_adapter_metadata(tmp_path):
    import gguf

    adapter, _ = _qv_adapter(tmp_path)
    out = write_lora_gguf(adapter, tmp_path / "lora.gguf", "qwen2", 1, 2, 2)
    reader = gguf.GGUFReader(out)
    field = lambda k: reader.fields[k].parts[reader.fields[k].data[0]]  # noqa: E731
    assert bytes(field("general.type")).decode() == "adapter" and bytes(field("adapter.type")).decode() == "lora"
    assert bytes(field("general.architecture")).decode() == "qwen2" and float(field("adapter.lora.alpha")[0]) == 0.0
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}  # ggml order: (ne0, ne1)
    assert shapes["blk.0.attn_q.weight.lora_a"] == (16, 2) and shapes["blk.0.attn_q.weight.lora_b"] == (2, 8)


@pytest.mark.parametrize("config, weights, match", [
    ({"use_dora": True}, None, "use_dora"),
    ({}, {"base_model.model.model.layers.0.self_attn.foo_proj.lora_A.weight": np.zeros((2, 4), np.float32)},
     "no llama.cpp counterpart"),
])
def test_unsupported_adapters_are_refused(tmp_path, config, weights, match):
    adapter = _adapter_dir(tmp_path, weights, **config) if weights else _qv_adapter(tmp_path, **config)[0]
    with pytest.raises(ValueError, match=match):
        lora_tensors(adapter, "qwen2", 1, 2, 2)
    with pytest.raises(ValueError, match="architecture 'gemma'"):
        lora_tensors(_qv_adapter(tmp_path / "plain")[0], "gemma", 1, 2, 2)


def test_a_missing_extra_names_it(monkeypatch):
    from spillover.generation.llamacpp import _llama

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ImportError, match=r"spillover\[llamacpp\]"):
        _llama()


def test_the_config_refuses_what_llamacpp_cannot_run():
    from spillover.study import StudyConfig

    assert ModelsConfig(backend="llamacpp").backend == "llamacpp"
    with pytest.raises(ValueError, match="models.device to cpu"):
        ModelsConfig(backend="llamacpp", device="cuda")
    with pytest.raises(ValueError, match=r"embedded models.*models.aligned \(Qwen/Qwen2.5-0.5B-Instruct\)"):
        ModelsConfig(backend="llamacpp", aligned="Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ValueError, match="backend hf"):
        ModelsConfig(backend="llamacpp", quantize="int8")
    with pytest.raises(ValueError, match="backend llamacpp"):
        ModelsConfig(quantize="q8_0")
    assert ModelsConfig(backend="llamacpp", quantize="q8_0").quantize == "q8_0"
    with pytest.raises(ValueError, match="LoRA checkpoints only.*unlearn on safety"):
        StudyConfig(name="x", targets=["safety"], variants=["unlearn"], models={"backend": "llamacpp"},
                    training={"full": True})


def _hf_and_llama(spec: str, adapter: str | None = None):
    from spillover.generation.loading import load_backend, make_backend

    hf = load_backend("hf", spec, adapter=adapter, device="cpu", dtype="fp32")
    return hf, make_backend("llamacpp", hf.model, hf.tokenizer, spec, adapter)


def _random_adapter(spec: str, out, targets: list[str], std: float) -> None:
    """A LoRA (r 4, alpha 8) whose B is random with ``std``, so the adapter moves the logits far."""
    from peft import LoraConfig, get_peft_model

    from spillover.models import load_model

    torch.manual_seed(0)
    model, _ = load_model(spec, device="cpu", dtype="fp32")
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=std)
    peft.save_pretrained(out)


@pytest.mark.parametrize("spec, targets, std", [
    (SMOL, LINEAR, 1.0),
    (SMOL, ["q_proj", "k_proj"], 1.0),  # llama arch: rope-permuted rows
    pytest.param(QWEN, LINEAR, 0.1, marks=pytest.mark.slow),
])
def test_adapter_logits_match_torch_peft(llama_cpp, tmp_path, spec, targets, std):
    """The adapter's change of the logits, llama.cpp against torch + peft on the same weights.

    Both paths already differ without an adapter (llama.cpp rounds activations to 8-bit blocks):
    max |diff| over the last 8 positions 0.4 (Qwen, Q4_K_M) to 0.9 (SmolLM2, Q4_1). The change
    the adapter makes (logits with minus without, per path) cancels most of that shared error;
    ``std`` makes it 12-80x the base mismatch while the model stays out of the regime where the
    paths' small differences grow (Qwen, every Linear, std 0.3: correlation 0.93). It must
    correlate > 0.99 with torch's and match its size within 5%. Leaving out the q/k permutation
    gives 0.32 on the q/k case, B scaled by 1.1 gives 0.90 and a size ratio of 1.12.
    """
    _random_adapter(spec, tmp_path / "a", targets, std)
    hf, llama = _hf_and_llama(spec)
    hf_a, llama_a = _hf_and_llama(spec, str(tmp_path / "a"))
    ids = hf.tokenizer(hf.render([{"role": "user", "content": "Name three rivers in Europe."}]),
                       add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        t_base, t_lora = (m.model(torch.tensor([ids])).logits[0].numpy() for m in (hf, hf_a))
    l_base, l_lora = llama.prompt_logits(ids), llama_a.prompt_logits(ids)
    assert l_base.shape == t_base.shape == (len(ids), t_base.shape[1])
    d_torch, d_llama = (t_lora - t_base)[-8:].ravel(), (l_lora - l_base)[-8:].ravel()
    assert np.corrcoef(d_torch, d_llama)[0, 1] > 0.99
    assert 0.95 < np.linalg.norm(d_llama) / np.linalg.norm(d_torch) < 1.05
    assert np.linalg.norm(d_torch) > 10 * np.linalg.norm((l_base - t_base)[-8:])


def test_generation_batches_stop_and_sample(llama_cpp):
    """Greedy output of a batch equals each prompt alone (per-sequence KV); sampling follows the seed."""
    hf, llama = _hf_and_llama(SMOL)
    assert llama.identity == hf.identity.removesuffix("|hf|float32") + "|llamacpp|q4_1"
    prompts = ["What is the capital of France?", "Write two sentences about the sea and the wind at night.",
               "Reply with the single word yes."]
    greedy = Decoding(max_new_tokens=24)
    batched = generate_responses(llama, prompts, greedy, batch_size=3)
    assert batched == [generate_responses(llama, [p], greedy)[0] for p in prompts]
    assert all("<|im_end|>" not in r[0] and r[0] for r in batched)
    ids = hf.tokenizer(batched[2][0], add_special_tokens=False)["input_ids"]
    assert len(ids) < 24  # stopped at the end-of-turn token
    hot = Decoding(max_new_tokens=12, temperature=1.0, top_p=0.9, n=3, seed=1)
    first = generate_responses(llama, prompts[:2], hot)
    assert [len(r) for r in first] == [3, 3] and len(set(first[1])) > 1
    assert generate_responses(llama, prompts[:2], hot) == first
    assert generate_responses(llama, prompts[:2], hot.model_copy(update={"seed": 2})) != first


def test_a_batch_computes_its_common_prompt_prefix_once(llama_cpp, monkeypatch):
    """The chat template's shared system turn is fed once and copied to every sequence; output unchanged."""
    hf, llama = _hf_and_llama(SMOL)
    prompts = ["Name a river.", "Name two mountains in Asia, please.", "Say hello."]
    ids = hf.tokenizer([hf.render([{"role": "user", "content": p}]) for p in prompts],
                       add_special_tokens=False)["input_ids"]
    shared = len(os.path.commonprefix(ids))
    assert shared > 10  # the system turn
    fed = []
    decode = type(llama)._decode
    monkeypatch.setattr(type(llama), "_decode", lambda self, ctx, batch, entries: (
        fed.append(len(entries)), decode(self, ctx, batch, entries))[1])
    greedy = Decoding(max_new_tokens=1)
    together = generate_responses(llama, prompts, greedy, batch_size=3)
    assert sum(fed) == sum(map(len, ids)) - 2 * shared
    assert together == [generate_responses(llama, [p], greedy)[0] for p in prompts]


def test_the_model_slot_swaps_adapters_on_the_loaded_gguf(llama_cpp, tmp_path):
    from spillover.generation import llamacpp
    from spillover.study.models import ModelSlot

    _random_adapter(SMOL, tmp_path / "a", ["q_proj", "v_proj", "down_proj"], 1.0)
    slot = ModelSlot(ModelsConfig(aligned=SMOL, labeler=SMOL, backend="llamacpp", device="cpu", dtype="fp32"))
    base = slot.get(SMOL)[2]
    base_id, base_out = base.identity, generate_responses(base, ["Name a colour."], Decoding(max_new_tokens=8))
    lm, _, tuned = slot.get(SMOL, str(tmp_path / "a"))
    assert slot.loads == 1 and slot.swaps == 1 and tuned.lm is base.lm is llamacpp.load_llama_model(str(base.lm.path))
    assert tuned.identity.startswith(base_id.removesuffix("|llamacpp|q4_1") + "+adapter:")
    assert tuned.identity.endswith("|llamacpp|q4_1") and any("lora" in n for n, _ in lm.named_modules())
    assert generate_responses(tuned, ["Name a colour."], Decoding(max_new_tokens=8)) != base_out


def test_q8_0_generates_from_the_requantised_gguf_under_its_own_identity(llama_cpp, tmp_path, monkeypatch):
    """The Q8_0 file is written once into the cache; its logits stay near the shipped weights'
    (Q8_0 rounds each 32-weight block to 8 bits: far finer than the shipped 4-5 bit blocks)."""
    from spillover.generation.loading import make_backend

    hf, shipped = _hf_and_llama(SMOL)
    monkeypatch.setenv("SPILLOVER_CACHE", str(tmp_path))  # the requantised file lands here
    q8 = make_backend("llamacpp", hf.model, hf.tokenizer, SMOL, quantize="q8_0")
    assert q8.identity == shipped.identity.removesuffix("|q4_1") + "|q8_0"
    written = sorted((tmp_path / "gguf").glob("*-q8_0.gguf"))
    assert [p.name for p in written] == [q8.lm.path.name] and q8.lm.weights() == "q8_0"
    stamp = written[0].stat().st_mtime_ns
    assert make_backend("llamacpp", hf.model, hf.tokenizer, SMOL, quantize="q8_0").lm.path.stat().st_mtime_ns == stamp
    ids = hf.tokenizer(hf.render([{"role": "user", "content": "Name three rivers in Europe."}]),
                       add_special_tokens=False)["input_ids"]
    base, requant = shipped.prompt_logits(ids)[-4:].ravel(), q8.prompt_logits(ids)[-4:].ravel()
    assert np.corrcoef(base, requant)[0, 1] > 0.99 and not np.array_equal(base, requant)


def test_make_backend_refuses_models_without_a_gguf(tiny_model_dir):
    from spillover.generation.loading import load_backend

    with pytest.raises(ValueError, match="embedded models"):
        load_backend("llamacpp", str(tiny_model_dir), device="cpu", dtype="fp32")
    with pytest.raises(ValueError, match="backend hf"):
        load_backend("llamacpp", str(tiny_model_dir), device="cpu", dtype="fp32", quantize="int8")
