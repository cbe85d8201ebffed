"""Evaluation on held-out seeds: success rate, mean turns, invalid-action rate.

Episodes are played in batches of ``batch_size`` (each seed ``samples`` times, as a group), so
memory stays bounded and the progress bar moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interplay.agents.base import Agent
from interplay.rollout import EnvSpec, Trajectory, rollout
from interplay.seeds import EVAL_SEED_START, eval_seeds


def summarize(env_id: str, agent_name: str, trajectories: Sequence[Trajectory]) -> dict[str, Any]:
    turns = sum(t.turns for t in trajectories)
    n = max(len(trajectories), 1)
    return {
        "env": env_id,
        "model": agent_name,
        "n_episodes": len(trajectories),
        "success_rate": sum(t.success for t in trajectories) / n,
        "mean_turns": turns / n,
        "invalid_rate": sum(t.invalid_actions for t in trajectories) / max(turns, 1),
    }


def evaluate(
    env_id: str,
    agent: Agent,
    n: int,
    samples: int = 1,
    *,
    env_kwargs: dict[str, Any] | None = None,
    seed_start: int = EVAL_SEED_START,
    max_turns: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
    trajectories: list[Trajectory] | None = None,
) -> dict[str, Any]:
    """Play ``n`` held-out tasks (seeds ``seed_start..seed_start+n-1``) ``samples`` times each.

    Returns ``{"env", "model", "n_episodes", "success_rate", "mean_turns", "invalid_rate"}`` over all
    n * samples episodes. Pass a list as ``trajectories`` to collect the episodes too.
    """
    if n < 1 or samples < 1 or batch_size < 1:
        raise ValueError(f"n, samples and batch_size must be positive, got {n}, {samples}, {batch_size}.")
    specs = [EnvSpec(env_id, dict(env_kwargs or {}), seed) for seed in eval_seeds(n, seed_start)]
    per_batch = max(1, batch_size // samples)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n * samples, desc=f"eval {env_id}", unit="ep")
    played: list[Trajectory] = []
    for start in range(0, n, per_batch):
        played += rollout(specs[start : start + per_batch], agent, group_size=samples, max_turns=max_turns)
        if bar is not None:
            bar.update(len(played) - bar.n)
            bar.set_postfix(success=f"{sum(t.success for t in played) / len(played):.3f}")
    if bar is not None:
        bar.close()
    if trajectories is not None:
        trajectories.extend(played)
    return summarize(env_id, agent.name, played)
