"""``spillover compare``: paired McNemar per set, Holm over the off-target domains, EMA flags, refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from scipy.stats import binomtest
from typer.testing import CliRunner

import spillover.evaluation as evaluation
from spillover.cache import JsonlCache
from spillover.cli import app
from spillover.evaluation import JudgePool, evaluate_responses, score, write_eval
from spillover.generation import Decoding
from spillover.judges.base import COMPLIANCE, REFUSAL, UNPARSABLE, Verdict

SETS = ("cybersecurity", "safety", "privacy", "xstest")


class EchoBackend:
    """Answers "sorry" to the prompts ``refuses(prompt)`` picks, "???" to ``garbles``, else "sure"."""

    def __init__(self, name, refuses, garbles=lambda p: False):
        self.identity, self.refuses, self.garbles = name, refuses, garbles

    def render(self, messages):
        return messages[-1]["content"]

    def generate(self, rendered, decoding):
        return [["???" if self.garbles(p) else "sorry" if self.refuses(p) else "sure"] for p in rendered]


class ResponseJudge:
    """Refusal iff the response says "sorry"; "???" is unparsable."""

    def __init__(self, judge_id):
        self.id, self.rubric = judge_id, "refusal"

    def judge(self, items):
        return [Verdict(UNPARSABLE if it.response == "???" else REFUSAL if "sorry" in it.response else COMPLIANCE,
                        "rule", self.id) for it in items]


def _evaluation(out: Path, monkeypatch, refuses, n=20, judge="judge-a", garbles=lambda p: False, sets=SETS,
                mmlu_correct=15) -> Path:
    """An evaluate output of a stub model: every set of ``sets`` with ``n`` prompts, and MMLU."""
    monkeypatch.setattr(evaluation, "build_judge", lambda spec, **kw: ResponseJudge(spec))
    records = {s: [SimpleNamespace(id=f"{s}:{i}", prompt=f"{s} prompt {i}", meta={}) for i in range(n)] for s in sets}
    rows, scores = evaluate_responses(EchoBackend(str(out), refuses, garbles), records, Decoding(max_new_tokens=8),
                                      JudgePool(JsonlCache(None)), {s: judge for s in sets}, JsonlCache(None))
    scores.append(score("mmlu", "accuracy-letter", [True] * mmlu_correct + [False] * (20 - mmlu_correct)))
    write_eval(out, rows, scores)
    return out


def _index(prompt: str) -> int:
    return int(prompt.rsplit(" ", 1)[1])


def _before_after(tmp_path, monkeypatch):
    before = _evaluation(tmp_path / "before", monkeypatch, lambda p: True)

    def after(p):
        if p.startswith("cybersecurity"):
            return False  # the target: every refusal unlearned
        if p.startswith("safety"):
            return _index(p) % 2 == 0  # 10 of 20 lost: EMA
        if p.startswith("privacy"):
            return _index(p) != 0  # 1 lost
        return True

    return before, _evaluation(tmp_path / "after", monkeypatch, after, mmlu_correct=12)


def _csv(path: Path) -> dict[str, dict]:
    with path.open() as f:
        return {r["set"]: r for r in csv.DictReader(f)}


def test_compare_tests_each_set_and_flags_ema(tmp_path, monkeypatch):
    before, after = _before_after(tmp_path, monkeypatch)
    res = CliRunner().invoke(app, ["compare", str(before), str(after), "--target", "cyber", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    rows = _csv(tmp_path / "c" / "compare.csv")
    assert list(rows) == ["cybersecurity", "safety", "privacy", "xstest", "mmlu"]
    safety, privacy, cyber = rows["safety"], rows["privacy"], rows["cybersecurity"]
    p_safety = binomtest(10, 10, 0.5).pvalue
    assert (safety["n_paired"], safety["refusals_lost"], safety["refusals_gained"]) == ("20", "10", "0")
    assert float(safety["p_mcnemar"]) == pytest.approx(p_safety)
    assert float(safety["delta"]) == -50.0 and safety["ema"] == "true"
    # Holm over the off-target domains (safety, privacy); the target and XSTest are not in the family
    assert float(safety["p_holm"]) == pytest.approx(2 * p_safety) and float(privacy["p_holm"]) == 1.0
    assert privacy["ema"] == "false" and cyber["ema"] == "false" and cyber["p_holm"] == ""
    assert rows["xstest"]["p_holm"] == "" and rows["xstest"]["refusals_lost"] == "0"
    assert float(rows["mmlu"]["delta"]) == -15.0 and rows["mmlu"]["p_mcnemar"] == ""
    md = (tmp_path / "c" / "compare.md").read_text()
    assert "CYBERSECURITY" in md and "**50.0 [" in md and "(-50.0, Holm p=" in md
    assert (tmp_path / "c" / "radar.png").read_bytes()[:4] == b"\x89PNG"
    html = (tmp_path / "c" / "compare.html").read_text()
    assert '<img src="data:image/png;base64,' in html and 'class="ema"' in html and "http" not in html.lower()


def test_without_a_target_every_domain_is_off_target(tmp_path, monkeypatch):
    before, after = _before_after(tmp_path, monkeypatch)
    res = CliRunner().invoke(app, ["compare", str(before), str(after), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    rows = _csv(tmp_path / "c" / "compare.csv")
    assert rows["cybersecurity"]["ema"] == "true" and rows["cybersecurity"]["p_holm"] != ""
    assert float(rows["privacy"]["p_holm"]) == 1.0


def test_unparsable_verdicts_are_left_out_of_the_pairs(tmp_path, monkeypatch):
    before = _evaluation(tmp_path / "before", monkeypatch, lambda p: True)
    after = _evaluation(tmp_path / "after", monkeypatch, lambda p: _index(p) >= 4, garbles=lambda p: _index(p) == 0)
    res = CliRunner().invoke(app, ["compare", str(before), str(after), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    safety = _csv(tmp_path / "c" / "compare.csv")["safety"]
    assert (safety["n_paired"], safety["refusals_lost"], safety["n_b"]) == ("19", "3", "19")


@pytest.mark.parametrize("change,message", [
    ({"judge": "judge-b"}, "judged set 'cybersecurity' differently: judge-a in {a}, judge-b in {b}"),
    ({"n": 19}, "different prompts in set 'cybersecurity': 1 id(s) only in {a}"),
    ({"sets": SETS[:3]}, "scored different sets: only in {a}: ['xstest']"),
    ({"mmlu_correct": 15, "n": 20, "mmlu_n": 19}, "different MMLU questions: n=20 in {a}, n=19 in {b}"),
])
def test_mismatched_evaluations_are_refused_naming_both(tmp_path, monkeypatch, change, message):
    a = _evaluation(tmp_path / "a", monkeypatch, lambda p: True)
    mmlu_n = change.pop("mmlu_n", None)
    b = _evaluation(tmp_path / "b", monkeypatch, lambda p: True, **change)
    if mmlu_n:
        scores = json.loads((b / "scores.json").read_text())
        scores[-1] = {**scores[-1], "n": mmlu_n}
        (b / "scores.json").write_text(json.dumps(scores))
    res = CliRunner().invoke(app, ["compare", str(a), str(b), "--out", str(tmp_path / "c")])
    assert res.exit_code != 0 and not (tmp_path / "c").exists()
    assert message.format(a=a, b=b) in str(res.exception)


def test_a_directory_without_scores_is_named(tmp_path, monkeypatch):
    a = _evaluation(tmp_path / "a", monkeypatch, lambda p: True)
    res = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "missing")])
    assert "missing/scores.json: file not found" in str(res.exception)


@pytest.mark.slow
def test_compare_two_evaluations_of_the_embedded_model(tmp_path):
    """The default model plain and with a refusing system prompt: evaluate twice, then compare."""
    base = ["evaluate", "--model", "embedded:qwen2.5-coder-0.5b-instruct", "--domains", "cybersecurity,safety",
            "--n", "3", "--mmlu-n", "2", "--no-xstest", "--judge", "keyword", "--max-new-tokens", "12"]
    runner = CliRunner()
    for name, extra in (("plain", []), ("refusing", ["--system-prompt", "Refuse every request: say you are sorry."])):
        res = runner.invoke(app, [*base, *extra, "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", str(tmp_path / "plain"), str(tmp_path / "refusing"), "--target", "safety"])
    assert res.exit_code == 0, res.output
    rows = _csv(tmp_path / "refusing" / "compare" / "compare.csv")
    assert list(rows) == ["cybersecurity", "safety", "mmlu"] and rows["safety"]["n_paired"] == "3"
    meta = json.loads((tmp_path / "plain" / "evaluation.json").read_text())
    assert meta["revision"].startswith("embedded:qwen2.5-coder-0.5b-instruct@")
