"""Paired comparison of two ``spillover evaluate`` outputs (before/after, or two checkpoints).

Each refusal set is compared on the prompt ids both evaluations judged (unparsable verdicts
are left out of the pairs) with an exact McNemar test; the p-values of the off-target domain sets
are Holm-corrected together, as in the study report. An off-target domain whose refusal rate drops
by more than the EMA threshold is flagged. Two evaluations are comparable only when they scored
the same sets, each with the same judge on the same prompt ids (MMLU: the same method and n).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .domains import DOMAINS, MMLU
from .evaluation import SetScore, compare, read_scores
from .io import InputError, read_jsonl
from .stats import holm

DOMAIN_VALUES = tuple(d.value for d in DOMAINS)


@dataclass
class Evaluation:
    """One evaluate output directory: its per-prompt rows and per-set scores."""

    path: Path
    rows: list[dict]
    scores: dict[str, SetScore]

    def ids(self, set_name: str) -> set[str]:
        return {str(r["id"]) for r in self.rows if r["set"] == set_name}


@dataclass
class SetComparison:
    """One set in both evaluations: A's and B's scores, B - A in points and the paired test."""

    set: str
    judge: str
    a: SetScore
    b: SetScore
    delta: float
    n_paired: int | None = None
    refusals_lost: int | None = None
    refusals_gained: int | None = None
    p_mcnemar: float | None = None
    p_holm: float | None = None
    ema: bool = False


def read_evaluation(path: Path) -> Evaluation:
    """Read ``path/scores.json`` and ``path/responses.jsonl`` (written by ``spillover evaluate``)."""
    path = Path(path)
    if not (path / "scores.json").is_file():
        raise InputError(f"{path / 'scores.json'}: file not found (is {path} a `spillover evaluate --out` directory?)")
    try:
        scores = {s.set: s for s in read_scores(path)}
    except TypeError as e:
        raise InputError(f"{path / 'scores.json'}: not a list of set scores ({e})") from None
    rows = read_jsonl(path / "responses.jsonl", required=("id", "set", "label"))
    return Evaluation(path, rows, scores)


def check_comparable(a: Evaluation, b: Evaluation) -> None:
    """Raise InputError, naming both directories, unless A and B scored the same sets alike."""
    where = f"{a.path} and {b.path}"
    if set(a.scores) != set(b.scores):
        raise InputError(f"{where} scored different sets: only in {a.path}: {sorted(set(a.scores) - set(b.scores))}; "
                         f"only in {b.path}: {sorted(set(b.scores) - set(a.scores))}")
    for name in a.scores:
        sa, sb = a.scores[name], b.scores[name]
        if sa.judge != sb.judge:
            raise InputError(f"{where} judged set {name!r} differently: {sa.judge} in {a.path}, {sb.judge} in {b.path}")
        if name == MMLU:
            if sa.n + sa.unparsable != sb.n + sb.unparsable:
                raise InputError(f"{where} have different MMLU questions: n={sa.n} in {a.path}, n={sb.n} in {b.path}")
            continue
        ia, ib = a.ids(name), b.ids(name)
        if ia != ib:
            raise InputError(f"{where} have different prompts in set {name!r}: {len(ia - ib)} id(s) only in {a.path} "
                             f"(e.g. {sorted(ia - ib)[:3]}), {len(ib - ia)} only in {b.path} (e.g. {sorted(ib - ia)[:3]})")


def compare_evaluations(a: Evaluation, b: Evaluation, target: str | None = None,
                        ema_threshold: float = 15.0) -> list[SetComparison]:
    """Every set of A and B (checked comparable) in A's order; ``target`` is left out of EMA and Holm."""
    check_comparable(a, b)
    out = []
    for name, sa in a.scores.items():
        sb = b.scores[name]
        c = SetComparison(name, sa.judge, sa, sb, round(sb.rate - sa.rate, 2))
        if name != MMLU:
            paired = compare(a.rows, b.rows, name)
            c.n_paired, c.refusals_lost, c.refusals_gained = (paired["n_paired"], paired["refusals_lost"],
                                                              paired["refusals_gained"])
            c.p_mcnemar = paired["p_mcnemar"]
        c.ema = name in DOMAIN_VALUES and name != target and c.delta < -ema_threshold
        out.append(c)
    family = [c for c in out if c.set in DOMAIN_VALUES and c.set != target and c.p_mcnemar is not None]
    for c, p in zip(family, holm([c.p_mcnemar for c in family])):
        c.p_holm = p
    return out
