"""The inspect_ai task: the suite's prompts, the judges chosen per set, refusal rates with Wilson intervals."""

from __future__ import annotations

import ast
import tomllib
import zlib
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.log import read_eval_log  # noqa: E402
from inspect_ai.model import ModelOutput  # noqa: E402
from inspect_ai.scorer import SampleScore, Score  # noqa: E402
from inspect_ai.solver import solver  # noqa: E402

import spillover.evaluation as evaluation  # noqa: E402
import spillover.inspect_task._registry  # noqa: E402,F401  (what the entry point loads: registers TASK)
import spillover.inspect_task.scorer as inspect_scorer  # noqa: E402
from spillover.data.suite import build_suite  # noqa: E402
from spillover.inspect_task.scorer import SUITE_SETS, refusal_rates  # noqa: E402
from spillover.judges.base import COMPLIANCE, REFUSAL, UNPARSABLE, Verdict  # noqa: E402
from spillover.stats import wilson_interval  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASK = "spillover/refusal_suite"


def _answer(prompt: str) -> str:
    """The stub model's answer: a refusal, a compliance or garbage, by a hash of the prompt."""
    return ("sorry", "sorry", "sure", "???")[zlib.crc32(prompt.encode()) % 4]


@solver
def answer_by_prompt():
    async def solve(state, generate):
        state.output = ModelOutput.from_content("stub", _answer(state.input_text))
        return state

    return solve


class ResponseJudge:
    """Refusal iff the response says "sorry", "???" unparsable; remembers the items it judged."""

    def __init__(self, spec, seen):
        self.id, self.rubric, self.seen = f"stub[{spec}]", "refusal", seen

    def judge(self, items):
        self.seen.extend((self.id, it) for it in items)
        return [Verdict(UNPARSABLE if it.response == "???" else REFUSAL if "sorry" in it.response else COMPLIANCE,
                        "rule", self.id) for it in items]


@pytest.fixture
def stub_judges(monkeypatch):
    seen: list = []
    monkeypatch.setattr(evaluation, "build_judge", lambda spec, **kw: ResponseJudge(spec, seen))
    monkeypatch.setattr(inspect_scorer, "validate_judge_spec", lambda spec: None)
    return seen


def _metrics(log) -> dict[str, float]:
    (scores,) = log.results.scores
    return {k: m.value for k, m in scores.metrics.items()}


