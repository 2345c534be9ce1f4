"""Malformed-row handling of the source loaders, on small fixture files."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillover.data import bbq, cyberseceval, donotanswer, mmlu, sgbench, toxigen, xstest
from spillover.data.registry import FileInfo
from spillover.data.store import DatasetError, DataStore
from spillover.io import sha256_file

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture()
def store(tmp_path) -> DataStore:
    """A store over the fixture files, registered with their own checksums."""
    files = {str(p.relative_to(FIXTURES)): FileInfo("http://invalid.example/" + p.name, sha256_file(p), 0)
             for p in FIXTURES.rglob("*") if p.is_file()}
    return DataStore(FIXTURES, cache_dir=tmp_path / "cache", online=False, files=files)


def test_mitre_rows_without_prompt_are_counted_skips(store, caplog):
    load = cyberseceval.load_mitre(store)
    assert load.report.rows == 5 and load.report.loaded == 2
    assert [r.id for r in load.records] == ["cyberseceval_mitre:0000", "cyberseceval_mitre:0004"]
    assert [s["row"] for s in load.report.skipped] == [2, 3, 4]
    assert load.records[0].meta["system_prompt"] == "You are an analyst."
    assert "skipped 3 row(s)" in caplog.text


def test_strict_mode_names_file_and_row(store):
    with pytest.raises(DatasetError, match=r"mitre_benchmark_100_per_category.json, row 2: no user_prompt"):
        cyberseceval.load_mitre(store, strict=True)


def test_do_not_answer_skips_empty_question_and_harm(store):
    load = donotanswer.load(store)
    assert load.report.rows == 4 and load.report.loaded == 2
    assert {s["reason"] for s in load.report.skipped} == {"empty question", "empty types_of_harm"}
    assert load.records[1].meta["subcategory"] == "Self-Harm"


def test_bbq_bad_json_and_bad_label_are_reported(store):
    load = bbq.load(store)
    assert load.report.rows == 4 and load.report.loaded == 2
    reasons = " ".join(s["reason"] for s in load.report.skipped)
    assert "invalid JSON" in reasons and "label 7" in reasons
    first = load.records[0]
    assert first.meta["unknown_index"] == 1 and first.meta["target_index"] == 2 and first.meta["label"] == 1
    assert first.meta["answers"] == ["The Jewish one", "Can't answer", "The Muslim one"]
    assert load.records[1].meta["target_index"] is None  # stereotyped group not among the options


def test_mmlu_wrong_cells_and_answer(store):
    load = mmlu.load(store, ["elementary_mathematics"])
    assert load.report.rows == 4 and load.report.loaded == 2
    assert load.records[0].meta == {"choices": ["1", "2", "3", "4"], "answer": 1, "subject": "elementary_mathematics",
                                    "question": "What is 1+1?"}
    assert load.records[1].prompt.splitlines()[2] == "A, quoted, question?"
    assert "B. 2" in load.records[0].prompt


def test_toxigen_parses_statements_and_skips_short_lines(store):
    load = toxigen.load(store)
    assert load.report.rows == 3 and load.report.loaded == 2
    assert load.records[0].meta["statements"] == ["first statement", "second statement"]
    assert "- first statement\n- second statement\n" in load.records[0].prompt


def test_xstest_rejects_empty_prompt_and_unknown_label(store):
    load = xstest.load(store)
    assert [r.set for r in load.records] == ["xstest", "xstest_unsafe"]
    assert load.report.rows == 4 and len(load.report.skipped) == 2


def test_sgbench_normalises_free_text_labels(store):
    load = sgbench.load(store)
    assert [r.category for r in load.records] == ["O5: Dissemination of dangerous information", "O6: Malicious Use"]
    assert load.report.rows == 4 and len(load.report.skipped) == 2
