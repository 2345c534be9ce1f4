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
from spillover.io import InputError
from spillover.study.plan import DEFAULT_PROFILE, PROFILE, PROFILES_DIR, WIDTH, StagePlan, load_profile, plan

REPO = Path(__file__).resolve().parents[1]
VALUES = ("tokens_per_s", "overhead_s", "judgments_per_s", "seconds", "save_s", "load_s")


@pytest.mark.parametrize("path", [DEFAULT_PROFILE, *sorted(PROFILES_DIR.glob("*.json"))], ids=lambda p: p.stem)
def test_every_rate_is_copied_from_a_committed_benchmark_file(path):
    for name, rate in load_profile(path)["rates"].items():
        payload = json.loads((REPO / rate["file"]).read_text())
        results = payload.get("results", [payload])
        hits = [r for r in results if all(r.get(k) == v for k, v in rate["match"].items())]
        assert len(hits) == 1, (name, rate["file"], rate["match"])
        assert any(k in rate for k in VALUES), name
        for key in VALUES:
            if key in rate:
                assert hits[0][key] == rate[key], (name, key)


def test_a_profile_is_a_file_or_a_shipped_name(tmp_path):
    assert load_profile(None) == PROFILE
    for path in PROFILES_DIR.glob("*.json"):
        assert load_profile(path.stem) == load_profile(path)
    with pytest.raises(InputError, match="no such file"):
        load_profile(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="rates"):
        load_profile(tmp_path / "bad.json")


def test_fixed_costs_judge_calls_loads_and_checkpoints_are_counted_when_the_profile_has_them():
    stage = StagePlan("train/x/unlearn", new_tokens=1000, decode_steps=10, train_tokens=2000, train_passes=4,
                      forward_tokens=500, forward_batches=2, train_rate="train_lora_gc_ce", decode_rate="decode_static",
                      judged={"default": 300, "keyword": 50}, label_tokens=100, label_steps=1, model_loads=2,
                      checkpoints_saved=3, checkpoints_loaded=3, checkpoint_kind="lora", judge_loads=1)
    bare = {"rates": {"decode_static": {"tokens_per_s": 100.0}, "train_lora_gc": {"tokens_per_s": 1000.0},
                      "forward": {"tokens_per_s": 500.0}}}
    terms, missing = stage.terms(bare)
    # CE falls back to the NPO rate; the label model to the decoding rate; no fixed costs
    assert terms == pytest.approx({"decode": 10.0, "train": 2.0, "forward": 1.0, "label model": 1.0})
    assert missing == {"default judge calls", "model loads", "checkpoint I/O"}
    full = {"rates": {**bare["rates"], "decode_static": {"tokens_per_s": 100.0, "overhead_s": 0.5},
                      "train_lora_gc_ce": {"tokens_per_s": 500.0, "overhead_s": 0.25},
                      "decode_static_label": {"tokens_per_s": 50.0},
                      "judge": {"judgments_per_s": 100.0, "load_s": 2.0}, "model_load": {"seconds": 1.5},
                      "checkpoint_lora": {"save_s": 1.0, "load_s": 2.0}}}
    terms, missing = stage.terms(full)
    assert missing == set()
    assert terms == pytest.approx({"decode": 10 + 10 * 0.5, "train": 4 + 4 * 0.25, "forward": 1.0, "label model": 2.0,
                                   "judge": 3.0 + 2.0, "model loads": 3.0, "checkpoint I/O": 9.0})
    assert stage.seconds(full) == pytest.approx(sum(terms.values()))


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
    assert (on.train_rate, off.train_rate) == ("train_lora_bf16_gc", "train_lora_bf16")  # adapters in the model dtype
    assert on.train_tokens == off.train_tokens
    rates = PROFILE["rates"]
    slower = (on.train_tokens / rates["train_lora_bf16_gc"]["tokens_per_s"]
              - on.train_tokens / rates["train_lora_bf16"]["tokens_per_s"])
    assert on.seconds() - off.seconds() == pytest.approx(slower)
    fp32 = _stage(plan(_study(tmp_path, **{"training.lora.dtype": "fp32"})), "train/cybersecurity/unlearn")
    assert fp32.train_rate == "train_lora_gc"
    full = _stage(plan(_study(tmp_path, **{"training.full": True, "training.gradient_checkpointing": False})),
                  "train/cybersecurity/unlearn")
    assert full.train_rate == "train_full"


def test_a_profile_without_bf16_adapter_rates_counts_them_at_the_fp32_rate_and_says_so(tmp_path):
    stage = _stage(plan(_study(tmp_path)), "train/cybersecurity/unlearn")
    rates = {k: v for k, v in PROFILE["rates"].items() if "lora_bf16" not in k}
    terms, missing = stage.terms({"rates": rates})
    assert terms["train"] == pytest.approx(stage.train_tokens / rates["train_lora_gc"]["tokens_per_s"]
                                           + stage.train_passes * rates["train_lora_gc"].get("overhead_s", 0.0))
    assert "bf16-adapter training (counted at the fp32-adapter rate)" in missing
    assert "bf16-adapter training (counted at the fp32-adapter rate)" not in stage.terms()[1]


def test_finetune_steps_come_from_the_finetune_pool(tmp_path):
    study = _study(tmp_path, **{"variants": ["unlearn", "finetune"], "training.epochs": 1, "training.batch_size": 10})
    stages = plan(study)
    pool = 1000 - study.cfg.collect.validation_n  # the target's train prompts minus validation
    assert _stage(stages, "train/cybersecurity/finetune").note.startswith(f"{math.ceil(pool / 10)} steps on {pool} ")
    assert _stage(stages, "train/cybersecurity/unlearn").note.startswith(f"{math.ceil(pool // 2 / 10)} steps")


