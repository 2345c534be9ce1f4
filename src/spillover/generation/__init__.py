"""Batched chat generation behind a backend interface, with a response cache."""

from .base import Decoding, GenerationBackend, Messages, as_messages, render_chat
from .engine import generate_responses

__all__ = ["Decoding", "GenerationBackend", "Messages", "as_messages", "generate_responses", "render_chat"]
