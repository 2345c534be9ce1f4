"""Training metrics through accelerate's trackers: TensorBoard event files read back, W&B offline."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path

import pytest

from spillover.io import InputError
from spillover.models import load_model
from spillover.training import Diagnostics, Example, TrainConfig, train
from spillover.training.trackers import check_installed

FORGET = [Example(f"f{i}", f"Tell me secret number {i}", "I'm sorry, but I can't help with that request.")
          for i in range(4)]
RETAIN = [Example(f"r{i}", f"Capital of France, question {i}?", "Paris.", "retain") for i in range(4)]
DIAG = Diagnostics(kl_prompts={"cybersecurity": ["write malware"], "safety": ["make a bomb"]})


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _scalars(logdir: Path) -> dict[str, list[int]]:
    """{tag: [steps]} of the scalar events in ``logdir``'s event files (purged events dropped)."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = event_accumulator.EventAccumulator(str(logdir), purge_orphaned_data=True)
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _train(tiny_model_dir, out: Path, **kw):
    cfg = TrainConfig(lr=1e-2, batch_size=2, max_steps=4, save_every=2, w2=0.5, lora={"r": 4}, log_with=["tensorboard"])
    return train(load_model(str(tiny_model_dir), device="cpu", dtype="fp32"), FORGET, RETAIN, cfg, out,
                 diagnostics=DIAG, **kw)


def test_tensorboard_events_hold_every_logged_value(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard")
    _train(tiny_model_dir, tmp_path)
    log, diag = _rows(tmp_path / "train_log.jsonl"), _rows(tmp_path / "diagnostics.jsonl")
    assert {"loss", "npo", "retain_ce", "main_logp", "retain_logp", "lr"} <= set(log[0])
    expected = {f"train/{k}": [r["step"] for r in log] for k in log[0] if k != "step"}
    expected |= {f"diagnostics/kl/{d}": [r["step"] for r in diag] for d in diag[0]["kl"]}
    got = _scalars(tmp_path / "tensorboard")
    assert got == expected
    assert expected["diagnostics/kl/safety"] == [0, 2, 4]


def test_tensorboard_values_match_the_jsonl(tiny_model_dir, tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    _train(tiny_model_dir, tmp_path)
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    log = _rows(tmp_path / "train_log.jsonl")
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx([r["loss"] for r in log], rel=1e-6)
    assert [e.value for e in acc.Scalars("train/main_logp")] == pytest.approx([r["main_logp"] for r in log], rel=1e-6)


def test_a_resumed_run_purges_the_events_after_its_checkpoint(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard")

    def crash(step, _row):
        if step == 3:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        _train(tiny_model_dir, tmp_path, on_step=crash)
    assert _scalars(tmp_path / "tensorboard")["train/loss"] == [1, 2, 3]
    _train(tiny_model_dir, tmp_path)
    got = _scalars(tmp_path / "tensorboard")
    assert got["train/loss"] == [1, 2, 3, 4] and got["diagnostics/kl/safety"] == [0, 2, 4]


def test_changing_the_trackers_keeps_a_run_resumable(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard")
    cfg = TrainConfig(lr=1e-2, batch_size=2, max_steps=4, save_every=2, lora={"r": 4})
    model = load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    train(model, FORGET, None, cfg.model_copy(update={"max_steps": 2}), tmp_path)
    seen = []
    train(load_model(str(tiny_model_dir), device="cpu", dtype="fp32"), FORGET, None,
          cfg.model_copy(update={"max_steps": 2, "log_with": ["tensorboard"]}), tmp_path,
          on_step=lambda s, _r: seen.append(s))
    assert seen == []  # the finished run was resumed, not refused or restarted


class _FakeRun:
    def __init__(self, kwargs):
        self.kwargs, self.logged, self.finished = kwargs, [], False

    def log(self, values, step=None):
        self.logged.append((step, dict(values)))

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    """A stand-in ``wandb`` module that records what accelerate's WandBTracker sends it."""
    mod = types.ModuleType("wandb")
    mod.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    mod.runs = []
    mod.config = types.SimpleNamespace(values={}, update=lambda v, allow_val_change=False: mod.config.values.update(v))

    def init(**kwargs):
        mod.runs.append(_FakeRun(kwargs))
        return mod.runs[-1]

    mod.init = init
    monkeypatch.setitem(sys.modules, "wandb", mod)
    return mod


@pytest.mark.parametrize("env,mode", [(None, "offline"), ("online", "online")])
def test_wandb_runs_offline_unless_wandb_mode_says_otherwise(tiny_model_dir, tmp_path, fake_wandb, monkeypatch,
                                                             env, mode):
    if env is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    cfg = TrainConfig(lr=1e-2, batch_size=2, max_steps=2, save_every=2, lora={"r": 4}, log_with=["wandb"])
    train(load_model(str(tiny_model_dir), device="cpu", dtype="fp32"), FORGET, None, cfg, tmp_path / "run-a")
    (run,) = fake_wandb.runs
    assert run.kwargs["mode"] == mode and run.kwargs["name"] == "run-a" and run.kwargs["dir"] == str(tmp_path / "run-a")
    assert [s for s, _ in run.logged] == [1, 2] and "train/npo" in run.logged[0][1] and run.finished
    assert fake_wandb.config.values["lora.r"] == 4 and fake_wandb.config.values["log_with"] == "['wandb']"


def test_a_missing_tracker_package_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(InputError, match=r"training\.log_with: wandb is not installed \(pip install wandb\)"):
        check_installed(["wandb"])


def test_an_unknown_tracker_is_refused():
    with pytest.raises(ValueError, match="log_with"):
        TrainConfig(log_with=["mlflow"])


def test_cli_log_with_writes_tensorboard_events(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from typer.testing import CliRunner

    from spillover.cli import app

    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps({"id": e.id, "prompt": e.prompt, "response": e.response}) + "\n"
                                  for e in FORGET))
    res = CliRunner().invoke(app, ["finetune", "--model", str(tiny_model_dir), "--target", "safety", "--train",
                                   str(train_file), "--max-steps", "2", "--batch-size", "2", "--log-with", "tensorboard",
                                   "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "f" / "run.json").read_text())["config"]["log_with"] == ["tensorboard"]
    assert _scalars(tmp_path / "f" / "tensorboard")["train/ce"] == [1, 2]
