"""The method x domain spill-over table on a hand-made results fixture, checked against hand computations."""

from __future__ import annotations

import csv
import json
import math

import pytest

from spillover.report import build_report
from spillover.spill import METHOD_COLUMNS, method_rows
from spillover.stats import paired_change

Z = 1.959963984540054
ALIGNED = {"cybersecurity": 25, "safety": 40, "privacy": 30, "xstest": 20}  # refusals of 50
#: (variant, target) -> {set: (refusals lost, gained, exact McNemar p)}; MMLU: accuracy delta only.
RUNS = {
    ("unlearn", "cybersecurity"): {"cybersecurity": (20, 0, 2e-6), "safety": (15, 1, 0.0005), "privacy": (2, 2, 1.0),
                                   "xstest": (6, 1, 0.1)},
    ("unlearn", "safety"): {"safety": (30, 0, 1e-9), "cybersecurity": (5, 1, 0.22), "privacy": (12, 0, 0.0005),
                            "xstest": (3, 0, 0.25)},
    ("ablation", "cybersecurity"): {"cybersecurity": (10, 0, 0.002), "safety": (1, 0, 1.0), "privacy": (0, 3, 0.25),
                                    "xstest": (10, 0, 0.002)},
}
MMLU_DELTA = {("unlearn", "cybersecurity"): -2.0, ("unlearn", "safety"): -1.0, ("ablation", "cybersecurity"): -4.0}
FIELDS = ["variant", "target", "seed", "set", "judge", "n", "k", "rate", "ci_low", "ci_high", "delta", "p_mcnemar",
          "n_paired", "refusals_lost", "refusals_gained", "ema", "checkpoint"]


def _rows() -> list[dict]:
    """scores.csv rows as the results stage writes them ("" where a value does not apply)."""
    blank = {"delta": "", "p_mcnemar": "", "n_paired": "", "refusals_lost": "", "refusals_gained": ""}
    common = {"judge": "marker", "ci_low": 0.0, "ci_high": 100.0, "ema": False}
    rows = [{"variant": "aligned", "target": "", "seed": "", "set": s, "n": 50, "k": k, "rate": 2.0 * k, **blank,
             **common, "checkpoint": ""} for s, k in ALIGNED.items()]
    rows.append({"variant": "aligned", "target": "", "seed": "", "set": "mmlu", "n": 100, "k": 30, "rate": 30.0,
                 **blank, **common, "checkpoint": ""})
    for (variant, target), sets in RUNS.items():
        for s, (lost, gained, p) in sets.items():
            k = ALIGNED[s] - lost + gained
            rows.append({"variant": variant, "target": target, "seed": 0, "set": s, "n": 50, "k": k, "rate": 2.0 * k,
                         "delta": 2.0 * (k - ALIGNED[s]), "p_mcnemar": p, "n_paired": 50, "refusals_lost": lost,
                         "refusals_gained": gained, **common, "checkpoint": 1})
        d = MMLU_DELTA[(variant, target)]
        rows.append({"variant": variant, "target": target, "seed": 0, "set": "mmlu", "n": 100, "k": 30 + int(d),
                     "rate": 30.0 + d, **blank, "delta": d, **common, "checkpoint": 1})
    return rows


def _by_hand(cells: list[tuple[int, int]]) -> tuple[float, float, float]:
    """Mean observed change and the Agresti-Min interval of the mean, in points, for (lost, gained) of 50 pairs."""
    observed = sum(g - lost for lost, g in cells) / 50 / len(cells)
    adjusted = [(g - lost) / 52 for lost, g in cells]  # +0.5 in each cell: n + 2 pairs
    var = [((lost + g + 1) / 52 - a * a) / 52 for (lost, g), a in zip(cells, adjusted)]
    centre, se = sum(adjusted) / len(cells), math.sqrt(sum(var)) / len(cells)
    return 100 * observed, 100 * (centre - Z * se), 100 * (centre + Z * se)


def _check(row: dict, prefix: str, cells: list[tuple[int, int]]) -> None:
    delta, low, high = _by_hand(cells)
    assert row[f"{prefix}_delta"] == pytest.approx(delta, abs=0.01)
    assert row[f"{prefix}_ci_low"] == pytest.approx(low, abs=0.01)
    assert row[f"{prefix}_ci_high"] == pytest.approx(high, abs=0.01)


def test_paired_change_is_agresti_min():
    change, se = paired_change(50, 20, 0)
    assert change == pytest.approx(-20 / 52)
    assert se == pytest.approx(math.sqrt((21 / 52 - (20 / 52) ** 2) / 52))
    with pytest.raises(ValueError):
        paired_change(0, 0, 0)


