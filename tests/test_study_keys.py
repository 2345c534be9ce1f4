"""Stage and cache keys cover every input that changes their outputs: change one, see a recompute."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from spillover.cache import JsonlCache
from spillover.judges.base import REFUSAL, JudgeItem, Verdict, judge_cached
from spillover.models import hub_revision, model_identity
from spillover.study import Study, StudyConfig, keys
from spillover.study.stages import StageRunner


class FakeSuite:
    def __init__(self, tag: str = ""):
        self.tag = tag

    def names(self):
        return ["cybersecurity", "safety", "privacy", "xstest", "mmlu"]

    def get(self, name, split):
        tag = self.tag if name == "mmlu" else ""
        return [SimpleNamespace(id=f"{name}{tag}-{i}", prompt=f"p{i}") for i in range(60)]


def _study(tmp_path, suite=None, **changes) -> Study:
    data = {"name": "k", "output_dir": str(tmp_path), "targets": ["cybersecurity"],
            "variants": ["unlearn", "aug_unlearn"], "models": {"aligned": "Qwen/Qwen2.5-7B-Instruct"},
            "evaluation": {"sets": ["cybersecurity", "safety", "privacy", "xstest"], "mmlu_n": None},
            "selection": {"mmlu_n": 20}}
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    study = Study(StudyConfig.model_validate(data), root=tmp_path / "study")
    study.suite = suite or FakeSuite()
    study.keys = {"data": "d", "collect/cybersecurity": "c", "train/cybersecurity/unlearn/seed0": "t"}
    return study


STAGES = {
    "baseline": keys.baseline_inputs,
    "collect": lambda s: keys.collect_inputs(s, "cybersecurity"),
    "train": lambda s: keys.train_inputs(s, "cybersecurity", "unlearn", 0),
    "eval": lambda s: keys.eval_inputs(s, "cybersecurity", "unlearn", 0),
}


def _recomputes(tmp_path, stage, before: Study, after: Study) -> bool:
    """Run the stage for ``before``, then for ``after``: did the second run recompute?"""
    runner = StageRunner(tmp_path / "stages")
    runs = []
    runner.run(stage, STAGES[stage](before), runs.append)
    runner.run(stage, STAGES[stage](before), runs.append)
    assert len(runs) == 1  # unchanged inputs: skipped
    runner.run(stage, STAGES[stage](after), runs.append)
    return len(runs) == 2


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub_revision.cache_clear()
    yield
    hub_revision.cache_clear()


@pytest.mark.parametrize("stage, change", [
    ("train", {"evaluation.decoding": {"max_new_tokens": 7}}),
    ("train", {"evaluation.mmlu_method": "cloze"}),
    ("train", {"selection.mmlu_n": 21}),
    ("train", {"judges.primary": "rubric:openai:m"}),
    ("train", {"judges.endpoint": {"base_url": "http://x/v1", "model": "m"}, "judges.primary": "rubric:openai:a"}),
    ("train", {"judges.max_new_tokens": 50}),
    ("train", {"models.dtype": "fp32"}),
    ("train", {"evaluation.sets": ["cybersecurity", "safety", "xstest"]}),
    ("collect", {"judges.per_set": {"privacy": "rubric:openai:m"}}),
    ("collect", {"models.backend": "static"}),
    ("baseline", {"selection.mmlu_n": 30}),
    ("baseline", {"judges.per_set": {"safety": "rubric:openai:m"}}),
    ("eval", {"models.dtype": "fp32"}),
    ("eval", {"models.quantize": "int8"}),
    ("baseline", {"models.quantize": "int8"}),
    ("eval", {"selection.mmlu_n": 30}),
])
def test_a_changed_input_recomputes_the_stage(tmp_path, stage, change):
    assert _recomputes(tmp_path, stage, _study(tmp_path), _study(tmp_path, **change))


def test_a_different_mmlu_selection_slice_of_the_same_size_retrains(tmp_path):
    assert _recomputes(tmp_path, "train", _study(tmp_path), _study(tmp_path, suite=FakeSuite("other")))


def test_selection_only_inputs_keep_the_training_checkpoints(tmp_path):
    a, b = _study(tmp_path), _study(tmp_path, **{"evaluation.decoding": {"max_new_tokens": 7}})
    args = ("cybersecurity", "unlearn", 0)
    assert keys.train_work_inputs(a, *args) == keys.train_work_inputs(b, *args)
    assert keys.train_inputs(a, *args) != keys.train_inputs(b, *args)


class CountingJudge:
    id, rubric = "count", "refusal"

    def __init__(self):
        self.seen = 0

    def judge(self, items):
        self.seen += len(items)
        return [Verdict(REFUSAL, "", self.id) for _ in items]


def test_judgment_cache_key_covers_meta(tmp_path):
    judge, cache = CountingJudge(), JsonlCache(tmp_path / "j.jsonl")
    item = JudgeItem("which?", "the first", "bias", {"answers": ["a", "b", "c"], "unknown_index": 2})
    judge_cached(judge, [item], cache)
    judge_cached(judge, [item], cache)
    assert judge.seen == 1
    judge_cached(judge, [JudgeItem(item.prompt, item.response, "bias", {**item.meta, "unknown_index": 0})], cache)
    assert judge.seen == 2


def test_hub_models_are_keyed_by_revision(tmp_path):
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / "models--Org--Model" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("aaaa1111")
    first = model_identity("Org/Model")
    assert "aaaa1111" in first
    ref.write_text("bbbb2222")
    hub_revision.cache_clear()
    assert model_identity("Org/Model") != first


def test_local_weights_are_keyed_by_content_not_size_and_mtime(tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    weights = d / "model.safetensors"
    weights.write_bytes(b"\x00" * 64)
    (d / "optimizer.pt").write_bytes(b"state")
    stat = weights.stat()
    first = model_identity(str(d))
    weights.write_bytes(b"\x01" * 64)  # same size ...
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and the same mtime
    assert model_identity(str(d)) != first
    second = model_identity(str(d))
    (d / "optimizer.pt").write_bytes(b"other training state")  # not part of the weights
    assert model_identity(str(d)) == second
    (d / "tokenizer_config.json").write_text("{}")
    assert model_identity(str(d)) != second


def test_response_cache_identity_names_backend_and_dtype(tiny_model_dir):
    from spillover.generation.loading import load_backend

    ids = {load_backend(name, str(tiny_model_dir), device="cpu", dtype=dtype).identity
           for name, dtype in (("hf", "fp32"), ("hf", "bf16"), ("static", "fp32"))}
    ids.add(load_backend("hf", str(tiny_model_dir), device="cpu", dtype="fp32", quantize="int8").identity)
    assert len(ids) == 4
