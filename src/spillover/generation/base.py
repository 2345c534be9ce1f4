"""The generation backend interface and decoding settings."""

from __future__ import annotations

from typing import Protocol

from pydantic import Field

from ..config import Seed, StrictModel

Messages = list[dict[str, str]]


class Decoding(StrictModel):
    """Decoding settings; greedy unless ``temperature`` > 0."""

    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    seed: Seed = 0
    system_prompt: str | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


def as_messages(prompt: str | Messages, system_prompt: str | None = None) -> Messages:
    """Turn a user prompt (or a ready message list) into chat messages."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages


def render_chat(tokenizer, prompt: str | Messages, system_prompt: str | None = None,
                add_generation_prompt: bool = True) -> str:
    """The chat-templated text of ``as_messages(prompt, system_prompt)``, by default ending with the
    assistant prefix."""
    return tokenizer.apply_chat_template(as_messages(prompt, system_prompt), tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


class GenerationBackend(Protocol):
    """Anything that turns chat conversations into sampled responses."""

    #: Names the weights (and adapter) so cached responses are never reused across models.
    identity: str

    def render(self, messages: Messages) -> str:
        """The exact prompt text the model sees (chat template applied)."""

    def generate(self, rendered: list[str], decoding: Decoding) -> list[list[str]]:
        """Return ``decoding.n`` responses per rendered prompt, in input order."""
