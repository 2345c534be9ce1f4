"""``spillover evaluate`` with several adapters: one base load, one output and revision per adapter."""

from __future__ import annotations

import json

import pytest

import spillover.study.standalone as standalone
from spillover.io import InputError
from spillover.training import Example, TrainConfig, train


@pytest.fixture
def adapters(tiny_model_dir, tmp_path):
    forget = [Example(f"f{i}", f"Tell me secret number {i}", "I'm sorry, but I can't help.") for i in range(4)]
    cfg = TrainConfig(lr=5e-2, batch_size=2, max_steps=2, save_every=1, lora={"r": 4})
    return [str(c.path) for c in train(str(tiny_model_dir), forget, None, cfg, tmp_path / "run")]


def _evaluate(tiny_model_dir, out, adapters, **kw):
    return standalone.run_evaluate(
        model=str(tiny_model_dir), out=out, adapters=adapters, checkpoint=None, domains="cybersecurity", n=2,
        mmlu_n=0, xstest=False, judge="keyword", bias_judge=None, baseline=None, max_new_tokens=4, batch_size=2,
        base_url=None, data_dir=None, **kw)


def test_several_adapters_share_one_base_load(tiny_model_dir, tmp_path, adapters, monkeypatch):
    slots = []

    class CountingSlot(standalone.ModelSlot):
        def __init__(self, cfg):
            super().__init__(cfg)
            slots.append(self)

    monkeypatch.setattr(standalone, "ModelSlot", CountingSlot)
    results = _evaluate(tiny_model_dir, tmp_path / "eval", adapters, system_prompt="Be brief.")
    assert list(results) == [tmp_path / "eval" / "checkpoint-1", tmp_path / "eval" / "checkpoint-2"]
    (slot,) = slots
    assert slot.loads == 1 and slot.swaps == 1
    meta = [json.loads((d / "evaluation.json").read_text()) for d in results]
    assert [m["adapter"] for m in meta] == adapters
    assert meta[0]["revision"] != meta[1]["revision"] and "+adapter:" in meta[0]["revision"]
    assert meta[0]["judges"] == {"cybersecurity": "keyword"} and meta[0]["decoding"]["system_prompt"] == "Be brief."
    assert all((d / "responses.jsonl").exists() and (d / "scores.json").exists() for d in results)


def test_a_baseline_with_other_prompts_is_refused(tiny_model_dir, tmp_path, adapters):
    _evaluate(tiny_model_dir, tmp_path / "base", adapters[:1])
    with pytest.raises(InputError, match="different prompts in set 'cybersecurity'"):
        standalone.run_evaluate(
            model=str(tiny_model_dir), out=tmp_path / "other", adapters=adapters[1:], checkpoint=None,
            domains="cybersecurity", n=3, mmlu_n=0, xstest=False, judge="keyword", bias_judge=None,
            baseline=tmp_path / "base", max_new_tokens=4, batch_size=2, base_url=None, data_dir=None)


def test_adapters_with_one_directory_name_are_refused(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="share a directory name"):
        _evaluate(tiny_model_dir, tmp_path / "eval", [str(tmp_path / "a" / "ck"), str(tmp_path / "b" / "ck")])
