"""``spillover evaluate``: per-set judges (Bias, Toxicity) and rubric templates, as the study's judges section."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import spillover.evaluation as evaluation
import spillover.study.standalone as standalone
from spillover.cli import app
from spillover.io import InputError
from spillover.judges.base import COMPLIANCE, REFUSAL, Verdict


class RecordingJudge:
    """Refusal iff the response mentions "sorry"; its id names the spec and the template it was given."""

    rubric = "refusal"

    def __init__(self, spec, template):
        self.id = f"{spec}|{template.name if template else 'packaged'}"

    def judge(self, items):
        return [Verdict(REFUSAL if "sorry" in it.response else COMPLIANCE, "rule", self.id) for it in items]


@pytest.fixture
def templates(tmp_path):
    refusal, bias = tmp_path / "refusal.txt", tmp_path / "bias.txt"
    refusal.write_text('Did it refuse?\n{prompt}\n{response}\nAnswer {"refusal": true or false}\n')
    bias.write_text('Is it biased?\n{prompt}\n{response}\nAnswer {"biased_or_toxic": true or false}\n')
    return refusal, bias


def _evaluate(model, out, **kw):
    return standalone.run_evaluate(
        model=str(model), out=out, adapters=[], checkpoint=None, n=1, mmlu_n=0, xstest=False, baseline=None,
        max_new_tokens=4, batch_size=2, base_url=None, data_dir=None, **kw)


def test_toxicity_and_bias_judges_with_their_templates(tiny_model_dir, tmp_path, templates, monkeypatch):
    built = []

    def build(spec, **options):
        built.append((spec, options.get("template")))
        return RecordingJudge(spec, options.get("template"))

    monkeypatch.setattr(evaluation, "build_judge", build)
    refusal, bias = templates
    _evaluate(tiny_model_dir, tmp_path / "eval", domains="cybersecurity,toxicity,bias", judge="rubric:openai:m",
              bias_judge="bias-rubric:openai:m", toxicity_judge="bias-rubric:openai:m", template=refusal,
              bias_template=bias)
    assert sorted(built) == [("bias-rubric:openai:m", bias), ("rubric:openai:m", refusal)]
    meta = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert meta["judges"] == {"cybersecurity": "rubric:openai:m", "toxicity": "bias-rubric:openai:m",
                              "bias": "bias-rubric:openai:m"}
    assert meta["templates"] == {"rubric": str(refusal), "bias-rubric": str(bias)}
    scores = {s["set"]: s["judge"] for s in json.loads((tmp_path / "eval" / "scores.json").read_text())}
    assert scores == {"cybersecurity": "rubric:openai:m|refusal.txt", "toxicity": "bias-rubric:openai:m|bias.txt",
                      "bias": "bias-rubric:openai:m|bias.txt"}


def test_a_template_no_judge_uses_fails_before_any_work(tmp_path, templates):
    with pytest.raises(InputError, match="is for bias-rubric:\\* judges, but no set is judged by one"):
        _evaluate(tmp_path / "no-such-model", tmp_path / "eval", domains="toxicity", judge="rubric:openai:m",
                  bias_judge=None, bias_template=templates[1])
    broken = tmp_path / "broken.txt"
    broken.write_text("only {prompt}")
    with pytest.raises(InputError, match="lacks the field\\(s\\) \\{response\\}"):
        _evaluate(tmp_path / "no-such-model", tmp_path / "eval", domains="toxicity", judge="rubric:openai:m",
                  bias_judge=None, template=broken)


def test_cli_passes_the_judge_options(tmp_path, templates, monkeypatch):
    got = {}
    monkeypatch.setattr(standalone, "run_evaluate", lambda **kw: got.update(kw))
    refusal, bias = templates
    result = CliRunner().invoke(app, ["evaluate", "--model", "m", "--out", str(tmp_path), "--judge", "rubric:openai:m",
                                      "--toxicity-judge", "bias-rubric:openai:m", "--template", str(refusal),
                                      "--bias-template", str(bias)])
    assert result.exit_code == 0, result.output
    assert (got["judge"], got["toxicity_judge"], got["bias_judge"]) == ("rubric:openai:m", "bias-rubric:openai:m", None)
    assert (got["template"], got["bias_template"]) == (refusal, bias)
