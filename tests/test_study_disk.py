"""The planner's disk estimates against real checkpoints and hidden states of the tiny model, and
the shipped profiles' model shapes against the benchmark files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spillover.models import pick_dtype
from spillover.study.disk import ModelSizes, model_config, stage_disk
from spillover.study.plan import DEFAULT_PROFILE, PROFILES_DIR, StagePlan, load_profile
from spillover.training import Example, TrainConfig, train

REPO = Path(__file__).resolve().parents[1]


def _tensor_bytes(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return sum(f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in f.keys())


def _state_bytes(path: Path) -> int:
    """Bytes of the per-parameter optimizer tensors in an optimizer.pt (not the 0-d step counters)."""
    state = torch.load(path, weights_only=True)["state"]
    return sum(t.numel() * t.element_size() for s in state.values() for t in s.values() if t.dim() > 0)


def _sizes(model_dir: Path) -> ModelSizes:
    config, source = model_config(str(model_dir), {})
    return ModelSizes(config, source, pick_dtype(torch.device("cpu")))


@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
def test_checkpoint_and_optimizer_estimates_equal_what_training_writes(tiny_model_dir, tmp_path, full):
    examples = [Example(str(i), f"Question {i}?", "An answer.", "finetune") for i in range(4)]
    cfg = TrainConfig(method="ce", full=full, lora={"r": 4}, max_steps=2, save_every=1, batch_size=2, lr=1e-3)
    checkpoints = train(str(tiny_model_dir), examples, None, cfg, tmp_path / "run")
    assert [c.step for c in checkpoints] == [1, 2]
    weights = "model.safetensors" if full else "adapter_model.safetensors"
    disk = stage_disk(StagePlan("train/x/finetune", checkpoints_saved=2, training=cfg), _sizes(tiny_model_dir), None)
    assert disk.weights == sum(_tensor_bytes(c.path / weights) for c in checkpoints)
    assert disk.optimizer == _state_bytes(checkpoints[-1].path / "optimizer.pt") > 0
    assert not (checkpoints[0].path / "optimizer.pt").exists()  # pruned once checkpoint-2 was written
    assert disk.unpruned == 2 * disk.optimizer


def test_the_hidden_state_estimate_equals_the_concepts_cache(tiny_model_dir, tmp_path):
    import numpy as np

    from spillover.concepts.extract import extract_last_token_states
    from spillover.models import load_model

    model, tok = load_model(str(tiny_model_dir))
    extract_last_token_states(model, tok, [f"prompt {i}" for i in range(5)], batch_size=2, cache=tmp_path)
    (path,) = tmp_path.glob("states-*.npy")
    assert np.load(path).nbytes == _sizes(tiny_model_dir).hidden_state_bytes(5)


@pytest.mark.parametrize("path", [DEFAULT_PROFILE, *sorted(PROFILES_DIR.glob("*.json"))], ids=lambda p: p.stem)
def test_a_profile_model_has_the_parameters_its_benchmark_file_measured(path):
    shape = load_profile(path)["model"]
    config, source = model_config("not/cached-model", load_profile(path))
    assert shape["name"] in source and "not/cached-model has no config" in source
    payload = json.loads((REPO / shape["file"]).read_text())
    hits = [r for r in payload.get("results", []) if all(r.get(k) == v for k, v in shape["match"].items())]
    measured = hits if shape["match"] else [payload]  # no match: the file's own top-level count
    assert len(measured) == 1 and measured[0]["params"] == shape["params"]
    assert ModelSizes(config, source, torch.bfloat16).params == shape["params"]


def test_the_default_profile_model_with_a_rank_128_adapter_matches_the_lora_benchmark():
    from spillover.training.config import LoraSettings

    config, source = model_config("Qwen/Qwen2.5-7B-Instruct", load_profile(None))
    sizes = ModelSizes(config, source, torch.bfloat16)
    bench = json.loads((REPO / "bench/results/h200/lora-qwen2.5-7b-instruct-1p.json").read_text())
    assert bench["lora_r"] == 128
    assert sizes.params + sizes.lora_params(LoraSettings(r=128)) == bench["results"][0]["params"]
