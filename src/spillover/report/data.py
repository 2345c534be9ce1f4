"""Read a study directory's result files into plain rows, checking every field on the way."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domains import DOMAINS, MMLU, XSTEST
from ..io import InputError, read_json, read_jsonl
from ..variants import ALIGNED, VARIANT_TABLE

#: Model variants in table order: the aligned model, then ``spillover.variants.VARIANT_TABLE``.
VARIANTS = (ALIGNED.name, *VARIANT_TABLE)
VARIANT_LABELS = {ALIGNED.name: ALIGNED.label, **{v.name: v.label for v in VARIANT_TABLE.values()}}
#: Evaluation sets: the seven domains, over-refusal and utility.
SETS = tuple(d.value for d in DOMAINS) + (XSTEST, MMLU)
DOMAIN_VALUES = tuple(d.value for d in DOMAINS)


def _opt_int(v: str) -> int | None:
    return None if v.strip() == "" else int(v)


def _float(v: str) -> float:
    return float(v)


def _opt_float(v: str) -> float | None:
    return None if v.strip() == "" else float(v)


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no", ""):
        return False
    raise ValueError(f"expected true/false, got {v!r}")


def _domain(v: str) -> str:
    if v not in DOMAIN_VALUES:
        raise ValueError(f"unknown domain {v!r} (valid: {', '.join(DOMAIN_VALUES)})")
    return v


def _opt_domain(v: str) -> str:
    return "" if v.strip() == "" else _domain(v.strip())


def _set(v: str) -> str:
    if v not in SETS:
        raise ValueError(f"unknown set {v!r} (valid: {', '.join(SETS)})")
    return v


def _variant(v: str) -> str:
    if v not in VARIANTS:
        raise ValueError(f"unknown variant {v!r} (valid: {', '.join(VARIANTS)})")
    return v


SCORES = {
    "variant": _variant, "target": _opt_domain, "seed": _opt_int, "set": _set, "judge": str,
    "n": int, "k": int, "rate": _float, "ci_low": _float, "ci_high": _float,
    "delta": _opt_float, "p_mcnemar": _opt_float,
}
#: scores.csv's paired counts (``spillover.spill``); results written before them lack the columns.
SCORES_PAIRED = {"n_paired": _opt_int, "refusals_lost": _opt_int, "refusals_gained": _opt_int}
KL = {"variant": _variant, "target": _domain, "seed": int, "step": int, "domain": _domain, "kl": _float}
TRAIN_LOG = {"variant": _variant, "target": _domain, "seed": int, "step": int, "loss": _float}
CHECKPOINTS = {
    "variant": _variant, "target": _domain, "seed": int, "step": int,
    "mmlu": _opt_float, "mmlu_se": _opt_float, "target_refusal": _opt_float, "target_refusal_se": _opt_float,
    "selected": _bool,
}


def read_csv(path: Path, columns: dict[str, Callable[[str], Any]],
             extra: Callable[[str], Any] | None = None,
             optional: dict[str, Callable[[str], Any]] | None = None) -> list[dict]:
    """Parse a CSV whose header holds ``columns``; errors name the file, row and field.

    With ``extra``, every other column of the header is read too, parsed by ``extra``.
    ``optional`` columns are parsed when the header has them, else None in every row.
    """
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
        parsers = {**columns, **{c: extra for c in header if c not in columns}} if extra else dict(columns)
        absent = [c for c in optional or {} if c not in header]
        parsers.update({c: parse for c, parse in (optional or {}).items() if c in header})
        rows = []
        for lineno, raw in enumerate(reader, 2):
            row = {}
            for name, parse in parsers.items():
                value = raw[name]
                try:
                    row[name] = parse(value if value is not None else "")
                except ValueError as e:
                    raise InputError(f"{path}, row {lineno}, field {name!r}: {e}") from None
            rows.append({**row, **dict.fromkeys(absent)})
    return rows


@dataclass
class StudyResults:
    """Everything the report reads; optional parts are None when their file is absent."""

    root: Path
    manifest: dict
    scores: list[dict]
    kl: list[dict] | None = None
    train_log: list[dict] | None = None
    checkpoints: list[dict] | None = None
    agreement: list[dict] | None = None
    calibration: list[dict] | None = None
    examples: list[dict] | None = None
    concepts: dict | None = None
    correlation: dict | None = None
    prediction: dict | None = None

    @property
    def name(self) -> str:
        return str(self.manifest.get("study") or self.root.name)

    @property
    def primary_judges(self) -> list[str]:
        """The manifest's primary judge id(s): one id, or a list when sets have different judges."""
        primary = (self.manifest.get("judges") or {}).get("primary") or []
        return [primary] if isinstance(primary, str) else [str(j) for j in primary]

    @property
    def other_judges(self) -> list[str]:
        judges = self.manifest.get("judges") or {}
        others = [*(judges.get("others") or []), *([judges["audit"]] if judges.get("audit") else [])]
        return [str(j) for j in others]

    @property
    def ema_threshold(self) -> float:
        """The EMA threshold in points: ``ema_threshold`` anywhere in the config, else 15."""
        found = _find_key(self.manifest.get("config") or {}, "ema_threshold")
        return 15.0 if found is None else float(found)


