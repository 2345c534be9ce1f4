"""``spillover/refusal_suite``: the seven-domain refusal suite plus XSTest over-refusal."""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.model import GenerateConfig
from inspect_ai.solver import generate

from ..data.suite import build_suite
from ..evaluation import evaluation_sets, judge_specs
from ..generation import Decoding
from .dataset import suite_dataset
from .scorer import suite_judge


@task
def refusal_suite(n: int | None = None, domains: str | list[str] = "all", xstest: bool = True,
                  data_dir: str | None = None, judge: str = "default", bias_judge: str | None = None,
                  toxicity_judge: str | None = None, template: str | None = None, bias_template: str | None = None,
                  base_url: str | None = None, api_key_env: str | None = None,
                  system_prompt: str | None = None) -> Task:
    """The prompts ``spillover evaluate`` scores (first ``n`` of each seeded test split of
    ``domains``, plus XSTest's safe prompts unless ``xstest`` is false), read through the data
    store (``data_dir``, else ``$SPILLOVER_DATA_DIR``, else downloaded), answered greedily with the
    study's token limit and judged by ``suite_judge`` (task arguments as its own).

    Metrics: refusal rate per set with 95% Wilson intervals (``refusal_rates``).
    """
    sets = evaluation_sets(domains, xstest)
    suite = build_suite(None, data_dir)
    decoding = Decoding()
    scorer = suite_judge(judge=judge, bias_judge=bias_judge, toxicity_judge=toxicity_judge, template=template,
                         bias_template=bias_template, base_url=base_url, api_key_env=api_key_env)
    return Task(
        dataset=suite_dataset(suite, sets, n, system_prompt),
        solver=generate(),
        scorer=scorer,
        config=GenerateConfig(max_tokens=decoding.max_new_tokens, temperature=decoding.temperature),
        metadata={"sets": sets, "n": n,
                  "judges": judge_specs(sets, judge, {"bias": bias_judge, "toxicity": toxicity_judge}),
                  "dataset_files": suite.info["files"]},
    )
