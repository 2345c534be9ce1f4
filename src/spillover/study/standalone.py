"""``spillover evaluate``: score one model (optionally against an earlier run) outside a study."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from ..cache import JsonlCache
from ..data.suite import build_suite
from ..domains import parse_domains
from ..evaluation import JudgePool, SetScore, compare, evaluate_responses, mmlu_score, read_scores, write_eval
from ..generation import Decoding
from ..io import read_jsonl, write_csv
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


def run_evaluate(*, model: str, out: Path, adapter: str | None, checkpoint: str | None, domains: str,
                 n: int | None, mmlu_n: int | None, xstest: bool, judge: str, bias_judge: str | None,
                 baseline: Path | None, max_new_tokens: int, batch_size: int, base_url: str | None,
                 data_dir: Path | None) -> list[SetScore]:
    sets = [d.value for d in parse_domains(domains)] + (["xstest"] if xstest else [])
    suite = build_suite(None, data_dir)
    records = {s: suite.get(s, "test")[:n] for s in sets}
    slot = ModelSlot(ModelsConfig(aligned=model, batch_size=batch_size))
    lm, tok, backend = slot.get(model, adapter, checkpoint)
    cache = out / "cache"
    judges = JudgePool(JsonlCache(cache / "judgments.jsonl"), base_url=base_url, batch_size=batch_size)
    judge_for = {s: (bias_judge or judge) if s == "bias" else judge for s in sets}
    rows, scores = evaluate_responses(backend, records, Decoding(max_new_tokens=max_new_tokens), judges,
                                      judge_for, JsonlCache(cache / "responses.jsonl"))
    mmlu = suite.get("mmlu", "test")[:mmlu_n]
    if mmlu:
        scores.append(mmlu_score(lm, tok, mmlu, batch_size))
    write_eval(out, rows, scores)
    deltas = None
    if baseline is not None:
        base_rows = read_jsonl(baseline / "responses.jsonl")
        base = {s.set: s for s in read_scores(baseline)}
        deltas = {s.set: {"delta": s.rate - base[s.set].rate,
                          **({} if s.set == "mmlu" else {"p": compare(base_rows, rows, s.set)["p_mcnemar"]})}
                  for s in scores if s.set in base}
    write_csv(out / "scores.csv", list(asdict(scores[0])) + ["delta", "p_mcnemar"],
              ({**asdict(s), "delta": (deltas or {}).get(s.set, {}).get("delta", ""),
                "p_mcnemar": (deltas or {}).get(s.set, {}).get("p", "")} for s in scores))
    console.print(score_table(scores, deltas))
    console.print(f"wrote {out / 'scores.json'}, {out / 'scores.csv'}, {out / 'responses.jsonl'}")
    return scores
