"""The GPU benchmark script on a tiny model on CPU (so it does not rot), and its proposed log-prob path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import gpu_bench  # noqa: E402


@pytest.fixture(scope="module")
def tiny_config(tiny_model_dir, tmp_path_factory) -> Path:
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    for key in ("dtype", "torch_dtype", "transformers_version", "architectures"):
        cfg.pop(key, None)
    cfg.update(vocab_size=1000, tie_word_embeddings=False)
    path = tmp_path_factory.mktemp("cfg") / "tiny-qwen.json"
    path.write_text(json.dumps(cfg))
    return path


def test_sync_free_logprobs_equal_project_logprobs(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from spillover.training.logprobs import sequence_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = gpu_bench.training_batch(3, 24, model.config.vocab_size, 6, "cpu")
    batch["labels"][1, 18:] = -100
    ref = sequence_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["labels"], 8)
    ours = gpu_bench.sync_free_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["labels"], 8)
    assert torch.allclose(ours, ref, atol=1e-4)
    ours.sum().backward()
    assert model.lm_head.weight.grad is not None


@pytest.mark.parametrize("section,variants", [("lora", ["common", "project-nosync"]),
                                              ("full", ["common", "project-bf16-fused", "project-bf16-plain"])])
def test_training_sections_write_results(tiny_config, tmp_path, section, variants):
    status = gpu_bench.main([section, "--model-config", str(tiny_config), "--device", "cpu", "--out", str(tmp_path),
                             "--batch", "2", "--seq", "16", "--prompt-tokens", "4", "--steps", "1", "--warmup", "0",
                             "--lora-r", "4", "--variants", *variants])
    assert status == 0
    rows = json.loads((tmp_path / f"{section}-tiny-qwen-1p.json").read_text())["results"]
    assert [r["variant"] for r in rows] == variants
    assert all(r["s_per_step"] > 0 and "error" not in r for r in rows)
    if section == "full":  # bf16 weights: Kahan-compensated by default, torch AdamW when plain
        assert [r["optimizer"] for r in rows[1:]] == ["optimi.adamw.AdamW", "torch.optim.adamw.AdamW"]
    import spillover.training.logprobs as logprobs
    import spillover.training.trainer as trainer

    assert trainer.sequence_logprobs is logprobs.sequence_logprobs  # the proposed path was swapped back
