"""Teacher forcing: one forward pass of a model over recorded episodes, scored at the agent's tokens.

``teacher_forced`` is the one place that runs a model over recorded token ids: the evaluation's coverage
profile (``evaluation.sequence_log_likelihood``), the study's expert forcing (``study.core.expert_forcing``)
and RepExp's episode representations (``training.grpo_rollout``) all read its ``ForcedScores``. Rows go in
batches of similar length, right-padded, without gradients and in eval mode (no dropout); the model's
train/eval mode is restored afterwards, since a trainer reads ``model.training``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from interplay.agents.tokens import pad_batch


@dataclass
class ForcedScores:
    """Per row (episode), in the order given.

    ``log_likelihood``: sum of ``log_softmax(logits / temperature)`` at the agent's tokens; ``tokens``: how many
    agent tokens were scored; ``hidden`` (with ``hidden=True``): the mean last-layer hidden state over the agent's
    tokens, ``[rows, D]``; ``reply_openings`` (with ``reply_openings=True``): per agent reply, the model's most
    likely first token there and the reply's actual first token.
    """

    log_likelihood: np.ndarray
    tokens: np.ndarray
    hidden: np.ndarray | None = None
    reply_openings: list[list[tuple[int, int]]] | None = None


def teacher_forced(model: Any, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]],
                   agent_masks: Sequence[Sequence[int]], *, temperature: float = 1.0, batch_size: int = 16,
                   hidden: bool = False, reply_openings: bool = False) -> ForcedScores:
    """Score each row ``prompt_ids[i] + completion_ids[i]`` under ``model`` at the tokens ``agent_masks[i]`` marks
    (1: the agent's, one mark per completion id); see ``ForcedScores``."""
    if not temperature > 0 or batch_size < 1:
        raise ValueError(f"need temperature > 0 and batch_size ≥ 1, got {temperature} and {batch_size}.")
    rows = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
    marks = [[0] * len(p) + list(m) for p, m in zip(prompt_ids, agent_masks)]
    if any(len(r) != len(m) for r, m in zip(rows, marks)) or not len(rows) == len(marks) == len(prompt_ids):
        raise ValueError("each row needs prompt ids, completion ids and one agent mark per completion id.")
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    scores = ForcedScores(np.zeros(len(rows)), np.zeros(len(rows), dtype=np.int64),
                          None, [[] for _ in rows] if reply_openings else None)
    vectors: dict[int, list[float]] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                _score_batch(model, [rows[i] for i in batch], [marks[i] for i in batch], batch, temperature,
                             scores, vectors if hidden else None)
    finally:
        model.train(was_training)
    if hidden:
        scores.hidden = np.array([vectors[i] for i in range(len(rows))]).reshape(len(rows), -1)
    return scores


def _score_batch(model: Any, rows: list[list[int]], marks: list[list[int]], index: list[int], temperature: float,
                 scores: ForcedScores, vectors: dict[int, list[float]] | None) -> None:
    """One padded batch through the model; its results written into ``scores`` (and ``vectors``) at ``index``."""
    device = next(model.parameters()).device
    tokens, attention, agent = pad_batch(rows, marks=marks, device=device)
    agent = agent.bool()
    output = model(input_ids=tokens, attention_mask=attention, output_hidden_states=vectors is not None)
    logits = output.logits[:, :-1]
    target = agent[:, 1:]  # position j predicts token j + 1: only the agent's tokens are scored
    logp = torch.log_softmax(logits[target].float() / temperature, -1)
    picked = logp.gather(-1, tokens[:, 1:][target][:, None])[:, 0]
    row_of = torch.arange(len(rows), device=device)[:, None].expand_as(target)[target]
    sums = torch.zeros(len(rows), dtype=torch.float64, device=device).index_add_(0, row_of, picked.double())
    scores.log_likelihood[index] = sums.cpu().numpy()
    scores.tokens[index] = target.sum(1).cpu().numpy()
    if vectors is not None:
        weights = agent.float()[..., None]
        mean = (output.hidden_states[-1].float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        vectors.update(zip(index, mean.cpu().tolist()))
    if scores.reply_openings is not None:
        starts = (agent[:, 1:] & ~agent[:, :-1]).nonzero().tolist()  # (row, j): token j + 1 opens a reply
        guesses = logits.argmax(-1)
        for row, j in starts:
            scores.reply_openings[index[row]].append((int(guesses[row, j]), int(tokens[row, j + 1])))
