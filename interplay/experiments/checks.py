"""Manipulation checks: did the arms of a comparison get what they were meant to differ on?

For a GRPO training, from its log alone (TRL's ``log_history``, which every job keeps): the share of
training groups with any reward spread (GRPO learns only from those), the distinct outcomes per group,
and the starting policy's entropy. The pipeline's report and the study's show them under their results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from interplay.experiments.report import cell, pct, table

#: The checks by key: the column's heading and whether it is a share (shown in %).
CHECKS: dict[str, tuple[str, bool]] = {
    "reward_spread": ("GRPO groups with any reward spread (%)", True),
    "distinct_outcomes": ("distinct outcomes per group", False),
    "start_entropy": ("entropy of the starting policy (nats/token)", False),
    "expert_turns": ("expert turns H", False),
    "final_loss": ("final training loss", False),
    "runs": ("training runs", False),
}
#: What the GRPO checks measure, in words (said under their table).
GRPO_CHECKS_NOTE = (
    "GRPO learns only from groups whose episodes got different rewards: groups with any reward spread is the share "
    "of the training groups (per step, the environment's own reward; runs logged before this check existed: the "
    "shaped reward GRPO saw) where some episode's reward differed, averaged over steps; distinct outcomes per "
    "group the mean number of different episode outcomes in a group; the entropy of the starting policy the mean "
    "per-token entropy of its replies at the first step, before any update. Means over the runs (seeds).")


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def grpo_checks(log: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The checks of one GRPO training from its log: the share of groups with any reward spread and the distinct
    outcomes per group (means over steps), and the starting policy's entropy (the first step's). NaN where the
    log lacks a metric."""
    steps = [e for e in log if "episode/distinct_outcomes_per_group" in e]
    if steps and all("episode/frac_groups_reward_spread" in e for e in steps):
        spread = [e["episode/frac_groups_reward_spread"] for e in steps]
    else:  # logs written before the environment-reward metric: the shaped reward's groups
        spread = [1.0 - e["episode/frac_groups_equal_reward"] for e in steps if "episode/frac_groups_equal_reward" in e]
    entropy = next((e["entropy"] for e in log if "entropy" in e), float("nan"))
    return {"reward_spread": _mean(spread),
            "distinct_outcomes": _mean([e["episode/distinct_outcomes_per_group"] for e in steps]),
            "start_entropy": float(entropy)}


def mean_checks(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Checks averaged over runs (seeds), with the number of runs."""
    keys = list(runs[0]) if runs else []
    return {**{k: _mean([r[k] for r in runs]) for k in keys}, "runs": float(len(runs))}


def _value(key: str, value: float) -> str:
    if not math.isfinite(value):
        return "–"
    if key == "runs":
        return f"{value:.0f}"
    return pct(value) if CHECKS[key][1] else f"{value:.2f}"


def checks_table(checks: dict[str, dict[str, float]], note: str = "", label: str = "arm") -> list[str]:
    """One row per arm (``label``), one column per check any arm has; ``note`` below. Empty without checks."""
    if not checks:
        return []
    keys = [k for k in CHECKS if any(k in row for row in checks.values())]
    rows = [[cell(arm), *(_value(k, row[k]) if k in row else "–" for k in keys)] for arm, row in checks.items()]
    lines = ["Manipulation check (did the arms get what they were meant to differ on?):", "",
             *table([label, *(CHECKS[k][0] for k in keys)], rows)]
    return lines + (["", note] if note else []) + [""]
