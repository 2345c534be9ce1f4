"""Study configuration: numeric bounds, errors that name file and field."""

from __future__ import annotations

import types
from pathlib import Path
import typing

import pytest
from pydantic import BaseModel

from spillover.config import load_yaml_config
from spillover.io import InputError
from spillover.study import StudyConfig

NUMERIC = (int, float)


def _numeric(annotation) -> bool:
    if annotation in NUMERIC:
        return True
    args = typing.get_args(annotation)
    return (typing.get_origin(annotation) in (typing.Union, types.UnionType)
            and any(a in NUMERIC for a in args) and all(a in NUMERIC or a is type(None) for a in args))


def _models(annotation) -> list[type[BaseModel]]:
    found = [a for a in (annotation, *typing.get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)]
    for a in typing.get_args(annotation):
        found += [m for m in _models(a) if m not in found]
    return found


def _unbounded(model: type[BaseModel], prefix: str = "", seen=None) -> list[str]:
    seen = seen if seen is not None else set()
    if model in seen:
        return []
    seen.add(model)
    out = []
    for name, field in model.model_fields.items():
        if _numeric(field.annotation):
            bounds = [m for m in field.metadata if any(hasattr(m, b) for b in ("ge", "gt", "le", "lt"))]
            if not bounds:
                out.append(prefix + name)
        for sub in _models(field.annotation):
            out += _unbounded(sub, f"{prefix}{name}.", seen)
    return out


def test_every_numeric_field_is_bounded():
    assert _unbounded(StudyConfig) == []


@pytest.mark.parametrize("yaml_text, field", [
    ("evaluation: {n_per_set: -5}", "evaluation.n_per_set"),
    ("evaluation: {n_per_set: 0}", "evaluation.n_per_set"),
    ("evaluation: {mmlu_n: -1}", "evaluation.mmlu_n"),
    ("selection: {mmlu_n: 0}", "selection.mmlu_n"),
    ("selection: {max_mmlu_drop: -3}", "selection.max_mmlu_drop"),
    ("collect: {validation_n: 0}", "collect.validation_n"),
    ("collect: {n_target_train: -1}", "collect.n_target_train"),
    ("models: {batch_size: 0}", "models.batch_size"),
    ("judges: {audit_sample: -1}", "judges.audit_sample"),
    ("seeds: [-1]", "seeds.0"),
    ("evaluation: {decoding: {top_p: 1.5}}", "evaluation.decoding.top_p"),
    ("training: {seed: -2}", "training.seed"),
    ("concepts: {layers: [-1]}", "concepts.layers.0"),
    # names checked at load as well as numbers
    ("models: {dtype: bf61}", "models.dtype"),
    ("judges: {per_set: {toxicty: bbq}}", "judges.per_set"),
    ("evaluation: {sets: [cyber_security]}", "evaluation.sets"),
])
def test_out_of_range_values_are_refused_naming_file_and_field(tmp_path, yaml_text, field):
    path = tmp_path / "study.yaml"
    path.write_text(f"name: x\n{yaml_text}\n")
    with pytest.raises(InputError) as err:
        load_yaml_config(StudyConfig, path)
    assert str(path) in str(err.value) and f"field {field}:" in str(err.value)


def test_per_target_and_per_variant_overrides_are_checked_at_load(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("name: x\ntargets: [safety]\ntarget_training: {safety: {lr: -1}}\n")
    with pytest.raises(InputError) as err:
        load_yaml_config(StudyConfig, path)
    assert str(path) in str(err.value) and "target_training.safety.lr" in str(err.value)
    path.write_text("name: x\nvariant_training: {unlearn: {batch_size: 0}}\n")
    with pytest.raises(InputError, match=r"variant_training\.unlearn\.batch_size"):
        load_yaml_config(StudyConfig, path)


def test_variant_targets_restrict_a_variant_and_are_checked_at_load(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("name: x\ntargets: [cybersecurity, safety, bias]\nvariants: [unlearn, aug_unlearn]\n"
                    "seeds: [0, 1]\nvariant_targets: {aug_unlearn: [safety]}\n")
    cfg = load_yaml_config(StudyConfig, path)
    assert cfg.variants_for("safety") == ["unlearn", "aug_unlearn"] and cfg.variants_for("bias") == ["unlearn"]
    assert [r for r in cfg.runs() if r[1] == "aug_unlearn"] == [("safety", "aug_unlearn", 0), ("safety", "aug_unlearn", 1)]
    assert len(cfg.runs()) == 2 * (3 + 1)
    for bad, field in (("{aug_unlearn: [privacy]}", "privacy not in targets"),
                       ("{finetune: [safety]}", "finetune: not one of variants")):
        path.write_text(f"name: x\ntargets: [safety]\nvariants: [unlearn, aug_unlearn]\nvariant_targets: {bad}\n")
        with pytest.raises(InputError, match=field):
            load_yaml_config(StudyConfig, path)


def test_a_dumped_config_reloads_but_a_study_wide_method_is_refused(tmp_path):
    import yaml

    cfg = load_yaml_config(StudyConfig, Path(__file__).resolve().parents[1] / "configs" / "quick-cpu.yaml").model_dump(mode="json")
    (tmp_path / "dumped.yaml").write_text(yaml.safe_dump(cfg))
    dumped = load_yaml_config(StudyConfig, tmp_path / "dumped.yaml")
    assert dumped.training.method == "npo"
    assert dumped.training_for("aug_unlearn", 0, "cybersecurity").w2 == 1.0  # the retain term survives the dump
    cfg["training"]["method"] = "ce"
    (tmp_path / "ce.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError, match="training.method: each variant sets its method"):
        load_yaml_config(StudyConfig, tmp_path / "ce.yaml")
