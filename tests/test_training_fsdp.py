"""Full-rank FSDP2 in two CPU processes: checkpoints hold the whole weights and resume exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from fsdp_train import CFG, FORGET, FSDP
from spillover.models import load_model
from spillover.training import train
from spillover.training.checkpoints import RESUME_FILES

SCRIPT = Path(__file__).with_name("fsdp_train.py")
REPO = Path(__file__).resolve().parents[1]


def _launch(model_dir: Path, *runs: str) -> None:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(SCRIPT),
                           str(model_dir), *runs], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _log(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The weights as ``from_pretrained`` loads them."""
    return load_model(str(model_dir), device="cpu", dtype="fp32")[0].state_dict()


def test_fsdp2_checkpoints_hold_whole_weights_and_resume_exactly(tiny_model_dir, tmp_path, monkeypatch):
    shipped = yaml.safe_load((REPO / "configs" / "accelerate" / "fsdp-2gpu.yaml").read_text())["fsdp_config"]
    assert {k: shipped[f"fsdp_{k}"] for k in FSDP} == FSDP  # the run tests the shipped settings
    whole, cut, ref = tmp_path / "fsdp", tmp_path / "resumed", tmp_path / "one-process"
    _launch(tiny_model_dir, str(whole), f"{cut}:3")  # an uninterrupted run; one that stops after step 3
    assert [r["step"] for r in _log(cut)] == [1, 2, 3]
    _launch(tiny_model_dir, str(cut))  # fresh processes resume from checkpoint-2
    # the unsharded reference: one process accumulating the two processes' micro-batches, on the
    # CPU in fp32 as the gloo processes are (a GPU would train it under bf16 autocast)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    train(load_model(str(tiny_model_dir), device="cpu", dtype="fp32"), FORGET, None,
          CFG.model_copy(update={"grad_accum": 2}), ref)

    init = _weights(tiny_model_dir)
    for step in (2, 4):
        got, want = _weights(whole / f"checkpoint-{step}"), _weights(ref / f"checkpoint-{step}")
        assert got.keys() == want.keys()
        for name, w in want.items():
            moved = (w - init[name]).abs().max().item()
            assert moved > 1e-4, name  # every tensor trained, on both processes' shards
            torch.testing.assert_close(got[name], w, rtol=0, atol=moved * 1e-3, msg=name)

    for run in (whole, cut):
        kept = {c: {f for f in RESUME_FILES if (run / c / f).exists()} for c in ("checkpoint-2", "checkpoint-4")}
        assert kept == {"checkpoint-2": set(), "checkpoint-4": {"optimizer", "scheduler.pt", "rng_state.pt"}}
        assert {p.name for p in (run / "checkpoint-4" / "optimizer" / "optimizer_0").iterdir()} == {
            ".metadata", "__0_0.distcp", "__1_0.distcp"}  # each process wrote its shard

    assert [r["step"] for r in _log(cut)] == [1, 2, 3, 4]
    for a, b in zip(_log(whole), _log(cut)):
        assert (b["loss"], b["lr"]) == (a["loss"], a["lr"]), a["step"]  # step 4 follows the restored Adam moments
    got, want = _weights(cut / "checkpoint-4"), _weights(whole / "checkpoint-4")
    for name, w in want.items():
        torch.testing.assert_close(got[name], w, rtol=0, atol=0, msg=name)
