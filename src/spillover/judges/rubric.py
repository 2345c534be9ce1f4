"""The rubric LLM judge: a prompt template filled per item, a chat model, a JSON verdict."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

from ..generation import Messages
from ..io import InputError, stable_hash
from .base import RUBRIC_LABELS, UNPARSABLE, JudgeItem, Verdict
from .parsing import parse_judgment


@dataclass(frozen=True)
class ChatFailure:
    """A conversation the chat client could not get any answer for (after its own retries)."""

    reason: str


class ChatClient(Protocol):
    """Answers chat conversations; ``identity`` names the model (and endpoint) for judge ids."""

    identity: str

    def complete(self, conversations: list[Messages]) -> list[str | ChatFailure]:
        """One answer (or failure) per conversation, in input order."""


#: Per rubric: the JSON key the template asks for, and names a model might use for it.
RUBRIC_KEYS: dict[str, tuple[str, ...]] = {
    "refusal": ("refusal", "is_refusal", "is-refusal", "refused"),
    "bias_toxicity": ("biased_or_toxic", "is_biased_or_toxic", "biased_toxic", "biased", "toxic"),
}
TEMPLATE_FILES = {"refusal": "refusal.txt", "bias_toxicity": "bias_toxicity.txt"}
_FIELD = re.compile(r"\{(prompt|response|domain)\}")


def default_template(rubric: str) -> str:
    """The packaged template text for ``rubric`` ('refusal' or 'bias_toxicity')."""
    return resources.files(__package__).joinpath("templates", TEMPLATE_FILES[rubric]).read_text(encoding="utf-8")


def load_template(path: str | Path) -> str:
    """Read a user template; it must contain the ``{prompt}`` and ``{response}`` fields."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: template file not found")
    text = path.read_text(encoding="utf-8")
    missing = [f for f in ("{prompt}", "{response}") if f not in text]
    if missing:
        raise InputError(f"{path}: template lacks the field(s) {', '.join(missing)}")
    return text


def fill_template(template: str, item: JudgeItem, max_response_chars: int) -> str:
    """Substitute {prompt}, {response} and {domain} in one pass (braces elsewhere stay as they are)."""
    response = item.response
    if len(response) > max_response_chars:
        response = response[:max_response_chars] + " [...truncated]"
    values = {"prompt": item.prompt, "response": response, "domain": item.domain or "unspecified"}
    return _FIELD.sub(lambda m: values[m.group(1)], template)


class RubricJudge:
    """Fill the rubric template per item, ask the chat model, parse its JSON; retry once if malformed."""

    def __init__(self, rubric: str, chat: ChatClient, template: str | None = None,
                 max_response_chars: int = 3000):
        if rubric not in RUBRIC_KEYS:
            raise ValueError(f"unknown rubric {rubric!r}; use one of {sorted(RUBRIC_KEYS)}")
        self.rubric = rubric
        self.chat = chat
        self.template = template if template is not None else default_template(rubric)
        self.max_response_chars = max_response_chars
        name = "rubric" if rubric == "refusal" else "bias-rubric"
        self.id = f"{name}:{chat.identity}:tpl-{stable_hash([self.template, max_response_chars])[:10]}"

    def _reminder(self) -> str:
        key = RUBRIC_KEYS[self.rubric][0]
        return (f'That was not the required format. Reply with only one JSON object, exactly like '
                f'{{"{key}": true, "explanation": "..."}} or {{"{key}": false, "explanation": "..."}}.')

    def _verdict(self, answer: str | ChatFailure) -> Verdict | None:
        if isinstance(answer, ChatFailure):
            return Verdict(UNPARSABLE, f"no answer: {answer.reason}", self.id, None)
        parsed = parse_judgment(answer, RUBRIC_KEYS[self.rubric])
        if parsed is None:
            return None
        flag, explanation = parsed
        yes, no = RUBRIC_LABELS[self.rubric]
        return Verdict(yes if flag else no, explanation, self.id, answer)

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        convs = [[{"role": "user", "content": fill_template(self.template, it, self.max_response_chars)}]
                 for it in items]
        answers = self.chat.complete(convs)
        verdicts = [self._verdict(a) for a in answers]
        retry = [i for i, v in enumerate(verdicts) if v is None]
        if retry:
            follow_up = [convs[i] + [{"role": "assistant", "content": answers[i]},
                                     {"role": "user", "content": self._reminder()}] for i in retry]
            for i, again in zip(retry, self.chat.complete(follow_up)):
                verdicts[i] = self._verdict(again) or Verdict(
                    UNPARSABLE, "malformed judge output, also after one retry", self.id, again)
        return verdicts
