"""A LossContext over given tensors, for checking objectives against hand computations."""

from __future__ import annotations

import torch

from spillover.training.examples import IGNORE


def labels_for(n_tokens: list[int]) -> torch.Tensor:
    """Labels (B, T) whose shifted part scores ``n_tokens[i]`` response tokens in row i."""
    width = max(n_tokens) + 1
    labels = torch.full((len(n_tokens), width), IGNORE, dtype=torch.long)
    for i, n in enumerate(n_tokens):
        labels[i, 1:1 + n] = 1
    return labels


class FixedContext:
    """Returns the log-probs given per batch prefix ("" or "rejected_") and reference."""

    num_layers = 2

    def __init__(self, logps: dict[str, torch.Tensor], ref: dict[str, torch.Tensor] | None = None):
        self._logps, self._ref = logps, ref or {}

    def logps(self, batch, prefix: str = "") -> torch.Tensor:
        return self._logps[prefix]

    def reference_logps(self, batch, prefix: str = "") -> torch.Tensor:
        return self._ref[prefix]
