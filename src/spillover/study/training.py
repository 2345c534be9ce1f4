"""Train one variant from the collected sets, then pick its checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..data.records import PromptRecord
from ..evaluation import Scoring
from ..generation.base import Decoding
from ..io import InputError, read_jsonl, write_json, write_jsonl
from ..stats import percent_se
from ..training import Diagnostics, Example, TrainConfig, objective_for, select_checkpoint, train
from ..training.edits import EDIT_FILE
from ..variants import VARIANT_TABLE
from .config import SelectionConfig
from .models import ModelSlot


def loss_formulas(cfg) -> dict[str, str]:
    """{"<target>/<variant>": the loss each run minimises} for a StudyConfig (for the manifest)."""
    return {f"{t.value}/{v}": objective_for(cfg.training_for(v, cfg.seeds[0], t.value)).describe()
            for t in cfg.targets for v in cfg.variants_for(t.value)}


def _examples(path: Path) -> list[Example]:
    return [Example(r["id"], r["prompt"], r["response"], r["kind"])
            for r in read_jsonl(path, required=("id", "prompt", "response", "kind"))]


def preference_pairs(sets: Path) -> list[Example]:
    """(compliant label-model answer, the aligned model's refusal) for each prompt in both sets.

    The forget and finetune sets answer the same target train prompts (record ids), so a prompt
    the aligned model refused and the label model answered gives one pair, in forget-set order.
    """
    answers = {e.id: e for e in _examples(sets / "finetune.jsonl")}
    return [Example(e.id, e.prompt, answers[e.id].response, "pair", e.response)
            for e in _examples(sets / "forget.jsonl") if e.id in answers]


def main_examples(sets: Path, variant: str) -> tuple[list[Example], Path]:
    """The main training set of ``variant`` from collect/<target>/, and the file it comes from."""
    main = VARIANT_TABLE[variant].main
    if main == "pairs":
        return preference_pairs(sets), sets / "forget.jsonl + finetune.jsonl"
    return _examples(sets / f"{main}.jsonl"), sets / f"{main}.jsonl"


def training_set_size(sets: Path, variant: str) -> int:
    """How many examples ``variant``'s main training set in collect/<target>/ holds."""
    return len(main_examples(sets, variant)[0])


def train_variant(sets: Path, target: str, variant: str, cfg: TrainConfig, work: Path, out_dir: Path, *,
                  aligned: str, diagnostics: Diagnostics, selection: SelectionConfig, slot: ModelSlot,
                  scoring: Scoring, decoding: Decoding, contrast: list[str] | None = None) -> None:
    """Train into ``work`` (resumable), measure every checkpoint, write the selection to ``out_dir``.

    ``sets`` is collect/<target>/; ``diagnostics`` run at step 0 and at each checkpoint (their
    MMLU records are the selection slice); each checkpoint of ``aligned`` is loaded through
    ``slot``, answers the validation prompts with ``decoding`` and is judged through ``scoring``;
    ``selection`` holds the MMLU rule. ``contrast``: the prompts a training-free method contrasts
    the main set with (its edit record, edit.json, is copied beside the selection).
    """
    main, main_file = main_examples(sets, variant)
    if not main:
        raise InputError(f"{main_file}: no training examples (the collection kept none); "
                         "raise collect.n_target_train or pick another target")
    retain = _examples(sets / "retain.jsonl") if cfg.w2 > 0 else None
    slot.release()
    checkpoints = train(aligned, main, retain, cfg, work, diagnostics, resume=True, contrast=contrast)

    validation = [PromptRecord.from_dict(r) for r in read_jsonl(sets / "validation.jsonl")]
    refusal: dict[int, float] = {}
    judged: dict[int, int] = {}
    for ck in checkpoints:
        adapter, full = (str(ck.path), None) if ck.adapter else (None, str(ck.path))
        _, _, backend = slot.get(aligned, adapter, full)
        if validation:
            _, scores = scoring.run(backend, {target: validation}, decoding)
            refusal[ck.step], judged[ck.step] = scores[0].rate, scores[0].n
    # the slot keeps the last adapter loaded: the evaluation stage swaps in the chosen one

    diag = read_jsonl(work / "diagnostics.jsonl")
    by_step = {r["step"]: r for r in diag}
    baseline = by_step.get(0, {}).get("mmlu_acc")
    step = select_checkpoint(diag, baseline, selection.max_mmlu_drop, refusal) if baseline is not None else None
    rule_met = step is not None
    if step is None:  # no checkpoint kept MMLU within the limit: take the least damaged, and say so
        step = max(checkpoints, key=lambda c: (by_step.get(c.step, {}).get("mmlu_acc", 0.0), -c.step)).step
    chosen = next(c for c in checkpoints if c.step == step)
    mmlu_n = len(diagnostics.mmlu or [])
    write_json(out_dir / "selected.json", {"step": step, "path": str(chosen.path), "adapter": chosen.adapter,
                                           "mmlu_rule_met": rule_met, "baseline_mmlu": baseline,
                                           "baseline_mmlu_se": percent_se(baseline, mmlu_n), "mmlu_n": mmlu_n,
                                           "validation_n": len(validation)})
    rows = []
    for c in checkpoints:  # each selection figure with its standard error
        mmlu, refused = by_step.get(c.step, {}).get("mmlu_acc"), refusal.get(c.step)
        rows.append({"step": c.step, "mmlu": mmlu, "mmlu_se": percent_se(mmlu, mmlu_n), "target_refusal": refused,
                     "target_refusal_se": percent_se(refused, judged.get(c.step)), "selected": c.step == step})
    write_jsonl(out_dir / "checkpoints.jsonl", rows)
    for name in ("train_log.jsonl", "diagnostics.jsonl"):
        shutil.copy(work / name, out_dir / name)
    if (work / EDIT_FILE).exists():
        shutil.copy(work / EDIT_FILE, out_dir / EDIT_FILE)
