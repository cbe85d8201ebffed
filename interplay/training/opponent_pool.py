"""The opponent pool of self-play (``interplay.training.selfplay``): who plays the other seat of each pair of rows.

``SelfPlayConfig.opponents`` is comma-separated ``name[:weight]`` (weights normalized; default 1 each):

- ``self``: the current policy, in both seats of one game (both seats' episodes train);
- ``past``: a frozen snapshot of the policy, taken at the first step and every ``past_every`` steps; the newest
  ``past_keep`` are kept in memory (a copy of the model each) and one is drawn uniformly;
- ``random``, ``builtin``, ``expert``: the fixed opponents (``interplay.envs.textarena.duel``; ``expert`` only
  where the game has one, e.g. Nim);
- ``model=PATH``: a saved checkpoint (or any model name ``interplay.models.load`` takes), loaded once.

Opponents other than ``self`` sample with the policy's settings and are not trained.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from interplay.envs.textarena.duel import fixed_opponents


def parse_pool(spec: str, game: str) -> dict[str, float]:
    """``"self:0.5,past:0.25,random:0.25"`` -> normalized weights by name (see the module docstring)."""
    allowed = ["self", "past", *fixed_opponents(game)]
    pool: dict[str, float] = {}
    for entry in (e.strip() for e in spec.split(",") if e.strip()):
        name, weight = entry, 1.0
        head, _, tail = entry.rpartition(":")
        if head:
            try:
                name, weight = head, float(tail)
            except ValueError:
                pass
        if name not in allowed and not name.startswith("model="):
            raise ValueError(f"opponents: unknown {name!r}; {game} takes {', '.join(allowed)} or model=PATH, each "
                             "with an optional :weight, e.g. 'self:0.5,past:0.25,random:0.25'.")
        if not weight > 0:
            raise ValueError(f"opponents: weight of {name!r} must be > 0, got {weight!r}.")
        pool[name] = pool.get(name, 0.0) + weight
    if not pool:
        raise ValueError("opponents is empty; give e.g. 'self' or 'self:0.5,random:0.5'.")
    total = sum(pool.values())
    return {name: weight / total for name, weight in pool.items()}


def frozen_copy(model: Any) -> Any:
    """An independent, frozen copy of ``model``'s current weights, in eval mode.

    A trainer leaves a wrapper in the model's instance ``forward`` (accelerate's output conversion) that
    closes over the original model; a deep copy keeps that closure, so the copy would run the policy's
    current weights. Dropping it gives the copy its class's ``forward``, over its own weights.
    """
    clone = copy.deepcopy(model)
    clone.__dict__.pop("forward", None)
    return clone.eval().requires_grad_(False)


class OpponentPool:
    """Draws each pair's opponent; keeps the policy snapshots of ``past`` and the agents of ``model=PATH``."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.names, self.weights = list(config.pool), np.array(list(config.pool.values()))
        self.snapshots: list[tuple[int, Any]] = []
        self.models: dict[str, Any] = {}

    def refresh(self, step: int, model: Any, make_agent: Any) -> None:
        """Snapshot the policy for ``past`` at the first step and every ``past_every`` steps."""
        if "past" not in self.names:
            return
        if not self.snapshots or (self.config.past_every and step - self.snapshots[-1][0] >= self.config.past_every):
            agent = make_agent(frozen_copy(model))
            agent.name = f"past@{step}"
            self.snapshots = (self.snapshots + [(step, agent)])[-self.config.past_keep:]

    def draw(self, rng: np.random.Generator, make_agent: Any) -> tuple[str, Any]:
        """``(kind, player)``: the pool entry drawn and who plays it (the policy is ``None``)."""
        name = self.names[int(rng.choice(len(self.names), p=self.weights))]
        if name == "self":
            return name, None
        if name == "past":
            return name, self.snapshots[int(rng.integers(len(self.snapshots)))][1]
        if name.startswith("model="):
            if name not in self.models:
                from interplay import models

                self.models[name] = make_agent(models.load(name[len("model="):])[0])
                self.models[name].name = name
            return name, self.models[name]
        return name, name
