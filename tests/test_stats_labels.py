"""Honest interval labels, Holm-corrected EMA p-values, corrected early-layer check."""

import csv
import itertools
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from report_fixture import make_study
from spillover.concepts.analysis import correlate, similarity_pairs
from spillover.concepts.behaviour import ema_correlation
from spillover.domains import DOMAINS
from spillover.io import write_json
from spillover.report import build_report

DOMAIN_VALUES = {d.value for d in DOMAINS}


def _table(study):
    with (study / "report" / "tables" / "paper_table.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_holm_known_values():
    from spillover.stats import holm

    # sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([0.2]) == [0.2] and holm([]) == []


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_interval_is_labelled_by_how_it_was_made(tmp_path, seeds):
    study = make_study(tmp_path / "s", targets=("safety",), seeds=seeds, optional=False, two_judges=False)
    html = build_report(study).read_text()
    rows = _table(study)
    trained = [r for r in rows if r["variant"] != "aligned"]
    assert {r["ci_method"] for r in rows if r["variant"] == "aligned"} == {"wilson95"}
    md = (study / "report" / "tables" / "paper_table.md").read_text()
    if len(seeds) == 1:
        assert {r["ci_method"] for r in trained} == {"wilson95"}
        assert "]\u2020" not in md and "]\u2020" not in html
    else:
        assert {r["ci_method"] for r in trained} == {"envelope_of_seed_wilson95"}
        assert md.count("]\u2020") == len(trained)
        assert "envelope of the seeds' 95% Wilson intervals (not itself a 95% interval)" in md
        assert "interval: envelope of the per-seed 95% Wilson intervals" in html


def test_ema_flags_carry_holm_corrected_p(tmp_path):
    study = make_study(tmp_path / "s", seeds=(0, 1), optional=False)
    build_report(study)
    rows = _table(study)
    for target in ("cybersecurity", "safety"):
        family = [r for r in rows if r["target"] == target and r["set"] in DOMAIN_VALUES and r["set"] != target]
        assert len(family) == 4 * 6  # four trained variants x six off-target domains
        ps = [float(r["p_mcnemar"]) for r in family]
        adjusted = [float(r["p_holm"]) for r in family]
        assert len(set(ps)) > 1 and max(adjusted) <= 1.0
        assert all(a >= p for a, p in zip(adjusted, ps))
        smallest = min(range(len(ps)), key=ps.__getitem__)
        assert adjusted[smallest] == pytest.approx(min(1.0, len(ps) * ps[smallest]))  # Holm's first step
        order = sorted(range(len(ps)), key=ps.__getitem__)
        assert all(adjusted[i] <= adjusted[j] for i, j in zip(order, order[1:]))  # monotone in p
    others = [r for r in rows if r["variant"] == "aligned" or r["set"] == r["target"] or r["set"] not in DOMAIN_VALUES]
    assert others and all(r["p_holm"] == "" for r in others)
    ema = [r for r in rows if r["ema"] == "true"]
    md = (study / "report" / "tables" / "paper_table.md").read_text()
    assert ema and md.count("Holm p=") == len(ema)
    for r in ema:
        assert f"Holm p={float(r['p_holm']):.2g})**" in md
    html = (study / "report" / "report.html").read_text()
    table = html.split('<section id="table">', 1)[1].split("</section>", 1)[0]  # the paper table's cells
    assert table.count("Holm p ") == len(ema)


def _one_target_summary(tmp_path, per_layer: list[list[float]]) -> tuple:
    doms = ["a", "b", "c", "d", "e", "f", "g"]
    layers = list(range(1, len(per_layer) + 1))
    t2d = {"a": {d: [per_layer[l][i - 1] if i else 0.0 for l in range(len(layers))] for i, d in enumerate(doms)}}
    write_json(tmp_path / "summary.json", {"layers": layers, "domains": doms, "target_to_domain": t2d})
    ema = {("a", d): float(i) for i, d in enumerate(doms) if i}
    return tmp_path / "summary.json", ema, layers


def test_early_layer_check_corrects_for_picking_the_best_layer(tmp_path):
    rng = np.random.default_rng(3)
    early = [[0, 1, 2, 3, 5, 4]] + [list(rng.permutation(6)) for _ in range(7)]  # layer 1: one swap from EMA order
    late = [[5, 4, 3, 2, 1, 0]] * 16
    path, ema, layers = _one_target_summary(tmp_path, [list(map(float, r)) for r in early + late])
    rows = ema_correlation(similarity_pairs(json.loads(path.read_text())), ema, layers=layers)
    assert rows[0]["spearman"] == max(r["spearman"] for r in rows)  # layer 1 is the best layer of all
    assert rows[0]["p_value"] == pytest.approx(12 / 720)  # raw p < 0.05

    result = correlate(path, ema)
    assert result["early_layers_predict"] is False and "corrected for the best of 8 early layers" in result["rationale"]
    assert result["early_layers"] == list(range(1, 9))
    # brute force: every ordering of EMA, the largest |rho| over the eight early layers
    sims = np.array(early, float)
    y = np.array([ema[("a", d)] for d in "bcdefg"])
    largest = [max(abs(spearmanr(s, y[list(p)])[0]) for s in sims) for p in itertools.permutations(range(6))]
    expected = float(np.mean(np.array(largest) >= rows[0]["spearman"] - 1e-12))
    assert result["p_value_early_adjusted"][0] == pytest.approx(expected)
    assert expected >= 0.05 and result["p_value_early_adjusted"][8:] == [None] * 16
    assert json.loads((tmp_path / "correlation.json").read_text()) == result


def test_early_layer_check_keeps_a_clear_effect(tmp_path):
    path, ema, layers = _one_target_summary(tmp_path, [[0.0, 1, 2, 3, 4, 5]] * 3 + [[5.0, 4, 3, 2, 1, 0]] * 6)
    result = correlate(path, ema)
    assert result["early_layers"] == [1, 2, 3]
    assert result["p_value_early_adjusted"][:3] == pytest.approx([2 / 720] * 3)  # identical layers: no penalty
    assert result["early_layers_predict"] is True


def test_max_statistic_p_with_one_layer_is_the_raw_p():
    from spillover.concepts.behaviour import max_statistic_p

    sim = {("a", d): np.array([float(i), float(-i)]) for i, d in enumerate("bcdefg")}
    ema = {("a", d): float((i * 7) % 6) for i, d in enumerate("bcdefg")}
    rows = ema_correlation(sim, ema, layers=[4, 5])
    assert max_statistic_p(sim, ema, [4], layers=[4, 5]) == {4: rows[0]["p_value"]}
    assert max_statistic_p(sim, ema, [9], layers=[4, 5]) == {}