def test_static_backend_uses_the_static_decode_rate(tmp_path):
    assert plan(_study(tmp_path, **{"models.backend": "static"}))[0].decode_rate == "decode_static"
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
    disk = next(i for i, line in enumerate(lines) if line.startswith("disk, sized for Qwen/Qwen2.5-7B-Instruct"))
    for table in (lines[:disk], lines[disk:]):  # time, then disk: a total and one row per variant and target
        assert sum(line.startswith("total") for line in table) == 1
        assert sum(line.startswith("train/") for line in table) == 8  # 2 targets x 4 variants, seeds in one row
    assert any(line.startswith("model loads: ") for line in lines[:disk])
    assert any(line.startswith("optimizer state on each run's latest checkpoint only: ") for line in lines[disk:])
    assert not (tmp_path / "runs").exists()


def test_collected_sizes_replace_the_assumed_ones(tmp_path):
    study = _study(tmp_path, **{"variants": ["unlearn", "finetune"], "training.epochs": 1, "training.batch_size": 10})
    stages = plan(study, counts={"cybersecurity": {"forget": 40, "finetune": 70}})
    assert _stage(stages, "train/cybersecurity/unlearn").note.startswith("4 steps on 40 ")
    assert _stage(stages, "train/cybersecurity/finetune").note.startswith("7 steps on 70 ")


def test_the_paper_preset_counts_judge_calls_and_says_what_it_cannot_time(tmp_path):
    stages = plan(_study(tmp_path, **{"models.backend": "static"}))
    base = stages[0]
    assert base.judged == {"api": 1000 * 8} and base.model_loads == 1
    train = _stage(stages, "train/cybersecurity/unlearn")
    assert train.checkpoints_saved == train.checkpoints_loaded > 0 and train.model_loads == 2  # train, validate
    full = plan(_study(tmp_path / "f", **{"training.full": True}))  # full-rank: each checkpoint is a model
    full_train = _stage(full, "train/cybersecurity/unlearn")
    assert full_train.checkpoint_kind == "full" and full_train.model_loads == 1 + full_train.checkpoints_saved
    # without swaps a LoRA run would load once per checkpoint and once more to evaluate; full-rank runs do anyway
    assert (train.swapped_loads, full_train.swapped_loads) == (train.checkpoints_saved, 0)
    assert _stage(stages, "eval/cybersecurity/unlearn").model_loads == 0  # swaps onto the validation's load
    missing = set().union(*(s.terms()[1] for s in stages))
    assert missing == {"API judge calls", "model loads", "checkpoint I/O",
                       "LoRA-adapter decoding (counted at the base model's rate)"}
    assert _stage(stages, "eval/cybersecurity/unlearn").decode_rate == "decode_static_lora"
    assert stages[0].decode_rate == "decode_static"


def test_lora_runs_decode_at_the_adapter_rate_when_the_profile_has_one(tmp_path):
    stage = _stage(plan(_study(tmp_path, **{"models.backend": "static"})), "eval/cybersecurity/unlearn")
    rates = {"decode_static": {"tokens_per_s": 100.0}, "decode_static_lora": {"tokens_per_s": 50.0},
             "forward": {"tokens_per_s": 1e9}}
    with_lora, _ = stage.terms({"rates": rates})
    without, missing = stage.terms({"rates": {k: v for k, v in rates.items() if k != "decode_static_lora"}})
    assert with_lora["decode"] == pytest.approx(2 * without["decode"])
    assert "LoRA-adapter decoding (counted at the base model's rate)" in missing


def test_a_label_model_that_is_the_aligned_model_costs_nothing(tmp_path):
    other = _stage(plan(_study(tmp_path, **{"models.backend": "static"})), "collect/cybersecurity")
    same = _stage(plan(_study(tmp_path, **{"models.backend": "static", "models.labeler": "Qwen/Qwen2.5-7B-Instruct",
                                           "models.target_labeler": {}})), "collect/cybersecurity")
    assert other.label_tokens > 0 and other.model_loads == 2
    assert (same.label_tokens, same.label_steps, same.model_loads) == (0, 0, 1)
    pool = 1000 - 100  # the target's train prompts minus the validation slice
    assert sum(same.judged.values()) == sum(other.judged.values()) - pool  # the pool is not judged twice
    assert "cached answers" in same.note


def test_schedule_spreads_runs_over_workers_after_their_collection():
    from spillover.study.plan import StagePlan, schedule

    class Fixed(StagePlan):
        def seconds(self, profile=None):
            return self.forward_tokens * self.runs  # forward_tokens stands for seconds per run here

    stages = [Fixed("baseline", forward_tokens=10), Fixed("collect/safety", forward_tokens=5),
              Fixed("train/safety/unlearn", forward_tokens=20, runs=3), Fixed("eval/safety/unlearn", forward_tokens=10, runs=3),
              Fixed("collect/privacy", forward_tokens=4), Fixed("train/privacy/unlearn", forward_tokens=6, runs=1),
              Fixed("eval/privacy/unlearn", forward_tokens=2, runs=1), Fixed("concepts", forward_tokens=3)]
    total = sum(s.seconds() for s in stages)
    assert schedule(stages, workers=1) == (total, 35)  # one worker: everything in turn
    wall, critical = schedule(stages, workers=8)
    assert critical == 35 and wall == 35  # collect(safety) 5 then one 30-s run per worker
    wall2, _ = schedule(stages, workers=2)
    assert critical <= wall2 < total and wall2 >= total / 2
