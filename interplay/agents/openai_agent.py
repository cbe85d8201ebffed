"""OpenAIAgent: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, ...).

Needs the optional extra ``openai`` (``pip install 'interplay[openai]'``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from interplay.agents.base import Agent, Reply
from interplay.agents.chat import Message


class OpenAIAgent(Agent):
    """Replies from a chat-completions endpoint; the rows of a batch are requested concurrently.

    Args:
        model: the served model name.
        base_url, api_key: default to $OPENAI_BASE_URL / $OPENAI_API_KEY.
        temperature, top_p, max_new_tokens, stop, seed: sent with every request.
        max_retries: retries with exponential backoff (the client's) on connection errors, 429 and 5xx.
        timeout: seconds per request. concurrency: parallel requests.

    A row whose request fails (after retries) gets an error reply; an endpoint that cannot be
    reached at all raises ``ConnectionError`` naming it.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        stop: Sequence[str] = (),
        seed: int | None = None,
        max_retries: int = 3,
        timeout: float = 60.0,
        concurrency: int = 16,
    ) -> None:
        try:
            import openai
        except ImportError as error:
            raise ImportError("OpenAIAgent needs the openai package: pip install 'interplay[openai]'") from error
        self.openai = openai
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"  # local servers accept any key
        self.client = openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=max_retries, timeout=timeout)
        self.name = model
        self.params = {"temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens}
        if stop:
            self.params["stop"] = list(stop)
        if seed is not None:
            self.params["seed"] = seed
        self.concurrency = concurrency

    def sampling_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, **self.params}

    def _one(self, history: list[Message]) -> Reply:
        try:
            response = self.client.chat.completions.create(model=self.name, messages=history, **self.params)
            choice = response.choices[0]
            text = choice.message.content
            if not isinstance(text, str):
                return Reply("", finish_reason="error", error=f"endpoint returned no text content: {choice!r:.200}")
            return Reply(text, finish_reason="length" if choice.finish_reason == "length" else "stop")
        except self.openai.APIConnectionError:
            raise
        except Exception as error:  # e.g. a 400 for one over-long history: that row only
            return Reply("", finish_reason="error", error=f"{type(error).__name__}: {error}")

    def act(
        self, histories: list[list[Message]], expert_actions: list[str | None] | None = None
    ) -> list[Reply]:
        try:
            with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(histories)))) as pool:
                return list(pool.map(self._one, histories))
        except self.openai.APIConnectionError as error:
            raise ConnectionError(
                f"cannot reach the chat-completions endpoint {self.base_url} (model {self.name!r}): {error}. "
                "Check base_url / $OPENAI_BASE_URL and that the server is running."
            ) from error
