"""Per-checkpoint diagnostics and the checkpoint selection rule.

At step 0 and at every checkpoint: the first-response-token KL(aligned || trained) per domain
on held-out prompts (the paper's Figure 2), and MMLU accuracy. The aligned distribution is the
adapter-disabled model for LoRA runs; full-rank runs cache it before the first update.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .logprobs import next_token_logprobs


@dataclass
class Diagnostics:
    """What to measure: held-out prompts per domain for KL, and MMLU records (or None).

    KL prompts are rendered with the run's own ``TrainConfig.system_prompt`` (the runner's).
    """

    kl_prompts: dict[str, list[str]]
    mmlu: list | None = None
    batch_size: int = 8
    mmlu_method: str = "letter"
    #: JSON file memoising the untrained model's MMLU result, shared by the runs that start from
    #: the same weights with the same questions, method and system prompt (the caller keys it).
    step0_mmlu: Path | None = None


def first_token_logprobs(model, tokenizer, prompts: list[str], batch_size: int = 8,
                         system_prompt: str | None = None) -> torch.Tensor:
    """(N, V) fp32 log-probs of the first response token, on the CPU."""
    was_training = model.training
    model.eval()
    try:
        parts = [lp.cpu() for lp in next_token_logprobs(model, tokenizer, prompts, batch_size, system_prompt)]
    finally:
        model.train(was_training)
    return torch.cat(parts)


def kl_divergence(aligned: torch.Tensor, trained: torch.Tensor) -> torch.Tensor:
    """KL(aligned || trained) per row, (N,), from log-probs (N, V)."""
    return (aligned.exp() * (aligned - trained)).sum(dim=-1)


class DiagnosticsRunner:
    """Runs a ``Diagnostics`` spec on a model and returns one JSON row per step.

    ``system_prompt``: the system turn the model is trained with, also put before each KL prompt.
    """

    def __init__(self, spec: Diagnostics, tokenizer, out_dir: Path, lora: bool, system_prompt: str | None = None):
        self.spec, self.tokenizer, self.out_dir, self.lora = spec, tokenizer, Path(out_dir), lora
        self.system_prompt = system_prompt
        self.aligned: dict[str, torch.Tensor] = {}

    def _first(self, model, prompts: list[str]) -> torch.Tensor:
        return first_token_logprobs(model, self.tokenizer, prompts, self.spec.batch_size, self.system_prompt)

    def cache_aligned(self, model) -> None:
        """Store the aligned first-token distributions (full-rank: call before training)."""
        self.aligned = {d: self._first(model, ps) for d, ps in self.spec.kl_prompts.items()}

    def _aligned(self, model, domain: str) -> torch.Tensor:
        if domain in self.aligned:
            return self.aligned[domain]
        if not self.lora:
            raise RuntimeError("full-rank diagnostics need cache_aligned() before training")
        ctx = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
        with ctx:
            return self._first(model, self.spec.kl_prompts[domain])

    @torch.no_grad()
    def run(self, model, step: int) -> dict:
        """{"step", "kl": {domain: mean KL}, "mmlu_correct", "mmlu_n", "mmlu_acc"} for ``model`` now."""
        row: dict = {"step": step, "kl": {}}
        for domain, prompts in self.spec.kl_prompts.items():
            if prompts:
                kl = kl_divergence(self._aligned(model, domain), self._first(model, prompts))
                row["kl"][domain] = float(f"{float(kl.mean()):.6g}")
        if self.spec.mmlu:
            correct, n = self._mmlu(model, step)
            row.update(mmlu_correct=correct, mmlu_n=n, mmlu_acc=round(100.0 * correct / n, 3))
        return row

    def _mmlu(self, model, step: int) -> tuple[int, int]:
        """(correct, n) on the MMLU records; step 0 is read from ``step0_mmlu`` when it exists."""
        from ..io import read_json, write_json
        from ..mmlu import mmlu_accuracy

        memo = self.spec.step0_mmlu if step == 0 else None
        if memo is not None and Path(memo).is_file():
            got = read_json(memo)
            return got["correct"], got["n"]
        correct, n = mmlu_accuracy(model, self.tokenizer, self.spec.mmlu, self.spec.batch_size,
                                   self.spec.mmlu_method)
        if memo is not None:
            write_json(memo, {"correct": correct, "n": n})
        return correct, n


def select_checkpoint(rows: list[dict], baseline_mmlu: float, max_drop: float = 3.0,
                      target_refusal: dict[int, float] | None = None) -> int | None:
    """Pick a checkpoint step from diagnostics rows.

    A checkpoint passes when its MMLU accuracy (percent) is less than ``max_drop`` percentage
    points below ``baseline_mmlu`` (the aligned model's accuracy, percent). Among passing
    checkpoints the one with the lowest target-domain refusal rate (``target_refusal``: step ->
    refusal %, measured on a validation slice) wins, ties going to the earlier step; without
    refusal rates (or none for a passing step) the latest passing checkpoint wins. Step 0 (the
    untrained model) is never picked. Returns None when no checkpoint passes.
    """
    passing = [r["step"] for r in rows
               if r["step"] > 0 and "mmlu_acc" in r and baseline_mmlu - r["mmlu_acc"] < max_drop]
    if not passing:
        return None
    scored = [s for s in passing if target_refusal and s in target_refusal]
    if scored:
        return min(scored, key=lambda s: (target_refusal[s], s))
    return max(passing)
