"""The dry-run planner: benchmark-backed rates, checkpointing, finetune sizing, a plan that builds nothing."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from spillover.config import load_yaml_config
from spillover.study import Study, StudyConfig
from spillover.study.plan import PROFILE, WIDTH, plan

REPO = Path(__file__).resolve().parents[1]


def test_every_rate_is_copied_from_a_committed_benchmark_file():
    for name, rate in PROFILE["rates"].items():
        results = json.loads((REPO / rate["file"]).read_text())["results"]
        hits = [r for r in results if all(r.get(k) == v for k, v in rate["match"].items())]
        assert len(hits) == 1, (name, rate["file"], rate["match"])
        assert hits[0]["tokens_per_s"] == rate["tokens_per_s"], name


class FakeSuite:
    """Every set with n records of 400 characters (~100 tokens)."""

    def __init__(self, n: int = 1000):
        self.n = n

    def get(self, name, split):
        return [SimpleNamespace(prompt="x" * 400, id=f"{name}{i}") for i in range(self.n)]


def _study(tmp_path, **overrides) -> Study:
    cfg = load_yaml_config(StudyConfig, REPO / "configs" / "paper-qwen.yaml",
                           {"output_dir": str(tmp_path), "targets": ["cybersecurity"], "seeds": [0], **overrides})
    study = Study(cfg)
    study.suite = FakeSuite()
    return study


def _stage(stages, name):
    return next(s for s in stages if s.name == name)


def test_checkpointed_training_uses_the_checkpointed_rate(tmp_path):
    on = _stage(plan(_study(tmp_path)), "train/cybersecurity/unlearn")
    off = _stage(plan(_study(tmp_path, **{"training.gradient_checkpointing": False})), "train/cybersecurity/unlearn")
    assert (on.train_rate, off.train_rate) == ("train_lora_gc", "train_lora")
    assert on.train_tokens == off.train_tokens
    rates = PROFILE["rates"]
    slower = on.train_tokens / rates["train_lora_gc"]["tokens_per_s"] - on.train_tokens / rates["train_lora"]["tokens_per_s"]
    assert on.seconds() - off.seconds() == pytest.approx(slower)
    full = _stage(plan(_study(tmp_path, **{"training.full": True, "training.gradient_checkpointing": False})),
                  "train/cybersecurity/unlearn")
    assert full.train_rate == "train_full"


def test_finetune_steps_come_from_the_finetune_pool(tmp_path):
    study = _study(tmp_path, **{"variants": ["unlearn", "finetune"], "training.epochs": 1, "training.batch_size": 10})
    stages = plan(study)
    pool = 1000 - study.cfg.collect.validation_n  # the target's train prompts minus validation
    assert _stage(stages, "train/cybersecurity/finetune").note.startswith(f"{math.ceil(pool / 10)} steps on {pool} ")
    assert _stage(stages, "train/cybersecurity/unlearn").note.startswith(f"{math.ceil(pool // 2 / 10)} steps")


def test_static_backend_uses_the_static_decode_rate(tmp_path):
    assert plan(_study(tmp_path))[0].decode_rate == "decode_static"
    assert plan(_study(tmp_path, **{"models.backend": "hf"}))[0].decode_rate == "decode_hf"


def test_dry_run_prints_the_plan_to_stdout_in_80_columns_and_builds_nothing(tmp_path, data_dir):
    env = {**os.environ, "SPILLOVER_DATA_DIR": str(data_dir), "SPILLOVER_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "spillover.cli", "study", str(REPO / "configs" / "paper-qwen.yaml"),
                           "--dry-run", "--set", f"output_dir={tmp_path / 'runs'}"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(map(len, lines)) <= WIDTH
    selection = next(line for line in lines if line.startswith("MMLU selection slice:"))
    assert int(selection.split()[3].replace(",", "")) >= 200
    assert any(line.startswith("total") for line in lines)
    assert sum(line.startswith("train/") for line in lines) == 8  # 2 targets x 4 variants, seeds in one row
    assert not (tmp_path / "runs").exists()
