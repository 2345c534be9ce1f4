"""Human-labelled responses for calibrating judges: the XSTest v2 completions, our own set, any JSONL.

A ``LabelledItem`` holds the gold label (True = the safe outcome the study counts: a refusal, or
for the toxicity rubric a response that is not toxic), the group it came from (the answering
model) and optional reference labellings of the same item (other classifiers, each annotator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..data.readers import read_csv_dicts
from ..data.store import DataStore
from ..io import InputError, read_jsonl
from .base import BIASED, COMPLIANCE, NOT_BIASED, REFUSAL, JudgeItem, item_from_row

XSTEST_MODELS = ("gpt4", "llama2new", "llama2orig", "mistralguard")
XSTEST_SET = "xstest-v2"
OWN_SET = "spillover-own-v1"
#: Gold labels accepted in a JSONL file, and whether each is the safe outcome.
GOLD_LABELS = {REFUSAL: True, COMPLIANCE: False, NOT_BIASED: True, BIASED: False}


@dataclass(frozen=True)
class LabelledItem:
    item: JudgeItem
    gold: bool
    group: str = "all"
    references: dict[str, bool] = field(default_factory=dict)


def _xstest_refusal(label: str, where: str) -> bool:
    label = (label or "").strip()
    if label not in ("1_full_compliance", "2_full_refusal", "3_partial_refusal"):
        raise InputError(f"{where}: label {label!r} is not 1_full_compliance/2_full_refusal/3_partial_refusal")
    return label != "1_full_compliance"


def xstest_completions(store: DataStore) -> list[LabelledItem]:
    """The 4 x 450 XSTest v2 responses; gold = full or partial refusal in ``final_label``.

    References: the XSTest authors' GPT-4 classifier and string matcher, and each annotator.
    The domain of an item is its XSTest prompt type; its group is the answering model.
    """
    items = []
    for model in XSTEST_MODELS:
        files = {kind: f"xstest_completions/xstest_v2_completions_{model}_{kind}.csv" for kind in ("gpteval", "streval")}
        columns = ("id", "type", "prompt", "completion", "annotation_1", "annotation_2", "final_label")
        gpt = read_csv_dicts(store.path(files["gpteval"]), files["gpteval"], columns + ("gpt4_label",))
        stm = read_csv_dicts(store.path(files["streval"]), files["streval"], columns + ("strmatch_label",))
        if len(gpt) != len(stm):
            raise InputError(f"{files['gpteval']} and {files['streval']} differ in length ({len(gpt)} vs {len(stm)})")
        for i, (g, s) in enumerate(zip(gpt, stm), 2):
            where = f"{files['gpteval']}, line {i}"
            if (g["id"], g["completion"]) != (s["id"], s["completion"]):
                raise InputError(f"{where}: row differs from {files['streval']} (id {g['id']} vs {s['id']})")
            refs = {"xstest-gpt4": _xstest_refusal(g["gpt4_label"], where),
                    "xstest-strmatch": _xstest_refusal(s["strmatch_label"], where),
                    "annotator_1": _xstest_refusal(g["annotation_1"], where),
                    "annotator_2": _xstest_refusal(g["annotation_2"], where)}
            items.append(LabelledItem(JudgeItem(g["prompt"], g["completion"], g["type"]),
                                      _xstest_refusal(g["final_label"], where), model, refs))
    return items


def read_labelled(path: Path) -> list[LabelledItem]:
    """JSONL rows with ``prompt``, ``response`` and ``gold`` (refusal / compliance, or
    not_biased_or_toxic / biased_or_toxic); optional ``domain`` (or ``set``), ``group``, ``meta`` and
    ``references`` ({name: label}). Errors name the file, row and field."""
    rows = read_jsonl(path)
    if not rows:
        raise InputError(f"{path}: no rows (the file is empty)")
    out = []
    for i, row in enumerate(rows, 1):
        where = f"{path}, row {i}"
        item = item_from_row(row, where)
        if row.get("gold") not in GOLD_LABELS:
            raise InputError(f"{where}: field 'gold' must be one of {', '.join(GOLD_LABELS)} (got {row.get('gold')!r})")
        refs = row.get("references") or {}
        if not isinstance(refs, dict) or any(v not in GOLD_LABELS for v in refs.values()):
            raise InputError(f"{where}: field 'references' must map names to labels ({', '.join(GOLD_LABELS)})")
        out.append(LabelledItem(item, GOLD_LABELS[row["gold"]], str(row.get("group", "all")),
                                {k: GOLD_LABELS[v] for k, v in refs.items()}))
    return out


def own_labels_path() -> Path:
    """The hand-labelled responses of this project's models (shipped in the package)."""
    return Path(str(resources.files("spillover.judges") / "data" / f"{OWN_SET}.jsonl"))


def load_set(name: str, store: DataStore) -> list[LabelledItem]:
    """A built-in set (``xstest-v2``, ``spillover-own-v1``) or a JSONL path."""
    if name == XSTEST_SET:
        return xstest_completions(store)
    if name == OWN_SET:
        return read_labelled(own_labels_path())
    path = Path(name)
    if not path.is_file():
        raise InputError(f"labelled set {name!r}: not a built-in set ({XSTEST_SET}, {OWN_SET}) nor a file")
    return read_labelled(path)
