"""Outcome-based exploration bonuses, Song, Kempe & Munos 2025, "Outcome-based Exploration for LLM Reasoning"."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np

from interplay.training.exploration.shaper import Bonus, GroupInfo, Target

#: OutcomeCountBonus baselines: none (the paper's plain UCB), mean (UCB-Mean), constant (UCB-Con).
UCB_BASELINES = ("none", "mean", "constant")


class OutcomeCountBonus(Bonus):
    """Historical exploration, Song, Kempe & Munos 2025, "Outcome-based Exploration for LLM Reasoning".

    UCB-style bonus ``b_ucb(x, o_i) = min(1, 1/sqrt(N(x, o_i)))``, N(x, o) the number of times outcome o
    was seen on task x during training (counts per task), minus a baseline: ``"constant"`` (UCB-Con,
    the paper's best variant, the default) ``b_i = b_ucb − b0`` with b0 = 0.5, so an outcome seen more
    than 4 times is penalized; ``"mean"`` (UCB-Mean) ``b_i = b_ucb,i − (1/G) Σ_j b_ucb,j``; ``"none"`` the
    plain UCB bonus. The paper's objective is ``Â_i + c·b_i`` with Â the GRPO advantage, so the bonus
    enters after the group normalization (``target="advantage"``); ``target="reward"`` adds it to the
    reward instead (where the mean and constant baselines cancel). ``weight`` is c. The counts include
    the current group (updated first, then the bonus computed): an outcome never seen before earns
    b_ucb = 1, one seen twice in this group (and never before) 1/√2. The bonus applies to every episode,
    correct or not. Stateful: calling ``bonus`` counts the group.
    """

    name = "outcome_count"

    def __init__(self, weight: float = 0.1, baseline: str = "constant", b0: float = 0.5,
                 target: Target = "advantage") -> None:
        if baseline not in UCB_BASELINES:
            raise ValueError(f"baseline must be one of {UCB_BASELINES}, got {baseline!r}")
        super().__init__(weight, target)
        self.baseline, self.b0 = baseline, float(b0)
        self.counts: dict[Hashable, dict[str, int]] = {}

    def ucb(self, group: GroupInfo) -> np.ndarray:
        """Count the group's outcomes, then ``min(1, 1/sqrt(N(x, o_i)))`` per episode (no baseline)."""
        task = self.counts.setdefault(group.task_key, {})
        for outcome in group.outcomes:
            task[outcome] = task.get(outcome, 0) + 1
        return np.array([min(1.0, 1.0 / math.sqrt(task[o])) for o in group.outcomes])

    def bonus(self, group: GroupInfo) -> np.ndarray:
        b = self.ucb(group)
        if self.baseline == "mean":
            return b - b.mean()
        if self.baseline == "constant":
            return b - self.b0
        return b

    def count(self, task_key: Hashable, outcome: str) -> int:
        return self.counts.get(task_key, {}).get(outcome, 0)

    def state_dict(self) -> dict[str, Any]:
        """Counts to save with a checkpoint, so resumed training keeps its history (JSON-serializable when
        the task keys are strings, as in GRPO training)."""
        return {"counts": {task: dict(outs) for task, outs in self.counts.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = {task: dict(outs) for task, outs in state["counts"].items()}


class BatchDiversityBonus(Bonus):
    """Batch exploration, Song, Kempe & Munos 2025, "Outcome-based Exploration for LLM Reasoning".

    Penalizes repeated outcomes within the group: ``b_i = −(1/G) · Σ_{j≠i} 1[o_i = o_j]``, so a unique
    outcome gets 0 and G identical outcomes each get −(G−1)/G. Like the historical bonus it is added to
    GRPO's normalized advantages (``target="advantage"``, the paper's ``Â_i + c·b_i``), to every episode.
    """

    name = "batch_diversity"

    def __init__(self, weight: float = 0.1, target: Target = "advantage") -> None:
        super().__init__(weight, target)

    def bonus(self, group: GroupInfo) -> np.ndarray:
        outcomes = np.asarray(group.outcomes, dtype=object)
        same = outcomes[:, None] == outcomes[None, :]
        return -(same.sum(axis=1) - 1) / group.size
