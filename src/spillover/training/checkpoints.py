"""Atomic training checkpoints: weights (adapter or full, safetensors) + optimizer/scheduler/RNG.

``out_dir/checkpoint-<step>/`` is written as ``.checkpoint-<step>.tmp`` and renamed when
complete, so a directory with that name is always whole; resume picks the highest step. Only
that latest checkpoint keeps the optimizer, scheduler and RNG state (for a 7B full-rank run the
optimizer state is several times the weights); older ones keep their weights for evaluation.

Every process takes part in saving and loading. The weights are always written whole, as
``save_pretrained`` writes them, gathered first when FSDP shards them; FSDP's optimizer state is
written by every process into ``optimizer/`` with accelerate's FSDP helpers (a
``torch.distributed.checkpoint`` directory of shards with FSDP's ``SHARDED_STATE_DICT``).
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io import InputError, read_json, write_json

STATE_FILE = "trainer_state.json"
#: What resuming needs beside the weights; kept in the latest checkpoint only. The optimizer state
#: is ``optimizer.pt`` (one process, or replicas) or the folder ``optimizer/`` (FSDP).
RESUME_FILES = ("optimizer.pt", "optimizer", "scheduler.pt", "rng_state.pt")


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


def _fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def save_checkpoint(out_dir: Path, step: int, accelerator, model, tokenizer, optimizer, scheduler, state: dict,
                    adapter: bool) -> CheckpointInfo:
    """Write checkpoint-<step> atomically; every process calls it. ``model`` is the prepared model.

    ``optimizer`` and ``scheduler`` None (a training-free edit): no resume files are written.
    """
    final = Path(out_dir) / f"checkpoint-{step}"
    tmp = Path(out_dir) / f".checkpoint-{step}.tmp"
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    weights = accelerator.get_state_dict(model)  # whole tensors on the main process (gathered under FSDP)
    if _fsdp(accelerator) and optimizer is not None:
        from accelerate.utils import save_fsdp_optimizer

        save_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, tmp / "optimizer")
    accelerator.wait_for_everyone()  # every shard is written
    if main:
        accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=weights, safe_serialization=True)
        if not adapter:
            tokenizer.save_pretrained(tmp)
        resume = {} if optimizer is None else {"scheduler.pt": scheduler.state_dict(), "rng_state.pt": rng_state()}
        if optimizer is not None and not _fsdp(accelerator):
            resume["optimizer.pt"] = optimizer.state_dict()
        for name, obj in resume.items():
            torch.save(obj, tmp / name)
        write_json(tmp / STATE_FILE, {**state, "step": step, "adapter": adapter})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for older in list_checkpoints(out_dir):  # the new one is whole: the others no longer resume
            if older.step < step:
                for name in RESUME_FILES:
                    _remove(older.path / name)
    accelerator.wait_for_everyone()
    return CheckpointInfo(step, final, adapter)


def _shared_names(model) -> set[str]:
    """Parameter names that another name also refers to (tied weights)."""
    seen: dict[int, str] = {}
    shared = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            shared.update({name, seen[id(p)]})
        seen[id(p)] = name
    return shared


def _read_weights(ckpt: CheckpointInfo) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(ckpt.path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{ckpt.path}: no safetensors weights")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(load_file(f))
    return weights


def _load_weights(ckpt: CheckpointInfo, accelerator, model) -> None:
    """The adapter (into the peft model) or the full weights; under FSDP the main process reads them
    and every process receives its shards."""
    if _fsdp(accelerator):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        if ckpt.adapter:
            raise InputError(f"{ckpt.path}: resuming LoRA training under FSDP is not supported; "
                             f"resume it without FSDP or train full-rank")
        weights = _read_weights(ckpt) if accelerator.is_main_process else {}
        missing, unexpected = set_model_state_dict(
            model, weights, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False))
    else:
        model = accelerator.unwrap_model(model)
        weights = _read_weights(ckpt)
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


def load_checkpoint(ckpt: CheckpointInfo, accelerator, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG state; return the trainer_state.json contents.

    Every process calls it with the prepared ``model``; under FSDP each reads its optimizer shards.
    """
    _load_weights(ckpt, accelerator, model)
    if _fsdp(accelerator):
        from accelerate.utils import load_fsdp_optimizer

        load_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, ckpt.path / "optimizer")
    else:
        optimizer.load_state_dict(torch.load(ckpt.path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(ckpt.path / "scheduler.pt", weights_only=True))
    set_rng_state(torch.load(ckpt.path / "rng_state.pt", weights_only=False))
    return read_json(ckpt.path / STATE_FILE)
