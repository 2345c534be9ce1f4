"""A chat client for OpenAI-compatible ``/chat/completions`` endpoints (OpenAI, vLLM, others).

Requests run on a bounded thread pool over one httpx client. 429, 5xx, timeouts and garbled
bodies are retried with exponential backoff (honouring ``Retry-After``); an item that still fails
becomes a ``ChatFailure`` (an unparsable verdict that is not cached). An endpoint that cannot be
reached at all, or that rejects the key or path, raises ``EndpointError``. The API key is read
from an environment variable and never appears in messages, ids or logs.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from ..generation import Messages
from ..io import InputError
from ..progress import progress
from .rubric import ChatFailure

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class EndpointError(InputError):
    """The endpoint is unreachable or refuses every request (bad URL, model or key)."""


def _is_local(base_url: str) -> bool:
    """True when the endpoint's host is this machine (a local vLLM or llama.cpp server)."""
    host = httpx.URL(base_url).host
    return host in ("localhost", "127.0.0.1", "::1", "0.0.0.0") or host.endswith(".localhost")


#: Tokens an OpenAI-compatible judge may answer with unless told otherwise.
MAX_NEW_TOKENS = 128


class OpenAIChat:
    """Greedy chat completions from an OpenAI-compatible server."""

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 8, timeout: float = 60.0, max_retries: int = 4,
                 backoff: float = 1.0, max_backoff: float = 30.0, max_new_tokens: int = MAX_NEW_TOKENS,
                 description: str = "judging (api)"):
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.max_concurrency = max(1, max_concurrency)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.max_new_tokens = max_new_tokens
        self.description = description
        self.identity = f"openai:{model}@{self.base_url}:mnt{max_new_tokens}"
        self._stop = threading.Event()
        if not os.environ.get(api_key_env) and not _is_local(self.base_url):
            raise EndpointError(f"endpoint {self.base_url} needs an API key: the environment variable "
                                f"{api_key_env} is not set (only endpoints on localhost may go without one)")

    def __repr__(self) -> str:
        return f"OpenAIChat(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff)
            except ValueError:
                pass
        return min(self.backoff * 2 ** attempt + random.uniform(0, self.backoff), self.max_backoff)

    def _one(self, client: httpx.Client, messages: Messages) -> str | ChatFailure:
        body = {"model": self.model, "messages": messages, "temperature": 0.0,
                "max_tokens": self.max_new_tokens}
        reason, unreachable, response = "", True, None
        for attempt in range(self.max_retries + 1):
            if self._stop.is_set():
                return ChatFailure("aborted")
            if attempt:
                time.sleep(self._delay(attempt - 1, response))
            response = None
            try:
                response = client.post(f"{self.base_url}/chat/completions", json=body)
            except httpx.TimeoutException:
                reason, unreachable = f"timed out after {self.timeout:g} s", False
                continue
            except httpx.TransportError as e:
                reason = f"{type(e).__name__}: {e}"
                continue
            unreachable = False
            status = response.status_code
            if status in (401, 403):
                raise EndpointError(f"{self.base_url} rejected the credentials (HTTP {status}); check ${self.api_key_env}")
            if status == 404:
                raise EndpointError(f"{self.base_url}/chat/completions answered HTTP 404; check --base-url and the model name {self.model!r}")
            if status == 429 or status >= 500:
                reason = f"HTTP {status}"
                continue
            if status >= 400:
                return ChatFailure(f"HTTP {status}: {response.text[:200]}")
            try:
                content = response.json()["choices"][0]["message"]["content"]
                if not isinstance(content, str):
                    raise TypeError("content is not a string")
                return content
            except (ValueError, KeyError, IndexError, TypeError) as e:
                reason = f"malformed response body ({type(e).__name__})"
        if unreachable:
            raise EndpointError(f"cannot reach {self.base_url} after {self.max_retries + 1} attempts ({reason})")
        return ChatFailure(f"gave up after {self.max_retries + 1} attempts ({reason})")

    def complete(self, conversations: list[Messages]) -> list[str | ChatFailure]:
        if not conversations:
            return []
        self._stop.clear()
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0))
        with httpx.Client(timeout=timeout, headers=self._headers()) as client, \
                ThreadPoolExecutor(self.max_concurrency) as pool, progress() as bar:
            task = bar.add_task(self.description, total=len(conversations))
            futures = [pool.submit(self._one, client, c) for c in conversations]
            results = []
            try:
                for future in futures:
                    results.append(future.result())
                    bar.advance(task)
            except BaseException:
                self._stop.set()
                raise
        return results
