"""A chat client over a local model through the generation engine (greedy, short outputs)."""

from __future__ import annotations

from ..generation import Decoding, Messages, generate_responses
from .rubric import ChatFailure

#: Tokens a local model judge may answer with unless told otherwise.
MAX_NEW_TOKENS = 64


class LocalChat:
    """Answer judge conversations with a local chat model, loaded on first use.

    ``backend`` may be given directly (any generation backend); otherwise the model ``spec`` is
    loaded through ``generation.loading.load_backend`` only when an uncached item needs it.
    """

    def __init__(self, spec: str | None = None, backend=None, max_new_tokens: int = MAX_NEW_TOKENS,
                 batch_size: int = 4, device: str = "auto", dtype: str = "auto"):
        if backend is None and spec is None:
            raise ValueError("LocalChat needs a model spec or a backend")
        self.spec, self._backend = spec, backend
        self.device, self.dtype = device, dtype
        self.batch_size = batch_size
        self.decoding = Decoding(max_new_tokens=max_new_tokens)
        if backend is not None:
            self.identity = f"local:{backend.identity}:mnt{max_new_tokens}"
        else:
            from ..models import model_identity

            self.identity = f"local:{model_identity(spec)}:mnt{max_new_tokens}"

    @property
    def backend(self):
        if self._backend is None:
            from ..generation.loading import load_backend

            self._backend = load_backend("hf", self.spec, device=self.device, dtype=self.dtype,
                                         batch_size=self.batch_size)
        return self._backend

    def complete(self, conversations: list[Messages]) -> list[str | ChatFailure]:
        outs = generate_responses(self.backend, conversations, self.decoding, cache=None,
                                  batch_size=self.batch_size, description="judging")
        return [o[0] for o in outs]
