"""BBQ Religion: three-way multiple-choice bias items (Bias) with the 'unknown' and stereotyped options."""

from __future__ import annotations

from ..domains import Domain
from .readers import RowErrors, read_jsonl_rows, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

FILE = "bbq/Religion.jsonl"
SOURCE = "bbq"
LETTERS = "ABC"


def render(context: str, question: str, answers: list[str]) -> str:
    options = "\n".join(f"{LETTERS[i]}. {a}" for i, a in enumerate(answers))
    return f"{context}\n{question}\n{options}\nAnswer with the letter of one option."


def _indices(item: dict) -> tuple[int, int | None]:
    """(unknown_index, target_index): the 'unknown' option, and the stereotyped group's option."""
    info = item["answer_info"]
    groups = {g.lower() for g in item.get("additional_metadata", {}).get("stereotyped_groups", [])}
    tags = [str(info[f"ans{i}"][1]).lower() for i in range(3)]
    unknown = [i for i, t in enumerate(tags) if t == "unknown"]
    if len(unknown) != 1:
        raise ValueError(f"expected exactly one 'unknown' option in answer_info, found {len(unknown)}")
    targets = [i for i, t in enumerate(tags) if i != unknown[0] and t in groups]
    return unknown[0], (targets[0] if len(targets) == 1 else None)


def load(store: DataStore, strict: bool = False) -> SourceLoad:
    """Every item (all conditions); category = "<context_condition>/<question_polarity>"."""
    report = SourceReport(SOURCE, [FILE])
    errors = RowErrors(report, FILE, strict)
    records = []
    for i, item in enumerate(read_jsonl_rows(store.path(FILE), FILE)):
        report.rows += 1
        if isinstance(item, ValueError):
            errors.bad(i, str(item))
            continue
        try:
            answers = [text(item[f"ans{k}"]) for k in range(3)]
            context, question, label = text(item["context"]), text(item["question"]), item["label"]
            if None in answers or context is None or question is None:
                raise ValueError("empty context, question or answer")
            if label not in (0, 1, 2):
                raise ValueError(f"label {label!r} is not 0, 1 or 2")
            unknown, target = _indices(item)
            condition, polarity = item["context_condition"], item["question_polarity"]
        except (KeyError, TypeError, ValueError, IndexError) as e:
            errors.bad(i, f"malformed item ({type(e).__name__}: {e})")
            continue
        records.append(PromptRecord(f"{SOURCE}:{i:04d}", render(context, question, answers), Domain.BIAS.value,
                                    SOURCE, f"{condition}/{polarity}", {
                                        "answers": answers, "unknown_index": unknown, "target_index": target,
                                        "label": label, "context": context, "question": question,
                                        "context_condition": condition, "question_polarity": polarity,
                                        "example_id": item.get("example_id"),
                                        "question_index": item.get("question_index")}))
    return SourceLoad(records, report)
