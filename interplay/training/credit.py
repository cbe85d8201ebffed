"""Turn-level credit for multi-turn GRPO: which advantage each turn of an episode gets.

GRPO gives every token of an episode the episode's advantage, ``A_i = (R_i - mean_G R) / std_G R`` over the
G episodes of its group, so the good and the bad moves of a long episode are credited alike.
``GRPOTrainingConfig.credit`` selects one of:

- ``"episode"`` (default): that; TRL computes it.
- ``"return"``: ReBN, return batch normalization (GEM: "GEM: A Gym for Agentic LLMs", Liu et al. 2025). Turn t
  of an episode with per-turn rewards ``r_0..r_{T-1}`` gets its discounted return-to-go
  ``G_t = sum_{k>=t} gamma^(k-t) r_k``, normalized over every turn of every episode in the batch:
  ``A_t = (G_t - mean(G)) / (std(G) + eps)``. No group baseline: the batch mean is the baseline. The batch
  is the generation batch of episodes one process plays (all of it with one process), as the reward
  function sees it.
- ``"anchor"``: GiGPO ("Group-in-Group Policy Optimization for LLM Agent Training", Feng et al. 2025). The
  episode-level advantage ``A^E_i`` is GRPO's (Eq. 3; TRL's, with its ``scale_rewards``), and the turns of a
  group's episodes whose observation (the anchor state) is identical form a step group (Eq. 6; a state
  revisited within one episode counts each time). Within a step group, turn t's discounted return
  ``G_t`` (Eq. 5) against the step group's: ``A^S_t = (G_t - mean) / (std + eps)``, or ``G_t - mean``
  without the std (Eq. 7; std normalization follows ``scale_rewards``: ``"none"`` drops it, as GiGPO's
  "mean_norm" mode does). A turn alone in its step group gets ``A^S = 0``. The turn's advantage is
  ``A^E_i + omega * A^S_t`` (Eq. 8), omega = 1 in the paper.

The std is the unbiased one (n - 1), as TRL's group std and the papers' torch code use. ``gamma`` is
``GRPOTrainingConfig.turn_discount`` (GiGPO uses 0.95); it is not ``discount``, which sums an episode's
rewards into the R that the episode-level advantage sees.

Per-turn rewards: most interplay environments pay only at the end (a solved problem, a cracked code, a
won game), so ``G_t`` is the discounted final reward; ``interplay/Maze-v0`` pays per move with
``dense_reward=True`` (progress toward the goal), and with ``step_cost`` > 0.

Each agent token gets its turn's advantage (``MultiTurnGRPOTrainer`` broadcasts the per-turn values through
each episode's token→turn map, ``turn_index``); environment tokens stay out of the loss as before.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

#: The credit rules ``GRPOTrainingConfig.credit`` accepts.
CREDITS = ("episode", "return", "anchor")

#: GiGPO's epsilon in the step-level normalization.
STEP_EPS = 1e-6
#: ReBN's epsilon in the batch normalization.
REBN_EPS = 1e-6


def discounted_returns(rewards: Sequence[float], gamma: float) -> np.ndarray:
    """``G_t = sum_{k>=t} gamma^(k-t) r_k`` for each turn t of one episode (GiGPO Eq. 5; ReBN's return-to-go)."""
    out = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def rebn_advantages(turn_rewards: Sequence[Sequence[float]], gamma: float, eps: float = REBN_EPS) -> list[np.ndarray]:
    """ReBN (GEM): per episode, per turn ``(G_t - mean) / (std + eps)`` with mean and std over every turn of
    every episode given (the batch)."""
    returns = [discounted_returns(r, gamma) for r in turn_rewards]
    flat = np.concatenate(returns) if returns else np.zeros(0)
    if flat.size == 0:
        return returns
    mean, std = float(flat.mean()), _std(flat)
    return [(g - mean) / (std + eps) for g in returns]


def step_groups(groups: Sequence[Hashable], anchors: Sequence[Sequence[Hashable]]) -> dict[tuple, list[tuple[int, int]]]:
    """GiGPO's step groups (Eq. 6): ``(group, anchor) -> [(episode, turn), ...]`` over the turns of every
    episode, ``groups[i]`` the GRPO group of episode i and ``anchors[i][t]`` the state turn t acted in."""
    out: dict[tuple, list[tuple[int, int]]] = {}
    for i, (group, states) in enumerate(zip(groups, anchors)):
        for t, state in enumerate(states):
            out.setdefault((group, state), []).append((i, t))
    return out


def anchor_step_advantages(turn_rewards: Sequence[Sequence[float]], anchors: Sequence[Sequence[Hashable]],
                           groups: Sequence[Hashable], gamma: float, scale: bool = True,
                           eps: float = STEP_EPS) -> list[np.ndarray]:
    """GiGPO's step-level advantages ``A^S`` (Eq. 7), per episode per turn: the turn's discounted return
    against its step group's (identical anchor state within the same GRPO group), divided by the step
    group's std (+ eps) when ``scale``; 0 for a turn alone in its step group."""
    if len(turn_rewards) != len(anchors) or len(anchors) != len(groups):
        raise ValueError(f"got {len(turn_rewards)} reward lists, {len(anchors)} anchor lists and {len(groups)} "
                         "groups: one of each per episode.")
    returns = [discounted_returns(r, gamma) for r in turn_rewards]
    for i, (g, states) in enumerate(zip(returns, anchors)):
        if len(g) != len(states):
            raise ValueError(f"episode {i} has {len(g)} turn rewards but {len(states)} anchor states.")
    out = [np.zeros(len(g)) for g in returns]
    for members in step_groups(groups, anchors).values():
        if len(members) < 2:
            continue
        values = np.array([returns[i][t] for i, t in members])
        mean, std = float(values.mean()), _std(values)
        for (i, t), value in zip(members, values):
            out[i][t] = (value - mean) / (std + eps) if scale else value - mean
    return out


def turn_of_tokens(reply_starts: Sequence[int], length: int) -> list[int]:
    """Per completion token, the turn it belongs to: turn t from ``reply_starts[t]`` up to the next reply's
    start (its environment tokens before that, the close and the next observation, are masked out of the
    loss anyway)."""
    index, turn = [], 0
    starts = list(reply_starts)
    for j in range(length):
        while turn + 1 < len(starts) and starts[turn + 1] <= j:
            turn += 1
        index.append(turn)
    return index
