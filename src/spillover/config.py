"""Pydantic config base and a YAML loader whose errors name the file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .io import InputError

T = TypeVar("T", bound="StrictModel")

#: A random seed: what Python, numpy and torch all accept.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class StrictModel(BaseModel):
    """A config section: unknown fields are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  field {loc}: {e['msg']}")
    return "\n".join(lines)


def load_yaml_config(cls: type[T], path: str | Path, overrides: dict | None = None) -> T:
    """Load and validate ``cls`` from a YAML file, applying dotted-key ``overrides``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    for key, value in (overrides or {}).items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise InputError(format_validation_error(e, str(path))) from None
