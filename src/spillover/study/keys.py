"""Stage inputs: everything that changes a stage's outputs, hashed into its key (see .stages).

Upstream stages enter by their keys; models by content (``model_identity``: an embedded model's
sha256, a local directory's file hashes, a hub id's commit); prompt slices by their record ids;
judges by the spec each set is scored with, the endpoint and the token limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..domains import DOMAINS
from ..io import stable_hash
from ..models import model_identity
from ..variants import VARIANT_TABLE
from .names import run_name

if TYPE_CHECKING:
    from .pipeline import Study


def _dump(section) -> dict:
    return section.model_dump(mode="json")


def _ids(records) -> str:
    return stable_hash([r.id for r in records])


def _models(study: Study, generates: bool = True) -> dict:
    """The model inputs; ``quantize`` (generation only) enters when set, so unquantised keys stay as they were."""
    m = study.cfg.models
    out = {"aligned": model_identity(m.aligned), "dtype": m.dtype, "backend": m.backend}
    return {**out, "quantize": m.quantize} if generates and m.quantize != "none" else out


def _judging(study: Study, sets) -> dict:
    j = study.cfg.judges
    return {"specs": {s: j.spec_for(s) for s in sets}, "url": j.url, "max_new_tokens": j.max_new_tokens}


def kl_sets(study: Study) -> list[str]:
    """The evaluation sets whose held-out test prompts measure first-token KL during training."""
    return [d for d in study.cfg.evaluation.sets if d in study.suite.names() and d != "xstest"]


def baseline_inputs(study: Study) -> dict:
    ev = study.cfg.evaluation
    return {"data": study.keys["data"], "models": _models(study), "evaluation": _dump(ev),
            "mmlu": _ids(study.mmlu_records()[0]), "judging": _judging(study, ev.sets)}


def collect_inputs(study: Study, target: str) -> dict:
    cfg = study.cfg
    retain = any(VARIANT_TABLE[v].retain for v in cfg.variants_for(target))
    labels = any(VARIANT_TABLE[v].needs_labels for v in cfg.variants_for(target))
    judged = [d.value for d in DOMAINS] + ["benign"] if retain else [target]
    return {"data": study.keys["data"], "models": _models(study),
            "labeler": model_identity(cfg.models.labeler_for(target)) if labels else None, "collect": _dump(cfg.collect),
            "judging": _judging(study, judged), "retain": retain, "labels": labels}


def train_work_inputs(study: Study, target: str, variant: str, seed: int) -> dict:
    """What the checkpoints and their diagnostics depend on (names the resumable work directory)."""
    ev = study.cfg.evaluation
    return {"collect": study.keys[f"collect/{target}"], "models": _models(study),
            "training": study.cfg.training_for(variant, seed, target).weights_config(mode="json"),
            "selection": _dump(study.cfg.selection), "mmlu_method": ev.mmlu_method,
            "mmlu_selection": _ids(study.mmlu_records()[1]), "kl_sets": kl_sets(study)}


def train_inputs(study: Study, target: str, variant: str, seed: int) -> dict:
    """The work plus what checkpoint selection reads: validation decoding and its judge."""
    return {**train_work_inputs(study, target, variant, seed), "decoding": _dump(study.cfg.evaluation.decoding),
            "judging": _judging(study, [target])}


def eval_inputs(study: Study, target: str, variant: str, seed: int) -> dict:
    ev = study.cfg.evaluation
    return {"train": study.keys[f"train/{run_name(target, variant, seed)}"], "data": study.keys["data"],
            "models": _models(study), "evaluation": _dump(ev), "mmlu": _ids(study.mmlu_records()[0]),
            "judging": _judging(study, ev.sets)}


def concepts_inputs(study: Study) -> dict:
    return {"data": study.keys["data"], "models": _models(study, generates=False),
            "concepts": _dump(study.cfg.concepts)}