def _find_key(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for value in obj.values():
            if (found := _find_key(value, key)) is not None:
                return found
    return None


def _require(path: Path, obj: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a JSON object")
    for key in keys:
        if key not in obj:
            raise InputError(f"{path}: missing field {key!r}")
    return obj


def _read_summary(path: Path) -> dict:
    s = _require(path, read_json(path), ("model", "method", "layers", "domains", "vector_similarity", "histograms"))
    for field, names in (("domains", s["domains"]), ("histograms", list(s["histograms"]))):
        for name in names:
            if name not in DOMAIN_VALUES:
                raise InputError(f"{path}, field {field!r}: unknown domain {name!r}")
    k, layers = len(s["domains"]), len(s["layers"])
    sims = s["vector_similarity"]
    if len(sims) != layers or any(len(m) != k or any(len(r) != k for r in m) for m in sims):
        raise InputError(f"{path}, field 'vector_similarity': expected shape [{layers}][{k}][{k}]")
    return s


def _read_correlation(path: Path) -> dict:
    c = _require(path, read_json(path), ("layers", "spearman"))
    if len(c["spearman"]) != len(c["layers"]):
        raise InputError(f"{path}, field 'spearman': expected one value per layer ({len(c['layers'])})")
    return c


def _read_prediction(path: Path) -> dict:
    p = read_json(path)
    if not isinstance(p, dict):
        raise InputError(f"{path}: expected a JSON object {{target: [[domain, score], ...]}}")
    for target, ranking in p.items():
        if target not in DOMAIN_VALUES:
            raise InputError(f"{path}: unknown target domain {target!r}")
        for i, item in enumerate(ranking):
            if not (isinstance(item, list) and len(item) == 2 and item[0] in DOMAIN_VALUES
                    and isinstance(item[1], (int, float))):
                raise InputError(f"{path}, field {target!r}, item {i}: expected [domain, score], got {item!r}")
    return p


def _read_agreement(path: Path) -> list[dict]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise InputError(f"{path}: expected a JSON list")
    for i, row in enumerate(rows):
        _require(path.with_name(f"{path.name}[{i}]"), row, ("judge_a", "judge_b", "set", "n", "accuracy"))
    return rows


def _read_calibration(path: Path) -> list[dict]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise InputError(f"{path}: expected a JSON list")
    for i, row in enumerate(rows):
        _require(path.with_name(f"{path.name}[{i}]"), row, ("judge", "set", "mode", "n", "kappa", "accuracy"))
    return rows


def _optional(path: Path, read: Callable[[Path], Any]) -> Any:
    return read(path) if path.exists() else None


def load_study(root: Path) -> StudyResults:
    """Read ``root``'s manifest and results; only manifest.json and results/scores.csv are required."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: study directory not found")
    manifest = read_json(root / "manifest.json")
    if not isinstance(manifest, dict):
        raise InputError(f"{root / 'manifest.json'}: expected a JSON object")
    scores_path = root / "results" / "scores.csv"
    if not scores_path.exists():
        raise InputError(f"{scores_path}: file not found (run the study's evaluate stage first)")
    res, con = root / "results", root / "concepts"
    study = StudyResults(
        root=root,
        manifest=manifest,
        scores=read_csv(scores_path, SCORES, optional=SCORES_PAIRED),
        kl=_optional(res / "kl.csv", lambda p: read_csv(p, KL)),
        train_log=_optional(res / "train_log.csv", lambda p: read_csv(p, TRAIN_LOG, _opt_float)),
        checkpoints=_optional(res / "checkpoints.csv", lambda p: read_csv(p, CHECKPOINTS)),
        agreement=_optional(res / "agreement.json", _read_agreement),
        calibration=_optional(res / "calibration.json", _read_calibration),
        examples=_optional(
            res / "examples.jsonl",
            lambda p: read_jsonl(p, required=("variant", "target", "set", "prompt", "response", "label", "judge")),
        ),
        concepts=_optional(con / "summary.json", _read_summary),
        correlation=_optional(con / "correlation.json", _read_correlation),
        prediction=_optional(con / "prediction.json", _read_prediction),
    )
    if not study.scores:
        raise InputError(f"{scores_path}: no rows")
    return study
