"""Fail fast and say what will happen: checks before any work, judge endpoint, w2, selection sizes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spillover.cli import app
from spillover.config import load_yaml_config
from spillover.io import InputError
from spillover.study import Study, StudyConfig
from spillover.study.config import CollectConfig, JudgesConfig, SelectionConfig
from spillover.training import TrainConfig

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "configs" / "paper-qwen.yaml"


def _cfg(tmp_path, **overrides) -> StudyConfig:
    return load_yaml_config(StudyConfig, PAPER, {"output_dir": str(tmp_path), **overrides})


@pytest.mark.parametrize("overrides, field", [
    ({"judges.primary": "rubric:opnai:gpt-4o-mini"}, "judges.primary"),
    ({"judges.per_set": {"toxicity": "bias-rubric:openai"}}, "judges.per_set.toxicity"),
    ({"judges.audit": "keywrd"}, "judges.audit"),
    ({"judges.audit": "rubric:local:embedded:no-such-model"}, "judges.audit"),
    ({"models.aligned": "/no/such/model/dir"}, "models.aligned"),
    ({"models.aligned": "embedded:no-such-model"}, "models.aligned"),
    ({"models.labeler": "Qwen/Qwen 2.5"}, "models.labeler"),
])
def test_bad_specs_fail_before_any_work(tmp_path, monkeypatch, overrides, field):
    cfg = _cfg(tmp_path, **overrides)
    monkeypatch.setattr(Study, "data", lambda self: pytest.fail("work started"))
    with pytest.raises(InputError, match=re.escape(field)):
        Study(cfg).run()
    assert not (tmp_path / cfg.name).exists()


def test_unknown_stage_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(Study, "data", lambda self: pytest.fail("work started"))
    with pytest.raises(InputError, match="--until: unknown stage 'trian'"):
        Study(_cfg(tmp_path)).run(until="trian")


def test_cli_reports_a_judge_typo_without_a_traceback(tmp_path):
    result = CliRunner().invoke(app, ["study", str(PAPER), "--dry-run", "--set", f"output_dir={tmp_path}",
                                      "--set", "judges.primary=rubric:opnai:gpt-4o-mini"])
    assert result.exit_code != 0 and isinstance(result.exception, InputError)
    assert "judges.primary" in str(result.exception) and not (tmp_path / "paper-qwen").exists()


def test_one_setting_moves_every_judge_to_the_endpoint(tmp_path):
    endpoint = {"base_url": "http://localhost:8000/v1", "model": "served-judge"}
    cfg = _cfg(tmp_path, **{"judges.endpoint": endpoint, "judges.audit": "rubric:local:embedded:qwen2.5-coder-1.5b-instruct"})
    specs = [cfg.judges.spec_for(s) for s in cfg.evaluation.sets] + [cfg.judges.audit_spec]
    assert all(s == "bbq" or s.endswith(":openai:served-judge") for s in specs), specs
    assert "bias-rubric:openai:served-judge" in specs and "rubric:openai:served-judge" in specs
    assert Study(cfg).judges.remote["base_url"] == endpoint["base_url"]
    plain = _cfg(tmp_path)
    assert plain.judges.spec_for("bias").endswith("gpt-4o-mini")  # without it, the preset's judges


def test_w2_zero_means_zero(tmp_path):
    assert _cfg(tmp_path, **{"training.w2": 0}).training_for("aug_unlearn", 0, "cybersecurity").w2 == 0.0
    assert _cfg(tmp_path, **{"training.w2": 0.5}).training_for("aug_finetune", 0, "cybersecurity").w2 == 0.5
    assert _cfg(tmp_path).training_for("aug_unlearn", 0, "cybersecurity").w2 == 1.0
    assert _cfg(tmp_path, **{"training.w2": 0.5}).training_for("unlearn", 0, "cybersecurity").w2 == 0.0


def test_selection_defaults_resolve_the_rule():
    sel, collect = SelectionConfig(), CollectConfig()
    assert 50 / math.sqrt(sel.mmlu_n) < sel.max_mmlu_drop  # worst-case SE of MMLU % below the allowed drop
    assert 100 / sel.mmlu_n <= sel.max_mmlu_drop / 10  # one question is a small part of the rule
    assert 50 / math.sqrt(collect.validation_n) <= 5.0  # validation refusal known to +-5 points


def test_selection_figures_carry_their_standard_error(tmp_path):
    from report_fixture import make_study
    from spillover.report import build_report
    from spillover.stats import percent_se

    assert percent_se(50.0, 100) == 5.0 and percent_se(90.0, 400) == 1.5 and percent_se(None, 10) is None
    html = build_report(make_study(tmp_path / "s")).read_text()
    assert "MMLU % &plusmn; SE" in html and "\u00b1 2.3" in html and "\u00b1 4.1" in html


@pytest.mark.parametrize("command", [
    ["collect", "--model", "m", "--target", "cyber", "--out", "o"],
    ["unlearn", "--model", "m", "--target", "cyber", "--out", "o"],
])
def test_collection_commands_require_a_study_config(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # a relative fallback would write under the working directory
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2 and "--study-config" in result.output
    assert not (tmp_path / "o").exists()


def test_docs_and_presets_agree_on_cyber_lr_and_judge_tokens():
    lora = load_yaml_config(TrainConfig, REPO / "configs" / "train-paper-lora.yaml")
    for preset in ("paper-qwen", "paper-mistral"):
        cfg = load_yaml_config(StudyConfig, REPO / "configs" / f"{preset}.yaml")
        assert cfg.training_for("unlearn", 0, "cybersecurity").lr == lora.lr
    documented = re.search(r"train-paper-lora\.yaml` \(r 128 = alpha, lr ([0-9.e-]+)",
                           (REPO / "docs" / "training.md").read_text())
    assert documented and float(documented.group(1)) == lora.lr
    full = load_yaml_config(TrainConfig, REPO / "configs" / "train-paper-full.yaml")
    assert load_yaml_config(StudyConfig, PAPER).training_for("unlearn", 0, "safety").lr == full.lr
    assert JudgesConfig().max_new_tokens is None  # each judge's own limit, as docs/judges.md documents it
    from inspect import signature

    from spillover.judges.api import OpenAIChat
    from spillover.judges.local import LocalChat

    judges_doc = (REPO / "docs" / "judges.md").read_text()
    assert f"`max_tokens` {signature(OpenAIChat).parameters['max_new_tokens'].default}" in judges_doc
    assert f"`max_new_tokens` {signature(LocalChat).parameters['max_new_tokens'].default} by default" in judges_doc


def test_a_local_pillar_classifier_model_is_checked_before_any_work(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, **{"data.classifier": {"backend": "hf", "model": "embedded:no-such-model"}})
    monkeypatch.setattr(Study, "data", lambda self: pytest.fail("work started"))
    with pytest.raises(InputError, match=r"data\.classifier\.model"):
        Study(cfg).run()
