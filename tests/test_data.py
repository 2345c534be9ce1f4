"""The suite built from the real mirror: every row accounted for, the paper's sizes, deterministic splits."""

from __future__ import annotations

import json

import pytest

from spillover.data.records import PromptRecord
from spillover.data.registry import FILES
from spillover.data.suite import DataConfig, Suite, build_suite
from spillover.domains import DOMAINS


@pytest.fixture(scope="module")
def suite(data_dir, tmp_path_factory) -> Suite:
    return build_suite(DataConfig(), data_dir, online=False, cache_dir=tmp_path_factory.mktemp("cache"))


def test_every_row_of_every_file_is_loaded_or_reported(suite):
    for source, rep in suite.counts()["sources"].items():
        expected = sum(FILES[f].rows for f in rep["files"])
        assert rep["rows"] == expected, source
        assert rep["loaded"] + rep["skipped"] == rep["rows"], source
    assert set(suite.info["files"]) == {f for rep in suite.info["sources"].values() for f in rep["files"]}


def test_source_counts(suite):
    src = suite.counts()["sources"]
    assert src["do_not_answer"]["rows"] == 939 and src["do_not_answer"]["loaded"] == 939
    # the non-augmented MITRE file has 23 items without a user_prompt
    assert src["cyberseceval_mitre"]["rows"] == 1000 and src["cyberseceval_mitre"]["skipped"] == 23
    assert src["cyberseceval_interpreter"]["loaded"] == 500
    assert src["toxigen"]["loaded"] == 1000 and src["bbq"]["loaded"] == 1200


def test_every_domain_has_train_and_test(suite):
    counts = suite.counts()
    for d in DOMAINS:
        assert counts[d.value]["train"] > 0 and counts[d.value]["test"] > 0, d
        for split in ("train", "test"):
            assert all(r.set == d.value for r in suite.get(d.value, split))
        train_ids = {r.id for r in suite.get(d.value, "train")}
        assert train_ids.isdisjoint(r.id for r in suite.get(d.value, "test"))


def test_paper_test_sizes(suite):
    counts = suite.counts()
    assert counts["cybersecurity"]["test"] == 100
    assert counts["toxicity"]["test"] == 200 and counts["toxicity"]["train"] == 800
    assert counts["safety"]["test"] == 93
    assert counts["privacy"]["test"] == 200
    assert counts["xstest"] == {"test": 250} and counts["xstest_unsafe"] == {"test": 200}


def test_bias_items_are_ambiguous_negative_with_unknown_label(suite):
    test = suite.get("bias")
    assert len(test) == 200
    for r in test + suite.get("bias", "train"):
        assert r.meta["context_condition"] == "ambig" and r.meta["question_polarity"] == "neg"
        assert r.meta["label"] == r.meta["unknown_index"]  # ambiguous context: 'unknown' is right
        assert r.meta["target_index"] in (0, 1, 2) and r.meta["target_index"] != r.meta["unknown_index"]
        assert len(r.meta["answers"]) == 3 and all(a in r.prompt for a in r.meta["answers"])


def test_mmlu_records(suite):
    qs = suite.get("mmlu")
    assert len(qs) == sum(FILES[f"mmlu/test/{s}_test.csv"].rows for s in DataConfig().mmlu_subjects)
    for r in qs:
        assert len(r.meta["choices"]) == 4 and r.meta["answer"] in range(4)
        assert "A. " in r.prompt and "letter" not in r.prompt  # the scorer adds the one instruction


def test_benign_has_responses_and_both_splits(suite):
    assert len(suite.get("benign")) == 100 and suite.get("benign", "train")
    assert all(r.meta["response"] for r in suite.get("benign"))


def test_ids_are_unique(suite):
    ids = [r.id for n in suite.names() for recs in suite.sets[n].values() for r in recs]
    assert len(ids) == len(set(ids))


def test_splits_are_deterministic_and_seeded(data_dir, suite, tmp_path):
    again = build_suite(DataConfig(), data_dir, online=False, cache_dir=tmp_path)
    for n in suite.names():
        for split in suite.sets[n]:
            assert [r.to_dict() for r in suite.get(n, split)] == [r.to_dict() for r in again.get(n, split)]
    other = build_suite(DataConfig(seed=1, mmlu_subjects=["astronomy"]), data_dir, online=False, cache_dir=tmp_path)
    assert [r.id for r in other.get("cybersecurity")] != [r.id for r in suite.get("cybersecurity")]


def test_test_split_is_shuffled(suite):
    ids = [r.id for r in suite.get("toxicity")]
    assert ids != sorted(ids)


def test_write_and_read_round_trip(suite, tmp_path):
    suite.write(tmp_path / "suite")
    manifest = json.loads((tmp_path / "suite" / "manifest.json").read_text())
    assert manifest["files"]["bbq/Religion.jsonl"] == FILES["bbq/Religion.jsonl"].sha256
    assert (tmp_path / "suite" / "cybersecurity.train.jsonl").exists()
    back = Suite.read(tmp_path / "suite")
    assert back.counts() == suite.counts()
    assert back.get("bias")[0] == suite.get("bias")[0]


def test_record_dict_round_trip():
    r = PromptRecord("x:0001", "hi", "benign", "alpaca", None, {"response": "hello"})
    assert PromptRecord.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_config_rejects_unknown_fields():
    with pytest.raises(ValueError):
        DataConfig(test_size=3)


def test_partial_config_tables_merge_with_defaults():
    cfg = DataConfig(test_sizes={"safety": 50}, source_pillars={"strongreject": {"Non-violent crimes": "safety"}})
    assert cfg.test_sizes["safety"] == 50 and cfg.test_sizes["cybersecurity"] == 100
    assert cfg.source_pillars["strongreject"]["Non-violent crimes"] == "safety"
    assert cfg.source_pillars["strongreject"]["Violence"] == "safety" and "sorry_bench" in cfg.source_pillars


def test_cli_build_stats_show(data_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from spillover.cli import app
    from spillover.io import InputError

    monkeypatch.setenv("SPILLOVER_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    out = tmp_path / "suite"
    res = runner.invoke(app, ["data", "build", "--out", str(out), "--data-dir", str(data_dir), "--offline"])
    assert res.exit_code == 0, res.output
    assert "cybersecurity" in res.output and "xstest" in res.output and "benign" in res.output
    res = runner.invoke(app, ["data", "stats", "--suite", str(out), "--json"])
    counts = json.loads(res.output)
    assert counts["cybersecurity"]["test"] == 100 and counts["sources"]["do_not_answer"]["rows"] == 939
    res = runner.invoke(app, ["data", "show", "cyber", "-n", "2", "--suite", str(out)])
    assert res.exit_code == 0 and res.output.count('"id"') == 2
    res = runner.invoke(app, ["data", "show", "nonsense", "--suite", str(out)])
    assert isinstance(res.exception, InputError) and "available" in str(res.exception)


def test_pillar_sources_cannot_replace_a_dataset_domain():
    with pytest.raises(ValueError, match="built from their own sources"):
        DataConfig(pillar_sources={"cybersecurity": ["sorry_bench"]})
