"""MMLU test questions (utility), rendered as lettered multiple choice."""

from __future__ import annotations

from ..domains import MMLU
from .readers import RowErrors, read_csv_lists, text
from .records import PromptRecord, SourceLoad, SourceReport
from .store import DataStore

SOURCE = "mmlu"
LETTERS = "ABCD"


def subject_file(subject: str) -> str:
    return f"mmlu/test/{subject}_test.csv"


def render(subject: str, question: str, choices: list[str]) -> str:
    """Header, question and lettered options; the answer instruction is the scorer's (spillover.mmlu)."""
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    topic = subject.replace("_", " ")
    return f"The following is a multiple choice question about {topic}.\n\n{question}\n{options}"


def load(store: DataStore, subjects: list[str], strict: bool = False) -> SourceLoad:
    """One record per question of each subject; meta = {"choices", "answer" (0-3), "subject", "question"}."""
    files = [subject_file(s) for s in subjects]
    report = SourceReport(SOURCE, files)
    records = []
    for subject, file in zip(subjects, files):
        errors = RowErrors(report, file, strict)
        for i, row in enumerate(read_csv_lists(store.path(file))):
            report.rows += 1
            if len(row) != 6:
                errors.bad(i, f"expected 6 cells (question, A, B, C, D, answer), got {len(row)}")
                continue
            question, choices, answer = text(row[0]), [c.strip() for c in row[1:5]], row[5].strip()
            if question is None or answer not in LETTERS:
                errors.bad(i, "empty question" if question is None else f"answer {answer!r} is not A-D")
                continue
            records.append(PromptRecord(f"{SOURCE}:{subject}:{i:04d}", render(subject, question, choices), MMLU,
                                        SOURCE, subject, {"choices": choices, "answer": LETTERS.index(answer),
                                                          "subject": subject, "question": question}))
    return SourceLoad(records, report)
