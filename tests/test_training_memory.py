"""Selective recomputation and partial block checkpointing: same loss and gradients, fewer bytes kept."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from spillover.models import load_model
from spillover.training import Example, TrainConfig, Trainer
from spillover.training.config import LoraSettings
from spillover.training.examples import EncodedSet
from spillover.training import memory
from spillover.training.memory import checkpoint_blocks, lean_lora_mlps, recompute_pointwise
from spillover.training.logprobs import sequence_logprobs, unwrap

from tiny import build_tiny_model

FORGET = [Example(f"f{i}", f"Tell me secret number {i}", "I'm sorry, but I can't help with that request.")
          for i in range(3)]


@pytest.fixture(scope="module")
def deep_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("deep") / "model", layers=4)


@dataclass
class Pass:
    loss: float
    grads: dict[str, torch.Tensor]
    saved: list[tuple[tuple[int, ...], int, int]]  # (shape, data_ptr, bytes) of each tensor saved for backward
    mlp_outputs: set[int]  # data_ptr of every gate_proj and up_proj output
    shape: tuple[int, int]  # (B, T) of the batch

    @property
    def saved_bytes(self) -> int:
        return sum(nbytes for _, _, nbytes in self.saved)


def _step(model_dir, dtype="fp32", lora=None, on_cpu=True, **memory) -> Pass:
    """One LoRA (or full-rank) NPO pass: loss, gradients, what backward keeps.

    ``on_cpu``: the CPU's deterministic kernels, so paths that do the same ops agree bit for bit;
    False takes the Trainer's default device (a GPU under bf16 autocast where there is one, whose
    kernel choice depends on strides and fusion)."""
    from accelerate import Accelerator

    model, tok = load_model(str(model_dir), device="cpu", dtype=dtype)
    cfg = TrainConfig(lora=lora or LoraSettings(r=4), batch_size=3, **memory)
    torch.manual_seed(0)  # the same LoRA A initialisation in every call
    trainer = Trainer(model, tok, cfg, num_steps=1, accelerator=Accelerator(cpu=True) if on_cpu else None)
    batch = EncodedSet(FORGET, tok, 64).batch([0, 1, 2], tok.pad_token_id)
    ref = trainer.reference_logps(batch) if trainer.lora else 0.0
    saved, outputs = [], set()  # filled by the policy pass only: addresses are reused
    for name, module in trainer.unwrapped.named_modules():
        if name.endswith(("mlp.gate_proj", "mlp.up_proj")):
            module.register_forward_hook(lambda m, args, out: outputs.add(out.data_ptr()))

    def pack(t):
        saved.append((tuple(t.shape), t.data_ptr(), t.numel() * t.element_size()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        lp = trainer.logps(batch)
    loss = (lp - ref - 1.0).pow(2).sum()  # any loss of the policy log-probs
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.unwrapped.named_parameters() if p.grad is not None}
    return Pass(loss.item(), grads, saved, outputs, tuple(batch["input_ids"].shape))


def _assert_equal(other: Pass, ref: Pass, what) -> None:
    assert other.loss == ref.loss, what
    assert other.grads.keys() == ref.grads.keys(), what
    for name, g in ref.grads.items():
        assert torch.equal(other.grads[name], g), f"{what} {name}"


def test_pointwise_recompute_and_block_checkpointing_keep_loss_and_gradients_and_save_less(deep_model_dir):
    plain = _step(deep_model_dir, on_cpu=False)
    for memory in ({"recompute_pointwise": True}, {"gradient_checkpointing": True, "checkpoint_blocks": 2},
                   {"gradient_checkpointing": True}):
        other = _step(deep_model_dir, on_cpu=False, **memory)
        assert other.loss == pytest.approx(plain.loss, rel=1e-6), memory
        assert other.grads.keys() == plain.grads.keys()
        for name, g in plain.grads.items():
            torch.testing.assert_close(other.grads[name], g, rtol=1e-5, atol=1e-7, msg=f"{memory} {name}")
        assert other.saved_bytes < plain.saved_bytes, memory
    two = _step(deep_model_dir, on_cpu=False, gradient_checkpointing=True, checkpoint_blocks=2)
    four = _step(deep_model_dir, on_cpu=False, gradient_checkpointing=True)
    assert four.saved_bytes < two.saved_bytes  # more blocks recomputed, fewer bytes kept


def _products(p: Pass, intermediate: int) -> list[int]:
    """data_ptr of every saved (B, T, I) or (B * T, I) tensor that is not a gate_proj or up_proj output."""
    size = math.prod(p.shape) * intermediate
    return [ptr for shape, ptr, _ in p.saved
            if shape[-1] == intermediate and math.prod(shape) == size and ptr not in p.mlp_outputs]


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_recompute_pointwise_keeps_no_mlp_product_of_a_lora_down_proj(deep_model_dir, dtype, monkeypatch):
    plain = _step(deep_model_dir, dtype)
    lean = _step(deep_model_dir, dtype, recompute_pointwise=True)
    _assert_equal(lean, plain, dtype)  # bit for bit: the same ops on the same values
    layers, inter = 4, 64  # build_tiny_model: intermediate = 2 x hidden
    assert _products(lean, inter) == []  # only gate(x) and up(x) of each block are kept
    monkeypatch.setattr(memory, "down_from_gate_up", lambda *args: None)  # the path for other down_projs
    kept = _step(deep_model_dir, dtype, recompute_pointwise=True)
    _assert_equal(kept, plain, dtype)
    assert len(_products(kept, inter)) == layers  # it keeps h = act(gate) * up for the LoRA A matmul
    batch, seq = lean.shape
    h_bytes = batch * seq * inter * (4 if dtype == "fp32" else 2)
    assert kept.saved_bytes - lean.saved_bytes == layers * h_bytes


@pytest.mark.parametrize("blocks", [None, 2])
def test_lora_mlp_recompute_composes_with_block_checkpointing(deep_model_dir, blocks):
    plain = _step(deep_model_dir, "bf16")
    both = _step(deep_model_dir, "bf16", recompute_pointwise=True, gradient_checkpointing=True,
                 checkpoint_blocks=blocks)
    _assert_equal(both, plain, blocks)
    assert _products(both, 64) == []


def test_lora_mlp_recompute_under_autocast_matches_peft(deep_model_dir):
    """bf16 weights and adapters under bf16 autocast (a GPU step's setting) take the same path, bit exact."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = _step(deep_model_dir, "bf16")
        lean = _step(deep_model_dir, "bf16", recompute_pointwise=True)
    _assert_equal(lean, plain, "autocast")
    assert _products(lean, 64) == []


@pytest.mark.parametrize("setting", [
    {"lora": LoraSettings(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"])},
    {"full": True}])
def test_recompute_pointwise_keeps_todays_path_for_a_plain_down_proj(deep_model_dir, setting):
    plain = _step(deep_model_dir, **setting)
    lean = _step(deep_model_dir, recompute_pointwise=True, **setting)
    _assert_equal(lean, plain, setting)
    assert len(_products(lean, 64)) == (4 if "full" in setting else 0)  # a trained down_proj keeps its input


def test_lean_lora_mlps_counts_only_supported_lora_down_projs(deep_model_dir):
    from peft import LoraConfig, get_peft_model

    def count(**lora):
        model, _ = load_model(str(deep_model_dir), device="cpu", dtype="fp32")
        recompute_pointwise(model)
        return lean_lora_mlps(get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", **lora)))

    assert count() == 4
    assert count(lora_dropout=0.1) == 0
    assert count(use_dora=True) == 0
    model, _ = load_model(str(deep_model_dir), device="cpu", dtype="fp32")
    assert lean_lora_mlps(get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))) == 0  # not switched


def test_compiled_blocks_match_eager_and_keep_fewer_bytes(deep_model_dir):
    """Regional torch.compile: every block compiled, the same loss and gradients up to fused-kernel rounding."""
    plain = _step(deep_model_dir)
    compiled = _step(deep_model_dir, compile_blocks=True)
    assert compiled.loss == pytest.approx(plain.loss, rel=1e-6)
    assert compiled.grads.keys() == plain.grads.keys()
    for name, g in plain.grads.items():
        torch.testing.assert_close(compiled.grads[name], g, rtol=1e-4, atol=1e-6, msg=name)
    assert compiled.saved_bytes < plain.saved_bytes  # the partitioner recomputes pointwise values
    model, tok = load_model(str(deep_model_dir), device="cpu", dtype="fp32")
    trainer = Trainer(model, tok, TrainConfig(lora=LoraSettings(r=4), compile_blocks=True), num_steps=1)
    assert all(layer._compiled_call_impl is not None for layer in unwrap(trainer.model).get_decoder().layers)


def test_compile_blocks_excludes_recompute_pointwise_and_keeps_eager_keys():
    with pytest.raises(ValueError, match="compile_blocks: drop recompute_pointwise"):
        TrainConfig(compile_blocks=True, recompute_pointwise=True)
    assert "compile_blocks" not in TrainConfig().weights_config()  # eager runs keep their stage keys
    assert TrainConfig(compile_blocks=True).weights_config()["compile_blocks"] is True


def test_a_checkpoint_resumes_under_the_compile_setting_it_was_trained_with():
    eager, compiled = TrainConfig().model_dump(), TrainConfig(compile_blocks=True).model_dump()
    old = {k: v for k, v in eager.items() if k != "compile_blocks"}  # saved before the field existed
    assert TrainConfig().trained_like(eager) and TrainConfig().trained_like(old)
    assert TrainConfig(compile_blocks=True).trained_like(compiled)
    assert not TrainConfig().trained_like(compiled) and not TrainConfig(compile_blocks=True).trained_like(eager)
    assert not TrainConfig(lr=1e-3).trained_like(eager)


def test_recompute_pointwise_switches_every_norm_and_gated_mlp(tiny_model_dir):
    model, _ = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    layers = len(model.model.layers)
    assert recompute_pointwise(model) == {"norms": 2 * layers + 1, "mlps": layers}
    with pytest.raises(ValueError, match="no RMSNorm or gated MLP"):
        recompute_pointwise(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_checkpoint_blocks_switches_only_the_first_blocks(deep_model_dir):
    model, _ = load_model(str(deep_model_dir), device="cpu", dtype="fp32")
    assert checkpoint_blocks(model, 3) == 3
    assert [layer.gradient_checkpointing for layer in model.model.layers] == [True, True, True, False]
    with pytest.raises(ValueError, match="5 blocks asked for, the model has 4"):
        checkpoint_blocks(model, 5)


def test_checkpoint_blocks_needs_gradient_checkpointing():
    with pytest.raises(ValueError, match="checkpoint_blocks: set gradient_checkpointing"):
        TrainConfig(checkpoint_blocks=2)


def test_sync_free_logprobs_equal_the_selected_rows_path(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    batch = EncodedSet(FORGET[:2], tok, 64).batch([0, 1], tok.pad_token_id)
    batch["labels"][1, -3:] = -100  # a shorter second response: unlabelled rows inside the batch
    args = (batch["input_ids"], batch["attention_mask"], batch["labels"])
    out = {}
    for sync_free in (False, True):
        model.zero_grad()
        lp = sequence_logprobs(model, *args, chunk_size=7, sync_free=sync_free)
        lp.sum().backward()
        out[sync_free] = (lp.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-6, atol=1e-5)
    for name, g in out[False][1].items():
        torch.testing.assert_close(out[True][1][name], g, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("frozen", [(), ("lora_A",), ("gate",)])
def test_down_from_gate_up_equals_the_peft_layer(dtype, frozen):
    """With a base bias, frozen adapter weights or a gate without gradient: the same values and gradients."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    wrapped = torch.nn.Module()
    wrapped.down = torch.nn.Linear(24, 8, bias=True)
    down = get_peft_model(wrapped, LoraConfig(r=4, lora_alpha=8, target_modules=["down"])).to(dtype).base_model.model.down
    torch.nn.init.normal_(down.lora_B["default"].weight)
    for name in frozen:
        if name.startswith("lora"):
            getattr(down, name)["default"].requires_grad_(False)
    act = torch.nn.SiLU()
    out = []
    for lean in (False, True):
        gate = torch.randn(2, 5, 24, generator=torch.Generator().manual_seed(1), dtype=dtype)
        up = torch.randn(2, 5, 24, generator=torch.Generator().manual_seed(2), dtype=dtype, requires_grad=True)
        gate.requires_grad_("gate" not in frozen)
        y = memory.down_from_gate_up(down, act, gate, up) if lean else down(act(gate) * up)
        leaves = [t for t in (gate, up, *down.parameters()) if t.requires_grad]
        out.append((y, torch.autograd.grad(y, leaves, torch.ones_like(y))))
    assert torch.equal(out[1][0], out[0][0])
    assert all(torch.equal(a, b) for a, b in zip(out[1][1], out[0][1]))
