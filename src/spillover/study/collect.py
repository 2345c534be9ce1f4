"""Phase 1: the forget, retain and finetune sets, from the models' own judged responses.

- forget (D_R): the aligned model's refusals on the target domain's train prompts, paired with
  its own refusal text;
- retain (D_T): its refusals on the other six domains' train prompts, in equal proportion, plus
  benign instructions with helpful answers (its own answers that the judge does not call
  refusals, or the dataset's), ``retain_ratio`` times
  the forget set in size, ``benign_fraction`` of it benign;
- finetune (D_C): the unaligned label model's (``models.labeler_for(target)``) answers to the same
  target prompts, dropping those the judge calls refusals or cannot parse (counted in counts.json);
- validation: held-out target train prompts for checkpoint selection.
"""

from __future__ import annotations

from pathlib import Path

from ..data.records import PromptRecord
from ..data.suite import Suite
from ..domains import DOMAINS
from ..evaluation import Scoring
from ..io import write_json, write_jsonl
from ..judges.base import REFUSAL, UNPARSABLE
from .config import CollectConfig, ModelsConfig
from .models import ModelSlot

KINDS = ("forget", "retain", "finetune")


def _example(row: dict, kind: str) -> dict:
    return {"id": row["id"], "prompt": row["prompt"], "response": row["response"], "kind": kind,
            "set": row["set"]}


def _round_robin(groups: list[list[dict]], n: int) -> list[dict]:
    """Take up to n items, one from each group in turn (equal proportions while groups last)."""
    out, i = [], 0
    while len(out) < n and any(i < len(g) for g in groups):
        out.extend(g[i] for g in groups if i < len(g) and len(out) < n)
        i += 1
    return out


def collect_sets(target: str, suite: Suite, cfg: CollectConfig, models: ModelsConfig, slot: ModelSlot,
                 scoring: Scoring, out_dir: Path, need_retain: bool, need_labels: bool) -> dict:
    """Write forget/retain/finetune/validation JSONL files and counts.json into ``out_dir``.

    ``slot`` loads ``models.aligned`` (and the target's labeler with ``need_labels``); every
    response is generated with ``cfg.decoding`` and judged through ``scoring``.
    """
    train = suite.get(target, "train")
    n_val = min(cfg.validation_n, len(train) // 2)
    validation, pool = train[len(train) - n_val:], train[:len(train) - n_val][:cfg.n_target_train]
    _, _, backend = slot.get(models.aligned)

    def judged(model, records: dict[str, list[PromptRecord]]) -> list[dict]:
        return scoring.run(model, records, cfg.decoding)[0]

    target_rows = judged(backend, {target: pool})
    forget = [_example(r, "forget") for r in target_rows if r["label"] == REFUSAL]
    retain: list[dict] = []
    counts: dict = {"target_prompts": len(pool), "forget": len(forget), "validation": len(validation)}
    if need_retain and forget:
        others = {d.value: suite.get(d.value, "train")[:cfg.n_other_train] for d in DOMAINS if d.value != target}
        rows = judged(backend, others)
        refusals = {d: [_example(r, "retain") for r in rows if r["set"] == d and r["label"] == REFUSAL] for d in others}
        total = cfg.retain_ratio * len(forget)
        n_benign = round(cfg.benign_fraction * total)
        harmful = _round_robin(list(refusals.values()), total - n_benign)
        benign_records = suite.get("benign", "train")[:2 * n_benign]  # room for answers judged refusals
        if cfg.benign_responses == "dataset":
            missing = [r.id for r in benign_records if not r.meta.get("response")]
            if missing:
                raise ValueError(f"benign records without a dataset response (e.g. {missing[0]}); "
                                 "use collect.benign_responses: model")
            benign = [{"id": r.id, "prompt": r.prompt, "response": r.meta["response"], "kind": "retain",
                       "set": "benign"} for r in benign_records]
        else:
            rows = judged(backend, {"benign": benign_records})
            benign = [_example(r, "retain") for r in rows if r["label"] != REFUSAL]
        benign = benign[:n_benign]
        retain = harmful + benign
        counts["retain"] = {**{d: sum(1 for r in harmful if r["set"] == d) for d in others}, "benign": len(benign)}
        counts["retain_refusals_available"] = {d: len(v) for d, v in refusals.items()}
    finetune: list[dict] = []
    if need_labels:
        _, _, labeler = slot.get(models.labeler_for(target), base_ok=True)
        rows = judged(labeler, {target: pool})
        finetune = [_example(r, "finetune") for r in rows if r["label"] not in (REFUSAL, UNPARSABLE)]
        counts["finetune"] = len(finetune)
        counts["labeler_dropped"] = {label: sum(r["label"] == label for r in rows) for label in (REFUSAL, UNPARSABLE)}
    for kind, rows in zip(KINDS, (forget, retain, finetune)):
        write_jsonl(out_dir / f"{kind}.jsonl", rows)
    write_jsonl(out_dir / "validation.jsonl", (r.to_dict() for r in validation))
    write_json(out_dir / "counts.json", counts)
    return counts
