"""Concept vectors, similarities and the EMA correlation on synthetic states."""

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from spillover.concepts import (correlate, diffmean_concept_vectors, ema_correlation, ema_correlation_within_targets,
                                histogram_layers,
                                pca_concept_vectors, predict_ema, spearman, state_similarities,
                                vector_similarity_matrix)
from spillover.concepts.analysis import check_layers, load_ema
from spillover.io import InputError, write_json


def planted(direction, n=300, d=64, layers=3, offset=2.0, seed=0):
    """States whose largest within-domain variance lies along ``direction`` (unit), mean shifted along it."""
    rng = np.random.default_rng(seed)
    coef = rng.normal(0, 5.0, size=(layers, n, 1))
    noise = rng.normal(0, 0.3, size=(layers, n, d))
    return coef * direction + noise + offset * direction


def test_pca_recovers_planted_direction_with_sign():
    rng = np.random.default_rng(1)
    u = rng.normal(size=64)
    u /= np.linalg.norm(u)
    vec = pca_concept_vectors(planted(u))
    assert vec.shape == (3, 64)
    assert np.allclose(np.linalg.norm(vec, axis=1), 1)
    assert (vec @ u > 0.99).all()  # right sign: the domain mean (offset +2u) projects positively
    flipped = pca_concept_vectors(planted(u, offset=-2.0))
    assert (flipped @ u < -0.99).all()


def test_pca_sign_follows_reference():
    rng = np.random.default_rng(2)
    u = rng.normal(size=64)
    u /= np.linalg.norm(u)
    states = planted(u, offset=1.0)
    reference = np.broadcast_to(3.0 * u, (3, 10, 64))  # benign sits further along +u
    assert (pca_concept_vectors(states, reference=reference) @ u < -0.99).all()


def test_pca_rejects_identical_states():
    with pytest.raises(ValueError, match="identical"):
        pca_concept_vectors(np.ones((2, 5, 4)))


def test_diffmean_equals_hand_computation():
    rng = np.random.default_rng(3)
    states, benign = rng.normal(size=(2, 7, 5)), rng.normal(size=(2, 4, 5))
    expected = np.stack([
        (states[l].sum(0) / 7 - benign[l].sum(0) / 4) / np.linalg.norm(states[l].sum(0) / 7 - benign[l].sum(0) / 4)
        for l in range(2)
    ])
    assert np.allclose(diffmean_concept_vectors(states, benign), expected)


def test_similarities():
    vectors = np.array([[1.0, 0.0], [0.0, 2.0]])
    states = np.array([[[3.0, 0.0], [1.0, 1.0]], [[0.0, -1.0], [1.0, 0.0]]])
    assert np.allclose(state_similarities(vectors, states), [[1.0, 2 ** -0.5], [-1.0, 0.0]])
    m = vector_similarity_matrix({"a": vectors, "b": np.array([[0.0, 1.0], [0.0, 1.0]])})
    assert m.shape == (2, 2, 2)
    assert np.allclose(m[0], [[1, 0], [0, 1]]) and np.allclose(m[1], [[1, 1], [1, 1]])


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(4)
    for _ in range(20):
        x, y = rng.integers(0, 5, 12).astype(float), rng.normal(size=12)
        assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)


def _pairs(rng, n_targets=3, layers=4):
    doms = [f"d{i}" for i in range(7)]
    sim, ema = {}, {}
    for t in doms[:n_targets]:
        for d in doms + ["benign"]:
            sim[(t, d)] = rng.normal(size=layers)
            if d not in (t, "benign"):
                ema[(t, d)] = float(rng.normal())
    return sim, ema


def test_ema_correlation_matches_scipy():
    rng = np.random.default_rng(5)
    sim, ema = _pairs(rng)
    pairs = sorted(ema)
    rows = ema_correlation(sim, ema, n_permutations=2000, seed=0, layers=[3, 6, 9, 12])
    assert [r["layer"] for r in rows] == [3, 6, 9, 12]
    for i, row in enumerate(rows):
        ref = spearmanr([sim[p][i] for p in pairs], [ema[p] for p in pairs])
        assert row["n_pairs"] == 18 and row["exact"] is False
        assert row["spearman"] == pytest.approx(ref.statistic)
        assert row["p_value"] == pytest.approx(ref.pvalue, abs=0.06)  # permutation vs t approximation


def test_ema_correlation_exact_with_one_target():
    sim = {("a", d): np.array([float(i)]) for i, d in enumerate(["b", "c", "d", "e", "f", "g"])}
    ema = {("a", d): 10.0 * i for i, d in enumerate(["b", "c", "d", "e", "f", "g"])}
    row = ema_correlation(sim, ema)[0]
    assert row["exact"] is True and row["n_pairs"] == 6
    assert row["spearman"] == pytest.approx(1.0)
    assert row["p_value"] == pytest.approx(2 / 720)  # only the identity and the reversal are as extreme


