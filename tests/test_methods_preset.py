"""configs/methods-cpu.yaml: every method, standard-cpu's sizes, the targets its header names."""

from __future__ import annotations

import csv
from pathlib import Path

from spillover.config import load_yaml_config
from spillover.study.config import StudyConfig
from spillover.training.objectives import OBJECTIVES, objective_class
from spillover.variants import VARIANT_TABLE

REPO = Path(__file__).resolve().parents[1]


def _preset(name: str) -> StudyConfig:
    return load_yaml_config(StudyConfig, REPO / "configs" / f"{name}.yaml")


def test_the_targets_are_those_with_the_clearest_ema_in_the_standard_run():
    """Most Holm-significant off-target drops of plain unlearning, ties to the larger mean drop."""
    with (REPO / "results" / "standard-cpu" / "results" / "ema_matrix.csv").open(newline="") as f:
        cells = [r for r in csv.DictReader(f) if r["variant"] == "unlearn"]
    score = {}
    for t in {r["target"] for r in cells}:
        mine = [r for r in cells if r["target"] == t]
        score[t] = (sum(r["verdict"] == "drop" for r in mine), -sum(float(r["delta"]) for r in mine) / len(mine))
    ranked = sorted(score, key=score.get, reverse=True)
    assert score[ranked[1]][0] == score[ranked[2]][0]  # the tie the mean drop breaks
    assert {t.value for t in _preset("methods-cpu").targets} == set(ranked[:2])


def test_every_method_once_with_the_standard_sizes_and_one_step_budget():
    methods, standard = _preset("methods-cpu"), _preset("standard-cpu")
    assert sorted(VARIANT_TABLE[v].method for v in methods.variants) == sorted(OBJECTIVES)
    for section in ("models", "judges", "evaluation", "collect", "selection"):
        assert getattr(methods, section) == getattr(standard, section), section
    assert methods.training == standard.training
    trained = [v for v in methods.variants if objective_class(VARIANT_TABLE[v].method).trains]
    budgets = {(c.max_steps, c.batch_size, c.grad_accum, c.lr, c.lora.r, c.full)
               for c in (methods.training_for(v, 0, "safety") for v in trained)}
    assert budgets == {(8, 4, 1, 1e-4, standard.training.lora.r, False)}
