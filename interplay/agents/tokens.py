"""The multi-turn bookkeeping of model agents, whatever samples their tokens.

A model agent's session turns each live row's new messages into context ids (the prompt on the row's
first turn, then the close of its last reply and the delta of the new messages, see
``interplay.agents.chat``), asks its backend for one reply per live row, and turns the sampled ids into
``Reply`` records (the answer, the thinking part, the ids and log-probs). That is written once, here;
backends only sample:

- ``HFSession`` (``interplay.agents.hf``): transformers, one KV cache for the batch, kept across turns;
- ``GeneratorSession``: any ``TokenGenerator`` (token ids in, sampled ids and log-probs out), e.g. vLLM
  through TRL (``interplay.agents.vllm``), which gets each row's whole sequence every turn (vLLM's
  prefix cache makes re-sending the history cheap).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import torch

from interplay.agents.base import Reply, Session
from interplay.agents.chat import Message


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int = 0, *, left: bool = False,
              marks: Sequence[Sequence[int]] | None = None, device: Any = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Token rows as one batch: ids padded with ``pad_id`` on the right (or ``left``), the attention mask,
    and ``marks`` (per-id 0/1 lists as long as their rows, e.g. agent masks) padded alike with 0."""
    width = max((len(row) for row in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    marked = torch.zeros((len(rows), width), dtype=torch.long) if marks is not None else None
    for i, row in enumerate(rows):
        if not row:
            continue
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(list(row))
        attention[i, span] = 1
        if marked is not None:
            marked[i, span] = torch.tensor(list(marks[i]))
    return ids.to(device), attention.to(device), marked.to(device) if marked is not None else None


class TokenGenerator(Protocol):
    """The narrow interface of a generation backend: one reply per prompt, ids in, ids out."""

    def generate(self, prompts: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        """Sample one completion per token-id prompt: (completion ids, their log-probs), ending with a
        stop id when the completion stopped there."""

    def close(self) -> None:
        """Called once when a rollout's episodes are all done (collective backends finish their protocol)."""


class _Row:
    """What a session remembers about one episode."""

    __slots__ = ("started", "system", "pending_close")

    def __init__(self) -> None:
        self.started = False
        self.system: str | None = None  # the episode's system prompt (some templates place it per turn)
        self.pending_close: list[int] = []  # template ids that close the last reply


class SampledReply:
    """One row's reply as it is sampled: ids, log-probs, which ids the model chose, thinking state."""

    __slots__ = ("ids", "logprobs", "mask", "finish", "thinking", "thought")

    def __init__(self, thinking: bool = False) -> None:
        self.ids: list[int] = []
        self.logprobs: list[float] = []
        self.mask: list[int] = []  # 1: sampled, 0: inserted (the thinking budget's closing marker)
        self.finish = ""  # "stop" or "length" once done
        self.thinking, self.thought = thinking, 0  # inside a thinking part; thinking tokens so far

    def add(self, ids: list[int], logprobs: list[float], sampled: bool) -> None:
        self.ids += ids
        self.logprobs += logprobs
        self.mask += [int(sampled)] * len(ids)


class TokenSession(Session):
    """A model agent's episodes: ``agent`` has ``encoder`` (a ``ChatEncoder``) and ``tokenizer``."""

    def __init__(self, agent: Any, n: int) -> None:
        super().__init__(n)
        self.agent = agent
        self.rows = {row: _Row() for row in self.live}

    def _context_ids(self, row: _Row, new: list[Message]) -> list[int]:
        encoder = self.agent.encoder
        if not row.started:
            row.started = True
            row.system = new[0]["content"] if new and new[0]["role"] == "system" else None
            return encoder.prompt(new)
        return row.pending_close + encoder.delta(new, row.system)

    @abstractmethod
    def _sample(self, contexts: list[list[int]]) -> list[SampledReply]:
        """One reply per live row (in ``self.live`` order), each row having been fed its context."""

    def act(
        self, new_messages: dict[int, list[Message]], expert_actions: dict[int, str | None] | None = None
    ) -> dict[int, Reply]:
        self._check_rows(new_messages)
        if not self.live:
            return {}
        contexts = [self._context_ids(self.rows[row], new_messages[row]) for row in self.live]
        sampled = self._sample(contexts)
        return {row: self._reply(self.rows[row], reply, context)
                for row, reply, context in zip(self.live, sampled, contexts)}

    def _reply(self, row: _Row, reply: SampledReply, context: list[int]) -> Reply:
        encoder = self.agent.encoder
        ended = reply.finish == "stop" and reply.ids[-1] in encoder.stop_ids
        text = self.agent.tokenizer.decode(reply.ids[:-1] if ended else reply.ids, skip_special_tokens=True)
        row.pending_close = encoder.close(reply.ids)
        parts = encoder.split_reasoning(text)
        return Reply(parts.answer, reply.ids, reply.logprobs, context, reply.finish, reasoning=parts.reasoning,
                     token_mask=reply.mask)

    def drop(self, rows: Iterable[int]) -> None:
        super().drop(rows)
        self.rows = {row: self.rows[row] for row in self.live}


class GeneratorSession(TokenSession):
    """Episodes sampled by ``agent.generator`` (a ``TokenGenerator``), each row's whole sequence per turn."""

    def __init__(self, agent: Any, n: int) -> None:
        super().__init__(agent, n)
        self.sequences: dict[int, list[int]] = {row: [] for row in self.live}

    def _sample(self, contexts: list[list[int]]) -> list[SampledReply]:
        for row, ids in zip(self.live, contexts):
            self.sequences[row] += ids
        outputs = self.agent.generator.generate([list(self.sequences[row]) for row in self.live])
        if len(outputs) != len(self.live):
            raise RuntimeError(f"the generator returned {len(outputs)} completions for {len(self.live)} prompts.")
        replies = []
        for row, (ids, logprobs) in zip(self.live, outputs):
            reply = SampledReply()
            reply.add(list(ids), [float(p) for p in logprobs], sampled=True)
            reply.finish = "stop" if ids and ids[-1] in self.agent.encoder.stop_ids else "length"
            self.sequences[row] += reply.ids
            replies.append(reply)
        return replies

    def drop(self, rows: Iterable[int]) -> None:
        super().drop(rows)
        self.sequences = {row: self.sequences[row] for row in self.live}

    def close(self) -> None:
        self.agent.generator.close()
