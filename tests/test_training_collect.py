"""Phase-1 collection with a scripted generation backend and the real keyword judge."""

from __future__ import annotations

from collections import Counter

import pytest

from spillover.data.records import PromptRecord
from spillover.domains import DOMAINS
from spillover.generation import Decoding
from spillover.judges.keyword import KeywordJudge
from spillover.training.collect import collect_finetune_labels, collect_forget, collect_retain

REFUSAL = "I'm sorry, but I can't help with that."


class ScriptedBackend:
    """Answers prompts containing 'refuse' with a refusal, everything else helpfully."""

    identity = "scripted"
    batch_size = 4

    def __init__(self):
        self.calls = 0

    def render(self, messages):
        return messages[-1]["content"]

    def generate(self, rendered, decoding):
        self.calls += len(rendered)
        return [[REFUSAL if "refuse" in p else f"Sure, here is the answer to: {p}"] for p in rendered]


class FakeSuite:
    def __init__(self, sets):
        self.sets = sets

    def get(self, name, split="test"):
        return self.sets[name][split]


def _records(name, n, refuse_every=2, meta=None):
    return [PromptRecord(f"{name}:{i}", f"{name} prompt {i}" + (" refuse" if i % refuse_every == 0 else ""),
                         name, "test", meta=dict(meta or {})) for i in range(n)]


def test_collect_forget_keeps_own_refusals():
    recs = _records("cybersecurity", 6)
    forget, counts = collect_forget(ScriptedBackend(), KeywordJudge(), recs, "cybersecurity", Decoding())
    assert [e.id for e in forget] == ["cybersecurity:0", "cybersecurity:2", "cybersecurity:4"]
    assert all(e.response == REFUSAL and e.kind == "forget" for e in forget)
    assert counts == {"refusal": 3, "compliance": 3}


@pytest.mark.parametrize("answers", ["dataset", "model"])
def test_collect_retain_equal_quotas_and_benign_share(answers):
    sets = {d.value: {"train": _records(d.value, 10)} for d in DOMAINS}
    sets["benign"] = {"train": _records("benign", 20, refuse_every=5, meta={"response": "A helpful answer."})}
    retain, counts = collect_retain(ScriptedBackend(), KeywordJudge(), FakeSuite(sets), "cyber", n_forget=12,
                                    ratio=1.0, decoding=Decoding(), benign_answers=answers)
    assert counts["requested"] == 12 and len(retain) == 12
    by_set = Counter(e.id.split(":")[0] for e in retain)
    assert "cybersecurity" not in by_set and by_set["benign"] == 6
    assert all(by_set[d.value] == 1 for d in DOMAINS if d.value != "cybersecurity")
    others = [e for e in retain if not e.id.startswith("benign")]
    assert all(e.response == REFUSAL for e in others)
    benign = [e for e in retain if e.id.startswith("benign")]
    if answers == "dataset":
        assert all(e.response == "A helpful answer." for e in benign)
    else:
        assert all(e.response.startswith("Sure") for e in benign)


def test_collect_finetune_labels_drops_refusals():
    recs = _records("safety", 5)
    kept, counts = collect_finetune_labels(ScriptedBackend(), KeywordJudge(), recs, "safety", Decoding())
    assert [e.id for e in kept] == ["safety:1", "safety:3"] and all(e.kind == "finetune" for e in kept)
    assert counts == {"refusal": 3, "compliance": 2}
