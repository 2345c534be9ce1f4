"""Selective recomputation and partial block checkpointing: same loss and gradients, fewer bytes kept."""

from __future__ import annotations

import pytest
import torch

from spillover.models import load_model
from spillover.training import Example, TrainConfig, Trainer
from spillover.training.config import LoraSettings
from spillover.training.examples import EncodedSet
from spillover.training.memory import checkpoint_blocks, recompute_pointwise
from spillover.training.logprobs import sequence_logprobs

from tiny import build_tiny_model

FORGET = [Example(f"f{i}", f"Tell me secret number {i}", "I'm sorry, but I can't help with that request.")
          for i in range(3)]


@pytest.fixture(scope="module")
def deep_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("deep") / "model", layers=4)


def _step(model_dir, **memory):
    """(loss, {name: grad}, bytes of tensors saved for backward) of one LoRA NPO pass."""
    model, tok = load_model(str(model_dir), device="cpu", dtype="fp32")
    cfg = TrainConfig(lora=LoraSettings(r=4), batch_size=3, **memory)
    torch.manual_seed(0)  # the same LoRA A initialisation in every call
    trainer = Trainer(model, tok, cfg, num_steps=1)
    batch = EncodedSet(FORGET, tok, 64).batch([0, 1, 2], tok.pad_token_id)
    ref = trainer.reference_logps(batch)
    saved: list[int] = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        lp = trainer.logps(batch)
    loss = (lp - ref - 1.0).pow(2).sum()  # any loss of the policy log-probs
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.unwrapped.named_parameters() if p.grad is not None}
    return loss.item(), grads, sum(saved)


def test_pointwise_recompute_and_block_checkpointing_keep_loss_and_gradients_and_save_less(deep_model_dir):
    loss, grads, plain = _step(deep_model_dir)
    for memory in ({"recompute_pointwise": True}, {"gradient_checkpointing": True, "checkpoint_blocks": 2},
                   {"gradient_checkpointing": True}):
        other_loss, other_grads, kept = _step(deep_model_dir, **memory)
        assert other_loss == pytest.approx(loss, rel=1e-6), memory
        assert other_grads.keys() == grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(other_grads[name], g, rtol=1e-5, atol=1e-7, msg=f"{memory} {name}")
        assert kept < plain, memory
    _, _, two = _step(deep_model_dir, gradient_checkpointing=True, checkpoint_blocks=2)
    _, _, four = _step(deep_model_dir, gradient_checkpointing=True)
    assert four < two  # more blocks recomputed, fewer bytes kept


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