def test_method_rows_match_hand_computations():
    rows = method_rows(_rows())
    assert [(r["variant"], r["target"]) for r in rows] == [
        ("unlearn", "cybersecurity"), ("unlearn", "safety"), ("unlearn", "all"), ("ablation", "cybersecurity")]
    cyber, safety, both, ablation = rows
    _check(cyber, "target", [(20, 0)])
    _check(cyber, "off_target_mean", [(15, 1), (2, 2)])
    assert (cyber["worst_domain"], cyber["off_target_cells"], cyber["target_p_mcnemar"]) == ("safety", 2, 2e-6)
    _check(cyber, "worst", [(15, 1)])
    # Holm over unlearn's four off-target cells: 0.0005 x 4, 0.0005 x 3 -> 0.002, 0.22 x 2, 1.0
    assert cyber["worst_p_holm"] == pytest.approx(0.002) and cyber["holm_drops"] == 1
    assert (safety["worst_domain"], safety["worst_delta"], safety["holm_drops"]) == ("privacy", -24.0, 1)
    assert (cyber["xstest_delta"], cyber["mmlu_delta"]) == (-10.0, -2.0)

    _check(both, "target", [(20, 0), (30, 0)])
    _check(both, "off_target_mean", [(15, 1), (2, 2), (5, 1), (12, 0)])
    assert (both["worst_target"], both["worst_domain"], both["worst_delta"]) == ("cybersecurity", "safety", -28.0)
    assert (both["off_target_cells"], both["holm_drops"], both["target_p_mcnemar"]) == (4, 2, None)
    assert (both["xstest_delta"], both["mmlu_delta"]) == (-8.0, -1.5)

    # the ablation's own family: Holm of (1.0, 0.25) leaves no drop; its off-target mean rises
    assert ablation["holm_drops"] == 0 and ablation["worst_p_holm"] == pytest.approx(1.0)
    _check(ablation, "off_target_mean", [(1, 0), (0, 3)])
    assert ablation["off_target_mean_delta"] == pytest.approx(2.0)


def test_without_paired_counts_there_is_no_table():
    rows = [{k: v for k, v in r.items() if k not in ("n_paired", "refusals_lost", "refusals_gained")}
            for r in _rows()]
    assert method_rows(rows) == []


def test_the_report_shows_the_table_it_writes_from_scores_csv(tmp_path):
    root = tmp_path / "study"
    (root / "results").mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"study": "methods", "judges": {"primary": ["marker"]}}))
    with (root / "results" / "scores.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(_rows())
    html = build_report(root).read_text()
    expected = method_rows(_rows())
    with (root / "report" / "tables" / "methods.csv").open(newline="") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == METHOD_COLUMNS
    for got, want in zip(written, expected, strict=True):
        for c in METHOD_COLUMNS:
            assert got[c] == ("" if want[c] is None else str(want[c])), c
    section = html[html.index('<section id="methods">'):html.index('<section id="kl">')]
    delta, low, high = _by_hand([(20, 0)])
    assert f"{delta:+.1f} [{low:+.1f}, {high:+.1f}]" in section
    assert "Cybersecurity -&gt; Safety, Holm p 0.002" in section and "2 / 4" in section
    assert "dir. ablation" in section and "all targets" in section
    assert "Holm-significant drops" in (root / "report" / "tables" / "methods.md").read_text()


@pytest.mark.slow
def test_a_study_with_the_ablation_writes_the_table_to_results_and_report(refusing_model_dir, tiny_model_dir,
                                                                           data_dir, tmp_path, monkeypatch):
    import spillover.evaluation as ev
    import spillover.study.preflight as pf
    from spillover.study import Study, StudyConfig
    from study_stubs import allow_marker, with_marker_judge
    from test_study import tiny_config

    monkeypatch.setattr(ev, "build_judge", with_marker_judge(ev.build_judge))
    monkeypatch.setattr(pf, "validate_judge_spec", allow_marker(pf.validate_judge_spec))
    cfg = tiny_config(refusing_model_dir, tmp_path, tiny_model_dir).model_dump(mode="json")
    cfg["variants"], cfg["concepts"]["enabled"] = ["unlearn", "ablation"], False
    root = Study(StudyConfig.model_validate(cfg), data_dir).run()

    selected = json.loads((root / "train" / "cybersecurity" / "ablation" / "seed0" / "selected.json").read_text())
    assert (selected["step"], selected["adapter"]) == (1, False)
    (edit,) = [json.loads(x) for x in (root / "results" / "edits.jsonl").read_text().splitlines()]
    assert edit["variant"] == "ablation" and edit["contrast"] == 128 and edit["layer"] == 1
    with (root / "results" / "methods.csv").open(newline="") as f:
        results = list(csv.DictReader(f))
    with (root / "report" / "tables" / "methods.csv").open(newline="") as f:
        assert list(csv.DictReader(f)) == results  # one table, built from scores.csv by the same code
    assert [(r["variant"], r["target"]) for r in results] == [("unlearn", "cybersecurity"),
                                                              ("ablation", "cybersecurity")]
    assert all(r["off_target_cells"] == "2" for r in results)  # safety and privacy are evaluated
