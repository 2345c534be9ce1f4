"""Atomic training checkpoints: weights (adapter or full, safetensors) + optimizer/scheduler/RNG.

``out_dir/checkpoint-<step>/`` is written as ``.checkpoint-<step>.tmp`` and renamed when
complete, so a directory with that name is always whole; resume picks the highest step. Only
that latest checkpoint keeps the optimizer, scheduler and RNG state (for a 7B full-rank run the
optimizer state is several times the weights); older ones keep their weights for evaluation.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io import read_json, write_json

STATE_FILE = "trainer_state.json"
#: What resuming needs beside the weights; kept in the latest checkpoint only.
RESUME_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pt")


@dataclass(frozen=True)
class CheckpointInfo:
    """A saved checkpoint: its step, directory, and whether it holds a LoRA adapter."""

    step: int
    path: Path
    adapter: bool


def list_checkpoints(out_dir: Path) -> list[CheckpointInfo]:
    """Complete checkpoints under ``out_dir``, by step."""
    found = []
    for d in Path(out_dir).glob("checkpoint-*"):
        if d.is_dir() and d.name.removeprefix("checkpoint-").isdigit() and (d / STATE_FILE).exists():
            state = read_json(d / STATE_FILE)
            found.append(CheckpointInfo(int(state["step"]), d, bool(state["adapter"])))
    return sorted(found, key=lambda c: c.step)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir: Path, step: int, model, tokenizer, optimizer, scheduler, state: dict,
                    adapter: bool) -> CheckpointInfo:
    """Write checkpoint-<step> atomically. ``model`` is the unwrapped (peft or plain) model."""
    final = Path(out_dir) / f"checkpoint-{step}"
    tmp = Path(out_dir) / f".checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if not adapter:
        tokenizer.save_pretrained(tmp)
    for name, obj in zip(RESUME_FILES, (optimizer.state_dict(), scheduler.state_dict(), rng_state())):
        torch.save(obj, tmp / name)
    write_json(tmp / STATE_FILE, {**state, "step": step, "adapter": adapter})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for older in list_checkpoints(out_dir):  # the new one is whole: the others no longer resume
        if older.step < step:
            for name in RESUME_FILES:
                (older.path / name).unlink(missing_ok=True)
    return CheckpointInfo(step, final, adapter)


def _shared_names(model) -> set[str]:
    """Parameter names whose storage another parameter also uses (tied weights)."""
    seen: dict[int, str] = {}
    shared = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        ptr = p.data_ptr()
        if ptr in seen:
            shared.update({name, seen[ptr]})
        seen[ptr] = name
    return shared


def load_weights(ckpt: CheckpointInfo, model) -> None:
    """Load a checkpoint's adapter (into a peft model) or full weights (into the plain model)."""
    from safetensors.torch import load_file

    files = sorted(ckpt.path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{ckpt.path}: no safetensors weights")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(load_file(f))
    if ckpt.adapter:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, weights)
        if result.unexpected_keys:
            raise RuntimeError(f"{ckpt.path}: adapter keys not in the model: {result.unexpected_keys[:5]}")
        return
    missing, unexpected = model.load_state_dict(weights, strict=False)
    untied_missing = set(missing) - _shared_names(model)
    if unexpected or untied_missing:
        raise RuntimeError(f"{ckpt.path}: weights do not match the model "
                           f"(missing {sorted(untied_missing)[:5]}, unexpected {sorted(unexpected)[:5]})")


def load_training_state(ckpt: CheckpointInfo, optimizer, scheduler) -> dict:
    """Restore optimizer, scheduler and RNG state; return the trainer_state.json contents."""
    optimizer.load_state_dict(torch.load(ckpt.path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(ckpt.path / "scheduler.pt", weights_only=True))
    set_rng_state(torch.load(ckpt.path / "rng_state.pt", weights_only=False))
    return read_json(ckpt.path / STATE_FILE)
