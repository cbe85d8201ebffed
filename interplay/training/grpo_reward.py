"""GRPO's reward function: episode rewards grouped by task, shaped, credited per turn, logged, checkpointed.

``EpisodeReward`` is the one place where episode rewards become the rewards TRL sees: grouped by task (the G
episodes of one seed), shaped by ``interplay.training.exploration`` when ``GRPOTrainingConfig.exploration``
is set, and logged into the trainer's metrics (success rate, mean turns, invalid-action rate, fraction of
groups whose rewards are all equal, distinct outcomes per group, and ``explore/<name>``: each shaper's mean
change of the reward, or of the advantage for the bonuses at the advantage). What it adds to GRPO's
advantages after TRL's group normalization, the outcome-based bonuses (Song et al.'s ``Â_i + c·b_i``) and
turn-level credit (``interplay.training.credit``), it hands to the trainer as ``AdvantageTerms``
(``take_advantage_terms``; ``interplay.training.grpo_trainer`` applies them).

Resuming restores what the shapers remember (``outcome_count``'s counts): ``RewardStateCheckpoints`` saves
it with every TRL checkpoint and ``restore_reward_state`` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from interplay.training.credit import CREDITS, anchor_step_advantages, rebn_advantages, step_groups
from interplay.training.exploration import ExplorationConfig, GroupInfo, apply_shapers, build_shapers


@dataclass
class AdvantageTerms:
    """What ``EpisodeReward`` adds to (or puts in place of) GRPO's episode advantages ``A_i``, per episode in the
    order of its call: token j of episode i, in turn t = ``turn_index[i][j]``, gets
    ``keep_episode · A_i + bonus_i + turns[i][t]`` (``apply_advantage_terms``).

    ``bonus``: the outcome-based exploration bonuses (Song et al.'s ``Â_i + c·b_i``), None without them.
    ``turns``: per episode per turn the turn-level credit (``interplay.training.credit``): GiGPO's
    ``omega · A^S`` (``keep_episode`` True) or ReBN's normalized returns (``keep_episode`` False); None with
    episode credit, and the advantages stay one per episode."""

    bonus: list[float] | None = None
    turns: list[list[float]] | None = None
    keep_episode: bool = True


class EpisodeReward:
    """The reward function TRL calls: episode rewards grouped by task, shaped by the exploration
    shapers (if any), and logged; with a turn-level ``credit`` also the per-turn advantages
    (``interplay.training.credit``). The single place to change what GRPO optimizes.

    ``credit``, ``turn_discount``, ``anchor_weight``: as in ``GRPOTrainingConfig``; ``scale_steps``: whether
    GiGPO's step-level advantages are divided by their step group's std (TRL's ``scale_rewards`` != "none")."""

    __name__ = "episode_reward"  # TRL names reward columns after it

    def __init__(self, exploration: ExplorationConfig | None = None, credit: str = "episode",
                 turn_discount: float = 0.95, anchor_weight: float = 1.0, scale_steps: bool = True) -> None:
        if credit not in CREDITS:
            raise ValueError(f"credit must be one of {', '.join(CREDITS)}, got {credit!r}.")
        self.shapers = build_shapers(exploration) if exploration is not None else []
        self.credit, self.turn_discount, self.anchor_weight = credit, turn_discount, anchor_weight
        self.scale_steps = scale_steps
        # What the last call adds to GRPO's advantages (outcome-based bonuses, turn-level credit); None when
        # nothing. MultiTurnGRPOTrainer takes it.
        self.advantage_terms: AdvantageTerms | None = None

    def take_advantage_terms(self) -> AdvantageTerms | None:
        """What the last call adds to GRPO's advantages, per episode in its order (then forgotten)."""
        terms, self.advantage_terms = self.advantage_terms, None
        return terms

    def turn_credit(self, task: list[str], turn_rewards: list[list[float]] | None,
                    anchors: list[list[str]] | None) -> tuple[list[list[float]] | None, dict[str, float]]:
        """Per episode per turn the turn-level credit of ``self.credit`` (None for episode credit), and metrics."""
        if self.credit == "episode":
            return None, {}
        if turn_rewards is None or (self.credit == "anchor" and anchors is None):
            raise ValueError(f"credit={self.credit!r} needs the rollout's per-turn fields (turn_rewards"
                             f"{', anchors' if self.credit == 'anchor' else ''}): build the rollout with "
                             "make_rollout_func(config) of a config with the same credit.")
        if self.credit == "return":
            values = rebn_advantages(turn_rewards, self.turn_discount)
            return [v.tolist() for v in values], {}
        steps = anchor_step_advantages(turn_rewards, anchors, task, self.turn_discount, scale=self.scale_steps)
        sizes = [len(members) for members in step_groups(task, anchors).values()]
        turns = max(sum(sizes), 1)
        metrics = {"credit/step_group_size": float(np.mean(sizes)) if sizes else 0.0,
                   # turns whose step group holds another turn: the only ones with a step-level advantage
                   "credit/frac_turns_grouped": sum(n for n in sizes if n > 1) / turns}
        return [(self.anchor_weight * v).tolist() for v in steps], metrics

    @property
    def stateful(self) -> bool:
        """Whether a shaper remembers something across steps (``outcome_count``'s counts) that a resume needs."""
        return any(shaper.state_dict() for shaper in self.shapers)

    def state_dict(self) -> dict[str, Any]:
        """Each shaper's state by name (JSON-serializable), for ``RewardStateCheckpoints``."""
        return {"shapers": {shaper.name: shaper.state_dict() for shaper in self.shapers}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved, names = state["shapers"], [shaper.name for shaper in self.shapers]
        if sorted(saved) != sorted(names):
            raise ValueError(f"the saved reward state is of the shapers {sorted(saved)}, this run has {sorted(names)}: "
                             "resume with the exploration config the checkpoint was trained with.")
        for shaper in self.shapers:
            shaper.load_state_dict(saved[shaper.name])

    def __call__(self, prompts: list[Any], completions: list[Any], reward: list[float], success: list[bool],
                 outcome: list[str], turns: list[int], invalid_actions: list[int], task: list[str],
                 trainer_state: Any = None, log_metric: Any = None, hidden: list[list[float]] | None = None,
                 turn_rewards: list[list[float]] | None = None, anchors: list[list[str]] | None = None,
                 **kwargs: Any) -> list[float]:
        """The rewards GRPO normalizes, one per episode (TRL passes the rollout's fields by name)."""
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(task):
            groups.setdefault(key, []).append(i)
        step = trainer_state.global_step if trainer_state is not None else 0
        raw = np.asarray(reward, dtype=np.float64)
        shaped, advantage, changes = self.shape(raw, groups, outcome, success, step, hidden)
        wants_advantage = any(s.kind == "bonus" and s.target == "advantage" for s in self.shapers)
        turn_values, credit_metrics = self.turn_credit(task, turn_rewards, anchors)
        bonus = advantage.tolist() if wants_advantage else None
        self.advantage_terms = None if bonus is None and turn_values is None else AdvantageTerms(
            bonus=bonus, turns=turn_values, keep_episode=self.credit != "return")
        if log_metric is not None:
            metrics = {**self.metrics(shaped, success, outcome, turns, invalid_actions, groups, raw), **credit_metrics,
                       **{f"explore/{name}": float(change.mean()) for name, change in changes.items()}}
            for name, value in metrics.items():
                log_metric(name, value)
        return shaped.tolist()

    def shape(self, raw: np.ndarray, groups: dict[str, list[int]], outcome: list[str], success: list[bool],
              step: int, hidden: list[list[float]] | None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Each group through the shapers: the shaped rewards, the advantage-level bonus, and per episode what
        each shaper changed (every bonus by name, the transforms together under their names joined by "+")."""
        shaped, advantage = raw.copy(), np.zeros(len(raw))
        transforms = "+".join(s.name for s in self.shapers if s.kind == "transform")
        bonuses = [s.name for s in self.shapers if s.kind == "bonus"]
        changes = {name: np.zeros(len(raw)) for name in [transforms, *bonuses] if name}
        if not self.shapers:
            return shaped, advantage, changes
        for key, rows in groups.items():
            info = GroupInfo(task_key=key, outcomes=[outcome[i] for i in rows], successes=[success[i] for i in rows],
                             step=step, hidden=None if hidden is None else [hidden[i] for i in rows])
            shaped[rows], components = apply_shapers(raw[rows], info, self.shapers, return_components=True)
            advantage[rows] = components["advantage"]
            if transforms:
                changes[transforms][rows] = components["transformed"] - raw[rows]
            for name in bonuses:
                changes[name][rows] = components[name]
        return shaped, advantage, changes

    @staticmethod
    def metrics(rewards: np.ndarray, success: list[bool], outcome: list[str], turns: list[int],
                invalid_actions: list[int], groups: dict[str, list[int]],
                raw: np.ndarray | None = None) -> dict[str, float]:
        """Per-step episode metrics; ``rewards`` as GRPO gets them (shaped), ``raw`` the environment's own
        (default: ``rewards``)."""
        raw = rewards if raw is None else raw
        return {
            "episode/success_rate": float(np.mean(success)),
            "episode/mean_turns": float(np.mean(turns)),
            "episode/invalid_rate": sum(invalid_actions) / max(sum(turns), 1),
            # Groups where every episode got the same reward give GRPO no signal at all.
            "episode/frac_groups_equal_reward": float(np.mean([np.ptp(rewards[rows]) == 0 for rows in groups.values()])),
            "episode/distinct_outcomes_per_group": float(np.mean([len({outcome[i] for i in rows})
                                                                   for rows in groups.values()])),
            # The manipulation check of a GRPO run: groups where the environment's own reward differs at all.
            "episode/frac_groups_reward_spread": float(np.mean([np.ptp(raw[rows]) > 0 for rows in groups.values()])),
        }


#: The file, in each TRL checkpoint, with one process's reward-shaper state (``rank``: its process index).
REWARD_STATE_FILE = "interplay_reward_state-{rank}.json"


class RewardStateCheckpoints(TrainerCallback):
    """Writes ``reward.state_dict()`` into every checkpoint the trainer saves (``REWARD_STATE_FILE``), so that a
    resumed run continues the shapers' history (outcome counts) instead of restarting it; ``restore_reward_state``
    reads it back. One file per process: each process shapes the groups it plays with shapers of its own."""

    def __init__(self, reward: EpisodeReward) -> None:
        self.reward = reward

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / REWARD_STATE_FILE.format(rank=args.process_index)).write_text(json.dumps(self.reward.state_dict()))


def restore_reward_state(reward: EpisodeReward, checkpoint: str | Path, rank: int) -> None:
    """Load the reward-shaper state that process ``rank`` saved with ``checkpoint`` (``RewardStateCheckpoints``)
    into ``reward``; a checkpoint without it is refused when a shaper has state to lose."""
    saved = Path(checkpoint) / REWARD_STATE_FILE.format(rank=rank)
    if saved.exists():
        reward.load_state_dict(json.loads(saved.read_text()))
    elif reward.stateful:
        raise ValueError(f"{checkpoint} holds no reward-shaper state for process {rank} ({saved.name}): it was saved "
                         "by an older interplay or by a run with fewer processes, and resuming from it would restart "
                         "the exploration shapers' history (outcome counts). Resume from a checkpoint of this run "
                         "with the same number of processes, or start afresh.")
