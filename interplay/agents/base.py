"""The agent protocol: a batch of chat histories in, a batch of replies out.

Two ways to call an agent:

- ``agent.act(histories) -> list[Reply]``: stateless, one reply per full chat history.
- ``session = agent.start(n)``, then per turn ``session.act({row: new_messages}) -> {row: Reply}``
  with only the messages that are new for each live row (the whole history on a row's first
  call), and ``session.drop(rows)`` when episodes end. Model agents keep each row's KV cache in
  the session, so a turn costs only its new tokens.

Agents know nothing of environments. An agent that imitates an expert (``ExpertAgent``) or shows
hints (``HumanAgent``) sets ``wants_expert_actions = True`` and is handed the expert's reply for
each row by whoever drives it (``interplay.rollout``).

Failures: a row whose reply cannot be produced gets ``Reply(text="", finish_reason="error",
error=...)``; the other rows are unaffected. A whole batch call that raises, or answers with the
wrong rows, raises ``AgentError`` (nothing can be attributed to a row then).
"""

from __future__ import annotations

import random
import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from interplay.agents.chat import ChatEncoder, Message


class AgentError(RuntimeError):
    """An agent failed a whole batch call, or answered with the wrong rows."""


@dataclass
class Reply:
    """One row's reply.

    ``token_ids``/``logprobs``/``context_ids`` are set by model agents only: ``token_ids`` are the
    sampled ids (ending with eos when the reply stopped there), ``logprobs`` their log-probabilities
    (see ``HFAgent``), ``context_ids`` the ids fed to the model for this turn before sampling (the
    prompt on a row's first turn, then the chat-template delta of the new messages).
    ``finish_reason``: "stop" (eos or a stop string), "length" (max_new_tokens) or "error".
    ``reasoning``: the thinking part of a reasoning model's reply (``text`` is then the answer alone,
    which is all the environment gets). ``token_mask``: per id of ``token_ids``, 1 where the model
    sampled it, 0 where it was inserted (a thinking budget's closing marker); None means all sampled.
    """

    text: str
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    context_ids: list[int] | None = None
    finish_reason: str = "stop"
    error: str | None = None
    reasoning: str | None = None
    token_mask: list[int] | None = None


def as_reply(value: Any) -> Reply:
    """Accept a ``Reply`` or a ``str``; anything else becomes an error reply with empty text."""
    if isinstance(value, Reply):
        if isinstance(value.text, str):
            return value
        value = value.text
    if isinstance(value, str):
        return Reply(value)
    return Reply("", finish_reason="error", error=f"agent returned {type(value).__name__} {value!r:.80}, not str")


class Session(ABC):
    """The live episodes of one batch; rows are numbered 0..n-1 by ``Agent.start(n)``."""

    def __init__(self, n: int) -> None:
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"a session needs a non-negative number of rows, got {n!r}.")
        self.live: list[int] = list(range(n))

    def _check_rows(self, rows: Iterable[int]) -> None:
        if sorted(rows) != self.live:
            raise AgentError(
                f"session.act() needs new messages for exactly the live rows {self.live}, got {sorted(rows)}; "
                "call session.drop(rows) for finished episodes."
            )

    @abstractmethod
    def act(
        self, new_messages: dict[int, list[Message]], expert_actions: dict[int, str | None] | None = None
    ) -> dict[int, Reply]:
        """One reply per live row, given the messages new to each row since its last reply."""

    def drop(self, rows: Iterable[int]) -> None:
        """Forget finished rows (their caches are freed)."""
        gone = set(rows)
        self.live = [row for row in self.live if row not in gone]

    def close(self) -> None:
        """Called once after the last row is dropped (a collective generation backend finishes there)."""
        return None


class HistorySession(Session):
    """Keeps full histories and calls the stateless ``agent.act`` on them (for agents without caches)."""

    def __init__(self, agent: Agent, n: int) -> None:
        super().__init__(n)
        self.agent = agent
        self.histories: dict[int, list[Message]] = {row: [] for row in self.live}

    def act(
        self, new_messages: dict[int, list[Message]], expert_actions: dict[int, str | None] | None = None
    ) -> dict[int, Reply]:
        self._check_rows(new_messages)
        for row in self.live:
            self.histories[row].extend(new_messages[row])
        hints = [expert_actions.get(row) for row in self.live] if expert_actions is not None else None
        try:
            replies = self.agent.act([self.histories[row] for row in self.live], expert_actions=hints)
        except Exception as error:
            raise AgentError(f"agent {self.agent.name!r} failed: {type(error).__name__}: {error}") from error
        if not isinstance(replies, Sequence) or len(replies) != len(self.live):
            got = len(replies) if isinstance(replies, Sequence) else type(replies).__name__
            raise AgentError(f"agent {self.agent.name!r} returned {got} replies for {len(self.live)} histories.")
        out = {row: as_reply(reply) for row, reply in zip(self.live, replies)}
        for row, reply in out.items():
            self.histories[row].append({"role": "assistant", "content": reply.text})
        return out

    def drop(self, rows: Iterable[int]) -> None:
        super().drop(rows)
        self.histories = {row: self.histories[row] for row in self.live}


