"""Exploration shapers: composable transforms and bonuses on the rewards of one GRPO group.

Shapers by family, one module each: ``outcome`` (Song et al.'s historical and batch bonuses), ``repexp``
(Tuyls et al.'s representation bonus), ``pkpo`` (Walder & Karkhanis's pass@k transform); ``shaper`` holds the
protocol they follow and :func:`apply_shapers`, this module the config that names them.

A group is the G episodes played from one initial state (same task, same seed). Each shaper sees the
group's rewards and a :class:`GroupInfo` (task key, outcome strings, successes, optional per-episode
representation vectors) and is one of two kinds:

- ``"transform"`` replaces the rewards with a function of them (PKPO);
- ``"bonus"`` computes an unweighted bonus per episode, scaled by its ``weight``. Where it enters is its
  ``target``: ``"reward"`` bonuses are added to the rewards before GRPO's group normalization (RepExp),
  ``"advantage"`` bonuses are added to the normalized advantages after it (the outcome-based bonuses of
  Song et al., whose objective is ``Â_i + c·b_i``: a bonus with a baseline, or a penalty, would cancel
  or change meaning inside the group normalization).

:func:`apply_shapers` composes them as ``T_m(...T_1(r)) + Σ_{b: reward} weight_b · bonus_b(group)``:
transforms in list order, then every reward-level bonus added to the transformed rewards. The result
goes to GRPO's usual group normalization; ``Σ_{b: advantage} weight_b · bonus_b(group)`` comes back
separately (``return_components``: under ``"advantage"``) for the trainer to add to the advantages.

Usage::

    shapers = build_shapers(ExplorationConfig(methods=["pkpo", "outcome_count"],
                                              weights={"outcome_count": 0.1}, params={"pkpo": {"k": 4}}))
    info = GroupInfo(task_key=seed, outcomes=outs, successes=succ, step=step)
    shaped, parts = apply_shapers(rewards, info, shapers, return_components=True)
    # rewards for GRPO: shaped; added to its advantages afterwards: parts["advantage"]
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any

from interplay.training.exploration.outcome import UCB_BASELINES, BatchDiversityBonus, OutcomeCountBonus
from interplay.training.exploration.pkpo import PKPO_ESTIMATORS, PKPO_SCHEDULES, PKPOTransform
from interplay.training.exploration.repexp import RepExpBonus, sparse_random_projection
from interplay.training.exploration.shaper import (
    TARGETS,
    Bonus,
    GroupInfo,
    Kind,
    Shaper,
    Target,
    Transform,
    apply_shapers,
    check_rewards,
)

__all__ = [
    "PKPO_ESTIMATORS",
    "PKPO_SCHEDULES",
    "SHAPERS",
    "TARGETS",
    "UCB_BASELINES",
    "BatchDiversityBonus",
    "Bonus",
    "ExplorationConfig",
    "GroupInfo",
    "Kind",
    "OutcomeCountBonus",
    "PKPOTransform",
    "RepExpBonus",
    "Shaper",
    "Target",
    "Transform",
    "apply_shapers",
    "build_shapers",
    "check_rewards",
    "sparse_random_projection",
]

#: Every shaper by name, in the order ``ExplorationConfig`` documents them.
SHAPERS: dict[str, type[Shaper]] = {
    cls.name: cls for cls in (OutcomeCountBonus, BatchDiversityBonus, RepExpBonus, PKPOTransform)
}


@dataclass
class ExplorationConfig:
    """Which shapers to use and how: ``methods`` are names from ``SHAPERS``
    (``outcome_count``, ``batch_diversity``, ``repexp``, ``pkpo``); ``weights`` sets a bonus's
    coefficient (defaults: outcome_count 0.1, batch_diversity 0.1, repexp 0.01); ``params`` holds other
    constructor arguments per method, e.g. ``{"pkpo": {"k": 8, "k_end": 1, "anneal_steps": 200}}`` or
    ``{"outcome_count": {"baseline": "mean", "target": "reward"}}``.
    """

    methods: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: str) -> ExplorationConfig:
        """The short form used on the command line: comma-separated ``name[:weight][:key=value...]``,
        e.g. ``"outcome_count:0.1,pkpo:k=4:k_end=1:anneal_steps=100"``; values are read as JSON
        (numbers, true/false), else kept as strings."""
        config = cls()
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, *options = item.split(":")
            config.methods.append(name)
            for option in options:
                key, eq, value = option.partition("=")
                try:
                    parsed = json.loads(value if eq else key)
                except json.JSONDecodeError:
                    parsed = value
                if not eq and isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
                    config.weights[name] = float(parsed)
                elif eq and key:
                    config.params.setdefault(name, {})[key] = parsed
                else:
                    raise ValueError(f"exploration spec {item!r}: {option!r} is neither a weight (a number) nor "
                                     "key=value; write e.g. 'outcome_count:0.1,pkpo:k=4'")
        build_shapers(config)  # fail now, with the names accepted, rather than when training starts
        return config


def build_shapers(config: ExplorationConfig) -> list[Shaper]:
    """Instantiate the shapers a config names, in its order, with clear errors for typos."""
    known = ", ".join(SHAPERS)
    if len(set(config.methods)) != len(config.methods):
        raise ValueError(f"methods lists a shaper twice: {config.methods}")
    for name in config.methods:
        if name not in SHAPERS:
            raise ValueError(f"unknown exploration method {name!r}; known: {known}")
    for label, table in (("weights", config.weights), ("params", config.params)):
        stray = set(table) - set(config.methods)
        if stray:
            raise ValueError(f"{label} names {sorted(stray)} which are not in methods={config.methods}")
    shapers = []
    for name in config.methods:
        cls = SHAPERS[name]
        kwargs = dict(config.params.get(name, {}))
        if name in config.weights:
            if cls.kind != "bonus":
                raise ValueError(f"{name!r} is a transform and takes no weight; set its params instead")
            kwargs["weight"] = config.weights[name]
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = set(kwargs) - set(accepted)
        if unknown:
            raise ValueError(f"{name!r} got unknown parameters {sorted(unknown)}; accepted: {accepted}")
        shapers.append(cls(**kwargs))
    return shapers
