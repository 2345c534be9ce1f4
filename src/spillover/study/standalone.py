"""``spillover evaluate``: score one model (optionally against an earlier run) outside a study."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from ..cache import JsonlCache
from ..comparison import check_comparable, read_evaluation
from ..data.suite import build_suite
from ..evaluation import (JudgePool, SetScore, check_templates, compare, evaluate_responses, evaluation_sets,
                          judge_specs, mmlu_score, read_scores, write_eval)
from ..generation import Decoding
from ..io import InputError, read_jsonl, write_csv, write_json
from ..models import model_identity
from ..progress import console
from .config import ModelsConfig
from .models import ModelSlot


def score_table(scores: list[SetScore], deltas: dict[str, dict] | None = None) -> Table:
    """A rich table of scores (and, when given, deltas and McNemar p against a baseline)."""
    t = Table(title="refusal % (MMLU: accuracy %) with 95% Wilson intervals")
    for col in ("set", "n", "rate", "95% CI", "judge") + (("delta", "McNemar p") if deltas else ()):
        t.add_column(col)
    for s in scores:
        row = [s.set, str(s.n), f"{s.rate:.1f}", f"[{s.ci_low:.1f}, {s.ci_high:.1f}]", s.judge]
        if deltas:
            d = deltas.get(s.set, {})
            row += [f"{d['delta']:+.1f}" if "delta" in d else "", f"{d['p']:.3g}" if "p" in d else ""]
        t.add_row(*row)
    return t


def run_evaluate(*, model: str, out: Path, adapters: list[str], checkpoint: str | None, domains: str,
                 n: int | None, mmlu_n: int | None, xstest: bool, judge: str, bias_judge: str | None,
                 baseline: Path | None, max_new_tokens: int, batch_size: int, base_url: str | None,
                 data_dir: Path | None, backend: str = "hf", system_prompt: str | None = None,
                 api_key_env: str | None = None, mmlu_method: str = "letter", toxicity_judge: str | None = None,
                 template: Path | None = None, bias_template: Path | None = None) -> dict[Path, list[SetScore]]:
    """Evaluate the model, or each of ``adapters`` on it (the base loaded once; outputs in
    ``out/<adapter directory name>``); return {output directory: scores}.

    Bias and Toxicity are judged by ``bias_judge`` / ``toxicity_judge`` where given (the study's
    ``judges.per_set``), every other set by ``judge``; ``template`` and ``bias_template`` replace the
    packaged templates of the ``rubric:*`` and ``bias-rubric:*`` judges."""
    if checkpoint and adapters:
        raise InputError("--checkpoint and --adapter exclude each other: a full-weights checkpoint has no adapter")
    outs = {a: out / Path(a).name for a in adapters} if len(adapters) > 1 else {(adapters or [None])[0]: out}
    if len(set(outs.values())) < len(outs):
        raise InputError(f"--adapter: two adapters share a directory name, so their outputs under {out} would "
                         f"collide: {', '.join(adapters)}")
    sets = evaluation_sets(domains, xstest)
    judge_for = judge_specs(sets, judge, {"bias": bias_judge, "toxicity": toxicity_judge})
    templates = {"rubric": template, "bias-rubric": bias_template}
    check_templates(templates, judge_for)
    suite = build_suite(None, data_dir)
    records = {s: suite.get(s, "test")[:n] for s in sets}
    mmlu = suite.get("mmlu", "test")[:mmlu_n]
    slot = ModelSlot(ModelsConfig(aligned=model, batch_size=batch_size, backend=backend))
    judges = JudgePool(JsonlCache(out / "cache" / "judgments.jsonl"), base_url=base_url, api_key_env=api_key_env,
                       batch_size=batch_size, templates=templates)
    decoding = Decoding(max_new_tokens=max_new_tokens, system_prompt=system_prompt)
    results = {}
    for adapter, dest in outs.items():
        lm, tok, gen = slot.get(model, adapter, checkpoint)
        rows, scores = evaluate_responses(gen, records, decoding, judges, judge_for,
                                          JsonlCache(out / "cache" / "responses.jsonl"))
        if mmlu:
            scores.append(mmlu_score(lm, tok, mmlu, batch_size, mmlu_method))
        write_eval(dest, rows, scores)
        write_json(dest / "evaluation.json", {
            "model": model, "adapter": adapter, "checkpoint": checkpoint,
            "revision": model_identity(checkpoint) if checkpoint else model_identity(model, adapter),
            "judges": judge_for, "templates": {k: str(v) for k, v in templates.items() if v is not None},
            "n": n, "mmlu_n": mmlu_n, "mmlu_method": mmlu_method, "backend": backend,
            "decoding": decoding.model_dump()})
        results[dest] = scores
        _report(dest, rows, scores, baseline)
    return results


def _report(out: Path, rows: list[dict], scores: list[SetScore], baseline: Path | None) -> None:
    """Write scores.csv (with deltas and McNemar p against ``baseline``, checked comparable) and print."""
    deltas = None
    if baseline is not None:
        check_comparable(read_evaluation(baseline), read_evaluation(out))
        base_rows = read_jsonl(baseline / "responses.jsonl")
        base = {s.set: s for s in read_scores(baseline)}
        deltas = {s.set: {"delta": s.rate - base[s.set].rate,
                          **({} if s.set == "mmlu" else {"p": compare(base_rows, rows, s.set)["p_mcnemar"]})}
                  for s in scores}
    write_csv(out / "scores.csv", list(asdict(scores[0])) + ["delta", "p_mcnemar"],
              ({**asdict(s), "delta": (deltas or {}).get(s.set, {}).get("delta", ""),
                "p_mcnemar": (deltas or {}).get(s.set, {}).get("p", "")} for s in scores))
    console.print(score_table(scores, deltas))
    console.print(f"wrote {out / 'scores.json'}, {out / 'scores.csv'}, {out / 'responses.jsonl'}, "
                  f"{out / 'evaluation.json'}")