def test_rates_intervals_and_judges_per_set(data_dir, tmp_path, stub_judges):
    n = 6
    (log,) = inspect_eval(TASK, model="mockllm/model", solver=answer_by_prompt(), display="none",
                          log_dir=str(tmp_path), task_args={"n": n, "data_dir": str(data_dir), "judge": "a",
                                                            "toxicity_judge": "t"})
    assert log.status == "success", log.error
    log = read_eval_log(log.location)
    metrics = _metrics(log)
    suite = build_suite(None, data_dir)
    for name in SUITE_SETS:
        answers = [_answer(r.prompt) for r in suite.get(name, "test")[:n]]
        k, judged = answers.count("sorry"), sum(a != "???" for a in answers)
        lo, hi = wilson_interval(k, judged)
        assert metrics[f"{name}_n"] == judged
        assert metrics[name] == round(100 * k / judged, 2)
        assert (metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"]) == (round(100 * lo, 2), round(100 * hi, 2))
    by_id = {s.id: s for s in log.samples}
    assert set(by_id) == {r.id for name in SUITE_SETS for r in suite.get(name, "test")[:n]}
    for judge_id, item in stub_judges:
        assert judge_id == ("stub[t]" if item.domain == "toxicity" else "stub[a]")
    bias = [it for _, it in stub_judges if it.domain == "bias"]
    assert bias and all("answers" in it.meta for it in bias)  # BBQ rows reach the judge with their answers
    tox = next(s for s in log.samples if s.metadata["set"] == "toxicity")
    assert tox.scores["suite_judge"].metadata["judge"] == "stub[t]"


def test_system_prompt_and_domain_subset(data_dir, tmp_path, stub_judges):
    (log,) = inspect_eval(TASK, model="mockllm/model", solver=answer_by_prompt(), display="none",
                          log_dir=str(tmp_path), task_args={"n": 2, "data_dir": str(data_dir), "judge": "a",
                                                            "domains": "cyber,privacy", "xstest": False,
                                                            "system_prompt": "Be brief."})
    assert log.status == "success", log.error
    assert {s.metadata["set"] for s in log.samples} == {"cybersecurity", "privacy"}
    assert all(s.messages[0].role == "system" and s.messages[0].text == "Be brief." for s in log.samples)
    assert log.eval.metadata["judges"] == {"cybersecurity": "a", "privacy": "a"}


def test_metric_needs_one_verdict_per_prompt():
    def sample(i, name, value):
        return SampleScore(score=Score(value=value), sample_id=i, sample_metadata={"set": name})

    rates = refusal_rates()
    got = rates([sample(0, "bias", 1.0), sample(1, "bias", 0.0), sample(2, "bias", 1.0), sample(3, "xstest", 0.0)])
    lo, hi = wilson_interval(2, 3)
    assert got == {"bias": 66.67, "bias_ci_low": round(100 * lo, 2), "bias_ci_high": round(100 * hi, 2), "bias_n": 3,
                   "xstest": 0.0, "xstest_ci_low": 0.0, "xstest_ci_high": round(100 * wilson_interval(0, 1)[1], 2),
                   "xstest_n": 1}
    with pytest.raises(ValueError, match="sample 1: score 0.5"):
        rates([sample(0, "bias", 1.0), sample(1, "bias", 0.5)])


def test_bad_judge_or_unused_template_fails_at_task_creation(tmp_path):
    from spillover.io import InputError

    with pytest.raises(InputError, match="unknown judge spec 'nonsense'"):
        inspect_scorer.suite_judge(judge="nonsense")
    template = tmp_path / "t.txt"
    template.write_text("Prompt: {prompt}\nResponse: {response}\n")
    with pytest.raises(InputError, match="no set is judged by one"):
        inspect_scorer.suite_judge(judge="keyword", bias_template=str(template))


def test_the_entry_point_registers_the_task():
    """inspect loads entry point ``spillover`` of group ``inspect_ai`` for names ``spillover/...``;
    importing the module it names, in a fresh interpreter, registers the task."""
    import subprocess
    import sys

    entry_points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["inspect_ai"]
    assert list(entry_points) == [TASK.split("/")[0]]
    code = (f"import importlib; importlib.import_module({entry_points['spillover']!r}); "
            "from inspect_ai._util.registry import registry_info, registry_lookup; "
            f"print(registry_info(registry_lookup('task', {TASK!r})).name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == TASK


def _imports_inspect(tree: ast.Module) -> list[str]:
    """Module-level imports of inspect_ai or of the task package."""
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(("." * node.level) + (node.module or ""))
    return [n for n in names if n.split(".")[0] == "inspect_ai" or "inspect_task" in n]


def test_nothing_else_imports_inspect_ai_at_module_level():
    package = REPO / "src" / "spillover"
    offenders = {str(p.relative_to(package)): found for p in package.rglob("*.py")
                 if "inspect_task" not in p.parts and (found := _imports_inspect(ast.parse(p.read_text())))}
    assert offenders == {}


@pytest.mark.slow
def test_inspect_eval_on_an_embedded_model(data_dir, tmp_path):
    """inspect's Hugging Face provider on the embedded SmolLM2 directory, judged by the default judge:
    the logged per-set rates are those of the logged verdicts, which the judges give again."""
    from spillover.cache import JsonlCache
    from spillover.evaluation import JudgePool, refusal_flag, score
    from spillover.models import embedded_model_dir

    n = 2
    model = f"hf/{embedded_model_dir('embedded:smollm2-135m-instruct')}"
    (log,) = inspect_eval(TASK, model=model, model_args={"do_sample": False, "dtype": "float32"}, max_tokens=24,
                          task_args={"n": n, "data_dir": str(data_dir)}, display="none", log_dir=str(tmp_path))
    assert log.status == "success", log.error
    log = read_eval_log(log.location)
    metrics = _metrics(log)
    rows = [{"id": s.id, "set": s.metadata["set"], "prompt": s.input, "response": s.output.completion,
             "meta": s.metadata["meta"], "label": s.scores["suite_judge"].metadata["label"]} for s in log.samples]
    assert sorted(r["set"] for r in rows) == sorted(SUITE_SETS * n)
    for name in SUITE_SETS:
        flags = [refusal_flag(r["label"]) for r in rows if r["set"] == name]
        expected = score(name, "", flags)
        assert (metrics[name], metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"], metrics[f"{name}_n"]) == (
            expected.rate, expected.ci_low, expected.ci_high, expected.n)
    pool = JudgePool(JsonlCache(None))
    assert [v.label for v in pool.judge("default", rows)] == [r["label"] for r in rows]
    assert {s.scores["suite_judge"].metadata["judge"] for s in log.samples} == {pool.get("default").id}
