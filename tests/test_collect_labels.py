"""Finetune labels: the labeler per target, and which answers are dropped."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import spillover.study.collect as collect
from spillover.config import load_yaml_config
from spillover.data.records import PromptRecord
from spillover.study.config import StudyConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LABELS = ["compliance", "refusal", "unparsable"]


class Slot:
    """Records which model specs were loaded (and whether as a possible base model)."""

    def __init__(self):
        self.loaded: list[tuple[str, bool]] = []

    def get(self, spec, adapter=None, full_weights=None, base_ok=False):
        self.loaded.append((spec, base_ok))
        return None, None, SimpleNamespace(identity=spec)


class FakeScoring:
    """The aligned model refuses everything; the labeler's answers cycle through LABELS."""

    def __init__(self, labeler: str):
        self.labeler = labeler

    def run(self, backend, records, decoding):
        rows = []
        for name, recs in records.items():
            for i, r in enumerate(recs):
                label = LABELS[i % 3] if backend.identity == self.labeler else "refusal"
                rows.append({"id": r.id, "prompt": r.prompt, "response": f"{backend.identity} says {i}",
                             "set": name, "label": label})
        return rows, []


@pytest.mark.parametrize("preset", ["paper-qwen.yaml", "paper-mistral.yaml"])
@pytest.mark.parametrize("target,labeler", [("cybersecurity", "mistralai/Mistral-7B-v0.3"),
                                            ("safety", "HuggingFaceTB/SmolLM2-1.7B-Instruct")])
def test_paper_labels_come_from_the_papers_labeler_and_drop_refusals_and_unparsable(
        tmp_path, preset, target, labeler):
    cfg = load_yaml_config(StudyConfig, CONFIGS / preset)
    records = [PromptRecord(f"{target}:{i}", f"prompt {i}", target, "src", "") for i in range(20)]
    suite = SimpleNamespace(get=lambda name, split: records if name == target else [])
    slot = Slot()
    counts = collect.collect_sets(target, suite, cfg.collect, cfg.models, slot, FakeScoring(labeler), tmp_path,
                                  need_retain=False, need_labels=True)
    assert slot.loaded == [(cfg.models.aligned, False), (labeler, True)]
    pool = 20 - min(cfg.collect.validation_n, 20 // 2)  # collect holds out at most half
    rows = [json.loads(x) for x in (tmp_path / "finetune.jsonl").read_text().splitlines()]
    assert len(rows) == counts["finetune"] == len(range(0, pool, 3))  # the compliance answers only
    assert all(r["response"].startswith(labeler) for r in rows)
    assert counts["labeler_dropped"] == {"refusal": len(range(1, pool, 3)), "unparsable": len(range(2, pool, 3))}


def test_base_model_without_chat_template_gets_question_answer_prompts(tiny_model_dir, tmp_path):
    import shutil

    from spillover.models import ModelLoadError, load_tokenizer

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    cfg_path = base / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg))
    (base / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="no chat template"):
        load_tokenizer(str(base))
    tok = load_tokenizer(str(base), base_ok=True)
    text = tok.apply_chat_template([{"role": "user", "content": "How do I scan ports?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("Question: How do I scan ports?\nAnswer:")
