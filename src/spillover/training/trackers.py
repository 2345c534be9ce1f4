"""Experiment trackers (``TrainConfig.log_with``) through accelerate's tracker API.

Every ``train_log.jsonl`` row goes to the trackers as ``train/<key>`` and every
``diagnostics.jsonl`` row as ``diagnostics/<key>`` (nested keys joined by "/", e.g.
``diagnostics/kl/cybersecurity``), at the row's step. TensorBoard writes event files to
``out_dir/tensorboard``; a resumed run purges the events after the checkpoint it resumes from, as
the JSONL logs drop their rows. W&B runs offline (files under ``out_dir/wandb``) unless
``WANDB_MODE`` says otherwise.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..io import InputError

TENSORBOARD_DIR = "tensorboard"
#: The W&B project a run is logged to (its run name is the output directory's name).
WANDB_PROJECT = "spillover"
_INSTALL = {"tensorboard": "pip install 'spillover[trackers]'", "wandb": "pip install wandb"}


def check_installed(names: list[str]) -> None:
    """Raise InputError naming ``training.log_with`` when a requested tracker's package is missing."""
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        raise InputError("training.log_with: " + "; ".join(f"{n} is not installed ({_INSTALL[n]})" for n in missing))


def build_trackers(names: list[str], out_dir: Path, start: int) -> list:
    """accelerate trackers for ``names``; ``start`` is the step a run resumes after (0: a fresh run)."""
    from accelerate.tracking import TensorBoardTracker, WandBTracker

    check_installed(names)
    out = []
    for name in dict.fromkeys(names):
        if name == "tensorboard":
            # events at steps >= purge_step from an earlier attempt are hidden from readers
            out.append(TensorBoardTracker(TENSORBOARD_DIR, out_dir, purge_step=start + 1 if start else 0))
        else:
            out.append(WandBTracker(WANDB_PROJECT, dir=str(out_dir), name=out_dir.name,
                                    mode=os.environ.get("WANDB_MODE", "offline")))
    return out


def flatten(row: dict, prefix: str) -> dict[str, float]:
    """Numeric values of ``row`` (but its step) as {"<prefix>/<key>[/<subkey>]": value}."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if key == "step":
            continue
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}/{key}"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}/{key}"] = value
    return out


def config_values(cfg: dict, prefix: str = "") -> dict[str, bool | int | float | str]:
    """A config dump flattened to the scalar values trackers store ("lora.r"; lists and None as text)."""
    out: dict = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(config_values(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out
