"""The variant table as the study reads it: main sets, pairs, retain use, logged loss terms."""

from __future__ import annotations

import csv

from spillover.io import write_jsonl
from spillover.report.data import TRAIN_LOG, _opt_float, read_csv
from spillover.study.config import StudyConfig
from spillover.study.results import train_log_columns
from spillover.study.training import main_examples


def test_each_variant_trains_its_table_method_and_retain_use():
    cfg = StudyConfig(name="x", variants=["unlearn", "aug_finetune", "graddiff", "simnpo", "dpo", "rmu"],
                      training={"method_args": {"npo": {"beta": 0.2}, "rmu": {"layer": 3}}})
    got = {v: cfg.training_for(v, 0) for v in cfg.variants}
    assert {v: (c.method, c.w2) for v, c in got.items()} == {
        "unlearn": ("npo", 0.0), "aug_finetune": ("ce", 1.0), "graddiff": ("graddiff", 1.0),
        "simnpo": ("simnpo", 0.0), "dpo": ("dpo", 0.0), "rmu": ("rmu", 1.0)}
    assert got["unlearn"].args.beta == 0.2 and got["rmu"].args.layer == 3
    assert list(got["dpo"].method_args) == ["dpo"]  # only the run's own method enters its key


def test_dpo_pairs_join_refusals_and_label_answers_by_prompt(tmp_path):
    write_jsonl(tmp_path / "forget.jsonl", [
        {"id": "a", "prompt": "pa", "response": "no a", "kind": "forget", "set": "t"},
        {"id": "b", "prompt": "pb", "response": "no b", "kind": "forget", "set": "t"}])
    write_jsonl(tmp_path / "finetune.jsonl", [
        {"id": "c", "prompt": "pc", "response": "yes c", "kind": "finetune", "set": "t"},
        {"id": "b", "prompt": "pb", "response": "yes b", "kind": "finetune", "set": "t"}])
    pairs, _ = main_examples(tmp_path, "dpo")
    assert [(e.id, e.prompt, e.response, e.rejected, e.kind) for e in pairs] == [("b", "pb", "yes b", "no b", "pair")]
    assert [e.id for e in main_examples(tmp_path, "graddiff")[0]] == ["a", "b"]


def test_every_logged_loss_term_reaches_train_log_csv_and_the_report(tmp_path):
    log = [{"variant": "aug_unlearn", "target": "safety", "seed": 0, "step": 1, "loss": 2.0, "npo": 1.5,
            "retain_ce": 0.5, "lr": 1e-5, "elapsed": 0.1},
           {"variant": "rmu", "target": "safety", "seed": 0, "step": 1, "loss": 3.0, "rmu": 2.0, "retain_mse": 1.0,
            "lr": 1e-5, "elapsed": 0.1}]
    columns = train_log_columns(log)
    assert columns == ["variant", "target", "seed", "step", "loss", "npo", "retain_ce", "rmu", "retain_mse", "lr"]
    path = tmp_path / "train_log.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(log)
    rows = read_csv(path, TRAIN_LOG, _opt_float)
    assert rows[0]["retain_ce"] == 0.5 and rows[0]["rmu"] is None and rows[1]["retain_mse"] == 1.0
