"""Checkpoint selection's MMLU slice: disjoint from evaluation's, never empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillover.config import load_yaml_config
from spillover.io import InputError
from spillover.study import Study, StudyConfig
from spillover.study.pipeline import mmlu_slices

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class FakeSuite:
    def __init__(self, n_mmlu: int):
        self.mmlu = [f"q{i}" for i in range(n_mmlu)]

    def get(self, name, split):
        assert (name, split) == ("mmlu", "test")
        return self.mmlu


@pytest.mark.parametrize("preset", ["paper-qwen", "paper-mistral"])
def test_paper_presets_select_on_a_disjoint_mmlu_slice(preset, tmp_path):
    cfg = load_yaml_config(StudyConfig, CONFIGS / f"{preset}.yaml")
    assert cfg.evaluation.mmlu_n is None  # "all questions": the case that left selection empty
    study = Study(cfg, root=tmp_path)
    study.suite = FakeSuite(1600)
    evaluation, selection = study.mmlu_records()
    assert len(selection) == cfg.selection.mmlu_n >= 200
    assert not set(evaluation) & set(selection)
    assert len(evaluation) == 1600 - len(selection)


def test_slices_are_disjoint_and_sized():
    qs = list(range(100))
    ev, sel = mmlu_slices(qs, 30, 20)
    assert len(ev) == 30 and len(sel) == 20 and not set(ev) & set(sel)
    ev, sel = mmlu_slices(qs, 0, 20)
    assert ev == [] and len(sel) == 20
    ev, sel = mmlu_slices(qs, None, 100 - 1)
    assert len(ev) == 1 and len(sel) == 99


@pytest.mark.parametrize("eval_n, sel_n", [(None, 100), (90, 20), (0, 101)])
def test_slices_that_do_not_fit_are_an_error_naming_the_fields(eval_n, sel_n):
    with pytest.raises(InputError, match=r"selection\.mmlu_n .*evaluation\.mmlu_n"):
        mmlu_slices(list(range(100)), eval_n, sel_n)
