"""Train one variant from the collected sets, then pick its checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..data.records import PromptRecord
from ..evaluation import evaluate_responses
from ..io import InputError, read_jsonl, stable_hash, write_json, write_jsonl
from ..models import model_identity
from ..stats import percent_se
from ..training import Diagnostics, Example, TrainConfig, objective_for, select_checkpoint, train
from ..variants import VARIANT_TABLE
from .keys import kl_sets


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


def train_variant(study, target: str, variant: str, cfg: TrainConfig, work: Path, out_dir: Path) -> None:
    """Train into ``work`` (resumable), measure every checkpoint, write the selection to ``out_dir``."""
    sets = study.root / "collect" / target
    main, main_file = main_examples(sets, variant)
    if not main:
        raise InputError(f"{main_file}: no training examples (the collection kept none); "
                         "raise collect.n_target_train or pick another target")
    retain = _examples(sets / "retain.jsonl") if cfg.w2 > 0 else None
    sel = study.cfg.selection
    _, mmlu_sel = study.mmlu_records()  # never empty (mmlu_slices)
    method = study.cfg.evaluation.mmlu_method
    step0 = stable_hash({"model": model_identity(study.cfg.models.aligned), "dtype": study.cfg.models.dtype,
                         "mmlu": [r.id for r in mmlu_sel], "method": method, "system_prompt": cfg.system_prompt,
                         "full": cfg.full, "full_dtype": cfg.full_dtype})
    diagnostics = Diagnostics(
        kl_prompts={d: [r.prompt for r in study.suite.get(d, "test")[:sel.kl_prompts]] for d in kl_sets(study)},
        mmlu=mmlu_sel or None, batch_size=study.cfg.models.batch_size, mmlu_method=method,
        step0_mmlu=study.root / "cache" / "mmlu-step0" / f"{step0[:16]}.json")
    study.slot.release()
    checkpoints = train(study.cfg.models.aligned, main, retain, cfg, work, diagnostics, resume=True)

    validation = [PromptRecord.from_dict(r) for r in read_jsonl(sets / "validation.jsonl")]
    spec = study.cfg.judges.spec_for(target)
    refusal: dict[int, float] = {}
    judged: dict[int, int] = {}
    for ck in checkpoints:
        adapter, full = (str(ck.path), None) if ck.adapter else (None, str(ck.path))
        _, _, backend = study.slot.get(study.cfg.models.aligned, adapter, full)
        if validation:
            _, scores = evaluate_responses(backend, {target: validation}, study.cfg.evaluation.decoding,
                                           study.judges, {target: spec}, study.responses)
            refusal[ck.step], judged[ck.step] = scores[0].rate, scores[0].n
    # the slot keeps the last adapter loaded: the evaluation stage swaps in the chosen one

    diag = read_jsonl(work / "diagnostics.jsonl")
    by_step = {r["step"]: r for r in diag}
    baseline = by_step.get(0, {}).get("mmlu_acc")
    step = select_checkpoint(diag, baseline, sel.max_mmlu_drop, refusal) if baseline is not None else None
    rule_met = step is not None
    if step is None:  # no checkpoint kept MMLU within the limit: take the least damaged, and say so
        step = max(checkpoints, key=lambda c: (by_step.get(c.step, {}).get("mmlu_acc", 0.0), -c.step)).step
    chosen = next(c for c in checkpoints if c.step == step)
    mmlu_n = len(mmlu_sel)
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
