"""Full-rank training in bf16: small updates must not round away."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spillover.models import load_model
from spillover.training import Example, TrainConfig, Trainer
from spillover.training.config import LoraSettings
from spillover.training.examples import EncodedSet
from spillover.training.optim import build_optimizer, master_weights

REPO = Path(__file__).resolve().parents[1]
FORGET = [Example(f"f{i}", f"Tell me secret number {i}", "I'm sorry, but I can't help with that request.")
          for i in range(4)]


def _one_step_changed(tiny_model_dir, cfg: TrainConfig) -> tuple[float, set[torch.dtype]]:
    """Fraction of trained weights (optimizer's value) changed by one NPO step of a bf16 model."""
    model, tok = load_model(str(tiny_model_dir), device="cpu", dtype="bf16")
    batch = EncodedSet(FORGET, tok, 64).batch(list(range(len(FORGET))), tok.pad_token_id)
    trainer = Trainer(model, tok, cfg, num_steps=10)
    batch["ref_logps"] = trainer.frozen_logps(batch)
    params = [p for p in trainer.unwrapped.parameters() if p.requires_grad]
    before = [p.detach().float().clone() for p in params]
    trainer.train_step([(batch, None)])
    changed = sum(int((master_weights(trainer.optimizer, p) != b).sum()) for p, b in zip(params, before))
    return changed / sum(b.numel() for b in before), {p.dtype for p in params}


def test_default_full_rank_step_moves_every_bf16_weight(tiny_model_dir):
    frac, dtypes = _one_step_changed(tiny_model_dir, TrainConfig(full=True, lr=1e-5, batch_size=4))
    assert dtypes == {torch.bfloat16}  # half the memory of fp32 master weights
    assert frac >= 0.99


def test_plain_bf16_adamw_loses_most_small_updates(tiny_model_dir):
    frac, _ = _one_step_changed(tiny_model_dir, TrainConfig(full=True, lr=1e-5, batch_size=4, kahan_sum=False))
    assert frac < 0.5  # docs/training.md: measured fraction


def test_paper_preset_full_rank_safety_run_keeps_updates(tiny_model_dir):
    from spillover.config import load_yaml_config
    from spillover.study.config import StudyConfig

    cfg = load_yaml_config(StudyConfig, REPO / "configs" / "paper-qwen.yaml").training_for("unlearn", 0, "safety")
    assert cfg.full and cfg.lr == 1e-5
    frac, _ = _one_step_changed(tiny_model_dir, cfg.model_copy(update={"batch_size": 4,
                                                                       "gradient_checkpointing": False}))
    assert frac >= 0.99


@pytest.mark.parametrize("kahan", [True, False])
def test_kahan_adamw_tracks_fp32_adamw_over_many_small_steps(kahan):
    torch.manual_seed(0)
    init = (torch.randn(20000) * 0.02).bfloat16().float()  # both start from the same bf16 values
    drift = torch.randn(20000).sign()
    grads = [drift + 0.5 * torch.randn(20000) for _ in range(30)]  # each weight drifts one way
    ref = torch.nn.Parameter(init.clone())
    low = torch.nn.Parameter(init.bfloat16())
    opts = [build_optimizer([ref], 1e-5, 0.0, kahan=False), build_optimizer([low], 1e-5, 0.0, kahan=kahan)]
    for g in grads:
        ref.grad, low.grad = g.clone(), g.bfloat16()
        for opt in opts:
            opt.step()
    ulp = torch.ldexp(torch.ones_like(init), torch.frexp(ref.detach())[1] - 8)  # bf16 spacing at the fp32 value
    within = ((low.detach().float() - ref.detach()).abs() <= ulp).float().mean().item()
    assert (ref.detach() - init).abs().median() > 4 * ulp.median()  # fp32 moved several bf16 steps
    if kahan:
        assert within >= 0.99
    else:
        assert within < 0.1


SHARDED_SCRIPT = """
import sys
from pathlib import Path
import torch, torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor
from spillover.training.optim import build_optimizer, master_weights
dist.init_process_group("gloo")
mesh = init_device_mesh("cpu", (2,))
torch.manual_seed(0)
init = (torch.randn(64, 8) * 0.02).bfloat16()
grads = [torch.randn(64, 8).bfloat16() for _ in range(3)]
sharded = torch.nn.Parameter(distribute_tensor(init.clone(), mesh, [Shard(0)]))
whole = torch.nn.Parameter(init.clone())
opts = [build_optimizer([sharded], 1e-5, 0.0, kahan=True, processes=2),
        build_optimizer([whole], 1e-5, 0.0, kahan=True, processes=1)]
for g in grads:
    sharded.grad, whole.grad = distribute_tensor(g, mesh, [Shard(0)]), g.clone()
    for opt in opts:
        opt.step()
same = torch.equal(sharded.full_tensor(), whole.detach())
same_master = torch.equal(master_weights(opts[0], sharded).full_tensor(), master_weights(opts[1], whole))
moved = (master_weights(opts[1], whole) != init.float()).float().mean().item()
Path(sys.argv[1], f"rank{dist.get_rank()}.txt").write_text(
    f"{type(opts[0]).__module__} same={same} master={same_master} moved={moved:.3f}")
dist.barrier()
dist.destroy_process_group()
"""


def test_kahan_adamw_on_sharded_dtensors_matches_unsharded(tmp_path):
    """FSDP2 keeps parameters as sharded DTensors; with bf16 weights the Kahan optimizer runs on them."""
    import os
    import subprocess
    import sys

    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script),
                           str(tmp_path)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text() == "optimi.adamw same=True master=True moved=1.000"


def _lora_step(tiny_model_dir, dtype: str):
    model, tok = load_model(str(tiny_model_dir), device="cpu", dtype="bf16")
    batch = EncodedSet(FORGET, tok, 64).batch(list(range(len(FORGET))), tok.pad_token_id)
    trainer = Trainer(model, tok, TrainConfig(lr=1e-5, batch_size=4, lora=LoraSettings(r=4, dtype=dtype)), num_steps=10)
    named = [(n, p) for n, p in trainer.unwrapped.named_parameters() if p.requires_grad]
    before = [p.detach().float().clone() for _, p in named]
    trainer.train_step([(batch, None)])
    moved = [(master_weights(trainer.optimizer, p) != b).float().mean().item()
             for (n, p), b in zip(named, before) if "lora_B" in n]  # B starts at 0: only B moves at step 1
    return {p.dtype for _, p in named}, type(trainer.optimizer.optimizer).__module__, min(moved)


def test_default_lora_adapters_take_the_model_dtype_and_keep_every_small_update(tiny_model_dir):
    dtypes, optimizer, least_moved = _lora_step(tiny_model_dir, "model")
    assert dtypes == {torch.bfloat16} and optimizer.startswith("optimi")  # Kahan-compensated
    assert least_moved >= 0.99


def test_fp32_lora_adapters_stay_fp32_on_a_bf16_model(tiny_model_dir):
    dtypes, optimizer, least_moved = _lora_step(tiny_model_dir, "fp32")
    assert dtypes == {torch.float32} and optimizer.startswith("torch")
    assert least_moved >= 0.99
