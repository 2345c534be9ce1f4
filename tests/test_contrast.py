"""Paired variant contrasts (spillover.contrast) and the two scripts that print them."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from spillover.contrast import paired_contrast
from spillover.domains import DOMAINS
from spillover.stats import holm, mcnemar_exact

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
DOMAIN_VALUES = [d.value for d in DOMAINS]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(study: Path, target: str, variant: str, refused: dict[str, list[bool]]):
    out = study / "eval" / target / variant / "seed0"
    out.mkdir(parents=True)
    rows = [{"id": f"{s}:{i}", "set": s, "label": "refusal" if r else "compliance"}
            for s, labels in refused.items() for i, r in enumerate(labels)]
    (out / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _labels(seed: int, n: int = 20) -> dict[str, list[bool]]:
    # Different per set and per seed, so a mix-up of sets or runs changes the counts.
    return {s: [(i * (k + 3) + seed) % 5 < 2 for i in range(n)] for k, s in enumerate(DOMAIN_VALUES)}


@pytest.fixture
def study(tmp_path):
    base, kept, other = _labels(0), _labels(1), _labels(2)
    kept["privacy"] = [True] * 20                       # the other method keeps every Privacy refusal
    for target, labels in (("safety", base), ("cybersecurity", other)):
        _run(tmp_path, target, "unlearn", labels)
    _run(tmp_path, "safety", "dpo", kept)
    _run(tmp_path, "safety", "aug_unlearn", _labels(3))
    return tmp_path, base, kept


def test_cells_pair_the_prompts_and_holm_covers_the_off_target_cells_only(study):
    root, base, kept = study
    cells = paired_contrast(root, "unlearn", ["dpo"])
    assert [(c["target"], c["domain"]) for c in cells] == [("safety", d) for d in DOMAIN_VALUES]  # cyber has no dpo
    by = {c["domain"]: c for c in cells}
    for d in DOMAIN_VALUES:
        lost, gained, p = mcnemar_exact(base[d], kept[d])
        assert (by[d]["refused_only_base"], by[d]["refused_only_other"], by[d]["p_mcnemar"]) == (lost, gained, round(p, 6))
        assert by[d]["rate_other"] == 100 * sum(kept[d]) / 20
    assert by["safety"]["on_target"] and by["safety"]["p_holm"] is None
    off = [c for c in cells if not c["on_target"]]
    assert [c["p_holm"] for c in off] == [round(p, 6) for p in holm([c["p_mcnemar"] for c in off])]
    assert by["privacy"]["change"] > 0 and by["privacy"]["p_holm"] < 0.05


def test_a_set_judged_in_one_run_only_is_an_error(tmp_path):
    _run(tmp_path, "safety", "unlearn", _labels(0))
    _run(tmp_path, "safety", "dpo", {"safety": [True] * 20})
    with pytest.raises(ValueError, match="cybersecurity"):
        paired_contrast(tmp_path, "unlearn", ["dpo"])


def test_retain_effect_keeps_its_fields_and_method_contrast_summarises(study, tmp_path, monkeypatch, capsys):
    root, _, _ = study
    cells = _script("retain_effect").retain_effect(root)
    assert len(cells) == 6 and {c["target"] for c in cells} == {"safety"}
    assert list(cells[0]) == ["target", "seed", "domain", "n", "rate_plain", "rate_aug", "refused_only_plain",
                              "refused_only_aug", "p_mcnemar", "p_holm"]
    contrast = _script("method_contrast")
    out = tmp_path / "contrast.json"
    monkeypatch.setattr(sys, "argv", ["method_contrast", str(root), "--out", str(out)])
    contrast.main()
    summary = {s["method"]: s for s in json.loads(out.read_text())["summary"]}
    assert set(summary) == {"dpo", "aug_unlearn"}
    assert summary["dpo"]["holm_more_refusals"] >= 1 and summary["dpo"]["holm_fewer_refusals"] == 0
    assert summary["dpo"]["off_target_ci"][0] <= summary["dpo"]["off_target_mean_change"] <= summary["dpo"]["off_target_ci"][1]
    assert "dpo vs unlearn" in capsys.readouterr().out
