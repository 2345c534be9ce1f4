"""Checks that run before any work: the stage to stop after, model ids and judge specs."""

from __future__ import annotations

from ..io import InputError
from ..judges import validate_judge_spec
from ..models import ModelLoadError, check_model_spec
from ..variants import VARIANT_TABLE
from .config import StudyConfig

#: Stage kinds in run order (``--until`` takes one).
STAGES = ("data", "baseline", "collect", "train", "eval", "concepts", "report")


def preflight(cfg: StudyConfig, until: str | None = None) -> None:
    """Raise InputError naming the field for anything that would otherwise fail mid-study."""
    if until is not None and until not in STAGES:
        raise InputError(f"--until: unknown stage {until!r}; stages: {', '.join(STAGES)}")
    models = {"models.aligned": cfg.models.aligned}
    if any(VARIANT_TABLE[v].needs_labels for v in cfg.variants):
        models["models.labeler"] = cfg.models.labeler
    classifier = cfg.data.classifier
    if not isinstance(classifier, str) and classifier.backend == "hf":
        models["data.classifier.model"] = classifier.model
    for field, spec in models.items():
        try:
            check_model_spec(spec)
        except ModelLoadError as e:
            raise InputError(f"{field}: {e}") from None
    j = cfg.judges
    specs = {"judges.primary": j.primary, "judges.audit": j.audit,
             **{f"judges.per_set.{name}": spec for name, spec in j.per_set.items()}}
    for field, spec in specs.items():
        try:
            if spec is not None:
                validate_judge_spec(spec)
        except ValueError as e:
            raise InputError(f"{field}: {e}") from None
