"""Refusal unlearning and finetuning objectives (objectives.OBJECTIVES), LoRA or full-rank, with diagnostics.

Importing this package is cheap; heavy libraries load when a function needs them.
"""

from .checkpoints import CheckpointInfo
from .config import LoraSettings, TrainConfig
from .diagnostics import Diagnostics, select_checkpoint
from .examples import Example
from .objectives import OBJECTIVES, Objective, ce_loss, npo_loss, objective_for
from .trainer import Trainer, npo_step, train

__all__ = ["OBJECTIVES", "CheckpointInfo", "Diagnostics", "Example", "LoraSettings", "Objective", "TrainConfig",
           "Trainer", "ce_loss", "npo_loss", "npo_step", "objective_for", "select_checkpoint", "train"]
