"""The GPU benchmark script on a tiny model on CPU (so it does not rot)."""

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


@pytest.mark.parametrize("section,variants", [("lora", ["common", "project-fp32lora-sync", "project-pw-gc1"]),
                                              ("full", ["common", "project-bf16-fused", "project-bf16-plain"])])
def test_training_sections_write_results(tiny_config, tmp_path, section, variants):
    status = gpu_bench.main([section, "--model-config", str(tiny_config), "--device", "cpu", "--out", str(tmp_path),
                             "--batch", "2", "--seq", "16", "--prompt-tokens", "4", "--steps", "1", "--warmup", "0",
                             "--lora-r", "4", "--variants", *variants])
    assert status == 0
    rows = json.loads((tmp_path / f"{section}-tiny-qwen-1p.json").read_text())["results"]
    assert [r["variant"] for r in rows] == variants
    assert all(r["s_per_step"] > 0 and "error" not in r for r in rows)
    if section == "lora":  # pw: every MLP's LoRA down_proj recomputes act(gate) * up
        assert rows[2]["lean_lora_mlps"] == json.loads(tiny_config.read_text())["num_hidden_layers"]
    if section == "full":  # bf16 weights: Kahan-compensated by default, torch AdamW when plain
        assert [r["optimizer"] for r in rows[1:]] == ["optimi.adamw.AdamW", "torch.optim.adamw.AdamW"]
    import spillover.training.logprobs as logprobs
    import spillover.training.trainer as trainer

    assert trainer.sequence_logprobs is logprobs.sequence_logprobs  # the "-sync" path was swapped back


def test_fit_overhead_is_exact_at_the_largest_point_and_never_negative():
    a, c = gpu_bench.fit_overhead([(8, 1.0 + 8 * 0.01), (32, 1.0 + 32 * 0.01), (64, 1.0 + 64 * 0.01)])
    assert (a, c) == (pytest.approx(1.0), pytest.approx(0.01))
    a, c = gpu_bench.fit_overhead([(8, 2.0), (64, 1.0)])  # noise: time falls with size
    assert 0 <= a <= 0.95 and c > 0 and a + 64 * c == pytest.approx(1.0)


def test_profile_section_writes_every_planner_rate(tiny_model_dir, tmp_path):
    status = gpu_bench.main(["profile", "--model", str(tiny_model_dir), "--device", "cpu", "--out", str(tmp_path),
                             "--batch", "4", "--new-tokens", "3", "--hf-new-tokens", "2", "--seq", "16",
                             "--prompt-tokens", "4", "--steps", "1", "--warmup", "0", "--lora-r", "4",
                             "--train-batch", "2", "--tmp", str(tmp_path), "--parts", "load", "decode", "decode_lora", "forward",
                             "train"])
    assert status == 0
    payload = json.loads(next(tmp_path.glob("profile-*.json")).read_text())
    rows = {r["rate"]: r for r in payload["results"]}
    assert set(rows) == {"model_load", "decode_static", "decode_hf", "decode_static_lora", "forward", "train_lora_gc", "train_lora",
                         "train_lora_gc_ce", "train_full_gc", "train_full", "train_full_gc_ce", "checkpoint_lora",
                         "checkpoint_full"}
    assert all(r["tokens_per_s"] > 0 and r["overhead_s"] >= 0 for r in rows.values() if "tokens_per_s" in r)
    assert rows["checkpoint_full"]["bytes"] > rows["checkpoint_lora"]["bytes"] > 0