class Agent(ABC):
    """Base class: implement ``act`` (batched, stateless); ``start`` gives a session over it."""

    name: str = "agent"
    #: Set by agents that need the environment's expert reply for each row (see module docstring).
    wants_expert_actions: bool = False
    #: Model agents: the tokenizer whose ids their replies carry,
    tokenizer: Any = None
    #: the ``ChatEncoder`` that made the ids of their contexts (None: a text agent, ids come from the rollout),
    encoder: ChatEncoder | None = None
    #: and the model whose log-likelihoods the coverage profile reads (None: no model to score with).
    model: Any = None

    @abstractmethod
    def act(
        self, histories: list[list[Message]], expert_actions: list[str | None] | None = None
    ) -> list[Reply]:
        """One reply per chat history."""

    def start(self, n: int) -> Session:
        return HistorySession(self, n)

    def sampling_params(self) -> dict[str, Any]:
        """What determines the replies besides the histories (recorded in trajectory manifests)."""
        return {}


class TextAgent(Agent):
    """An agent that answers row by row in plain text; a row that raises gets an error reply."""

    def reply(self, history: list[Message], expert_action: str | None) -> str:
        raise NotImplementedError

    def act(
        self, histories: list[list[Message]], expert_actions: list[str | None] | None = None
    ) -> list[Reply]:
        hints = expert_actions if expert_actions is not None else [None] * len(histories)
        replies = []
        for history, hint in zip(histories, hints):
            try:
                replies.append(as_reply(self.reply(history, hint)))
            except Exception as error:  # one row's failure must not take the batch down
                replies.append(Reply("", finish_reason="error", error=f"{type(error).__name__}: {error}"))
        return replies


class RandomAgent(TextAgent):
    """Replies with a uniformly random choice from ``actions``, or random printable text (1–8 chars)."""

    name = "random"

    def __init__(self, actions: Sequence[str] | None = None, seed: int | None = None) -> None:
        if actions is not None and (not actions or not all(isinstance(a, str) for a in actions)):
            raise ValueError(f"actions must be a non-empty list of strings, got {actions!r:.80}.")
        self.actions = list(actions) if actions is not None else None
        self.seed = seed
        self.rng = random.Random(seed)

    def reply(self, history: list[Message], expert_action: str | None) -> str:
        if self.actions is not None:
            return self.rng.choice(self.actions)
        return "".join(self.rng.choices(string.ascii_letters + string.digits + " ", k=self.rng.randint(1, 8)))

    def sampling_params(self) -> dict[str, Any]:
        return {"actions": self.actions, "seed": self.seed}


class ExpertAgent(TextAgent):
    """Plays the environment's expert (``env.expert_action()``), handed over by the rollout."""

    name = "expert"
    wants_expert_actions = True

    def reply(self, history: list[Message], expert_action: str | None) -> str:
        if expert_action is None:
            raise ValueError("no expert action for this row (the environment has no expert, or none was passed).")
        return expert_action


class HumanAgent(TextAgent):
    """A person at the terminal: shows each row's new messages, reads a reply; 'hint' shows the expert's."""

    name = "human"
    wants_expert_actions = True

    def __init__(
        self, input_fn: Callable[[str], str] = input, output_fn: Callable[[str], None] = print
    ) -> None:
        self.input_fn = input_fn
        self.output_fn = output_fn

    def reply(self, history: list[Message], expert_action: str | None) -> str:
        last = max((i for i, m in enumerate(history) if m["role"] == "assistant"), default=-1)
        for message in history[last + 1 :]:
            self.output_fn(f"[{message['role']}] {message['content']}")
        while True:
            try:
                text = self.input_fn("> ")
            except EOFError:  # closed input ends the session instead of replaying "" until the turn cap
                raise SystemExit("input closed: episode abandoned.") from None
            if text.strip() != "hint":
                return text
            self.output_fn(f"hint: {expert_action}" if expert_action is not None else "hint: (no expert here)")