def test_predict_ema_ranks_by_early_layers():
    sim = {("t", "t"): np.ones(6), ("t", "benign"): np.ones(6) * 5,
           ("t", "x"): np.array([0.3, 0.3, 0, 0, 0, 0]), ("t", "y"): np.array([0.1, 0.1, 1, 1, 1, 1])}
    assert [d for d, _ in predict_ema("t", sim, layer_ids=[1, 2, 3, 4, 5, 6])] == ["x", "y"]
    assert [d for d, _ in predict_ema("t", sim, layers=[6], layer_ids=[1, 2, 3, 4, 5, 6])] == ["y", "x"]
    with pytest.raises(ValueError, match="not analysed"):
        predict_ema("t", sim, layers=[7], layer_ids=[1, 2, 3, 4, 5, 6])


def test_correlate_writes_json(tmp_path):
    doms = ["a", "b", "c", "d", "e", "f", "g"]
    layers = [1, 2, 3, 4, 5, 6]
    # layer 1 and 2 similarity is a perfect predictor of EMA; later layers are reversed
    t2d = {t: {d: [float(i), float(i), -float(i), -float(i), -float(i), -float(i)] for i, d in enumerate(doms + ["benign"])}
           for t in ["a", "b"]}
    write_json(tmp_path / "summary.json", {"layers": layers, "domains": doms, "target_to_domain": t2d})
    ema = {(t, d): float(i) for t in ["a", "b"] for i, d in enumerate(doms) if d != t}
    ema[("a", "xstest")] = 3.0
    result = correlate(tmp_path / "summary.json", ema, n_permutations=500)
    assert json.loads((tmp_path / "correlation.json").read_text()) == result
    assert result["n_pairs"] == 12 and result["best_layer"] == 1
    assert result["spearman"][0] == pytest.approx(1.0) and result["spearman"][-1] == pytest.approx(-1.0)
    assert result["early_layers"] == [1, 2] and result["early_layers_predict"] is True
    assert result["ignored_pairs"] == ["a/xstest"]
    assert result["spearman_within_target"][0] == pytest.approx(1.0) and result["p_value_within_target"][0] < 0.05
    few = correlate(tmp_path / "summary.json", {("a", "b"): 1.0, ("a", "c"): 2.0, ("a", "d"): 0.0})
    assert few["early_layers_predict"] is None and "3 (target, domain) pairs" in few["rationale"]
    with pytest.raises(InputError, match="zz"):
        correlate(tmp_path / "summary.json", {("zz", "a"): 1.0})


def test_layer_choices():
    assert histogram_layers(list(range(1, 25))) == [1, 5, 7, 13, 24]
    assert check_layers(None, 3) == [1, 2, 3]
    with pytest.raises(InputError, match="1..3"):
        check_layers([0, 2], 3)


def test_within_target_correlation_ignores_target_offsets():
    doms = ["b", "c", "d", "e", "f"]
    sim, ema = {}, {}
    for k, t in enumerate(["a", "z"]):
        for i, d in enumerate(doms):
            sim[(t, d)] = np.array([i + 10.0 * k])  # target z is more similar to everything...
            ema[(t, d)] = float(i + 100.0 * (1 - k))  # ...but target a has the larger EMA
    pooled = ema_correlation(sim, ema, n_permutations=500)[0]
    within = ema_correlation_within_targets(sim, ema, n_permutations=500)[0]
    assert pooled["spearman"] < 0.5
    assert within["spearman"] == pytest.approx(1.0) and within["p_value"] < 0.05 and within["n_pairs"] == 10
    one = {p: v for p, v in ema.items() if p[0] == "a"}
    assert ema_correlation_within_targets(sim, one) == ema_correlation(sim, one)


def test_load_ema_formats(tmp_path):
    flat, study = tmp_path / "flat.json", tmp_path / "study.json"
    flat.write_text(json.dumps({"safety": {"bias": 12.5, "cybersecurity": 3}}))
    study.write_text(json.dumps({"unlearn": {"safety": {"bias": 12.5}}, "finetune": {"safety": {"bias": 1.0}}}))
    assert load_ema(flat) == {("safety", "bias"): 12.5, ("safety", "cybersecurity"): 3.0}
    assert load_ema(study) == {("safety", "bias"): 12.5}
    assert load_ema(study, "finetune") == {("safety", "bias"): 1.0}
    with pytest.raises(InputError, match="no variant 'x'"):
        load_ema(study, "x")
    flat.write_text(json.dumps({"safety": {"bias": "high"}}))
    with pytest.raises(InputError, match="'safety', domain 'bias'"):
        load_ema(flat)
