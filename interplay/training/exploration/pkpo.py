"""Pass@k-shaped rewards, Walder & Karkhanis 2025, "Pass@K Policy Optimization"."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from interplay.metrics import pass_at_k
from interplay.training.exploration.shaper import GroupInfo, Transform, check_rewards

#: PKPO estimators for binary rewards: s (no baseline), loo (pass@k of the others), loo-1 (pass@(k−1) of the others).
PKPO_ESTIMATORS = ("s", "loo", "loo-1")
#: How k goes from ``k`` to ``k_end``: at once after ``anneal_steps`` (switch), or linearly over them.
PKPO_SCHEDULES = ("switch", "linear")


class PKPOTransform(Transform):
    """Pass@k-shaped rewards, Walder & Karkhanis 2025, "Pass@K Policy Optimization".

    With n binary rewards of which c are 1, the paper's unbiased pass@k gradient weights are
    ``s_i = (1/C(n,k)) Σ_{|I|=k, i∈I} max_{j∈I} r_j``: ``k/n`` for a success, ``(k/n)·ρ(n−1, c, k−1)`` for a
    failure, ρ(n, c, k) = 1 − C(n−c, k)/C(n, k). Subtracting a baseline built from the other n−1 samples
    keeps them unbiased and lowers their variance: ``estimator="loo"`` subtracts ``(k/n)·ρ(n−1, c_{−i}, k)``,
    ``"loo-1"`` (the paper's recommended s^(loo−1), the default) ``(k/n)·ρ(n−1, c_{−i}, k−1)``, c_{−i} the
    successes among the others: a success then gets ``(k/n)·(1 − ρ(n−1, c−1, k−1))`` and a failure 0.
    Here all are multiplied by n/k (``"s"``: a success gets 1 and a failure ρ(n−1, c, k−1)), which keeps
    bonuses added afterwards on a fixed scale and makes k = 1 the identity for "s" and "loo-1".

    GRPO then normalizes each group: subtracting the mean leaves these weights' gradient unbiased, but
    dividing by the group's std (TRL's ``scale_rewards="group"``) removes their magnitude, which is how
    PKPO down-weights groups that already pass@k; use ``scale_rewards="none"`` to keep it.

    A transform, not a bonus: it replaces the rewards, which must be binary. k may be annealed
    (``GroupInfo.step`` is the optimizer step): the paper trains with k > 1 and then k = 1; here
    ``schedule="switch"`` uses ``k`` for the first ``anneal_steps`` steps and ``k_end`` afterwards, and
    ``"linear"`` goes linearly from ``k`` to ``k_end`` over them.
    """

    name: ClassVar[str] = "pkpo"

    def __init__(self, k: int = 4, k_end: int | None = None, anneal_steps: int = 0, estimator: str = "loo-1",
                 schedule: str = "switch") -> None:
        for label, value in (("k", k), ("k_end", k if k_end is None else k_end)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be an int ≥ 1, got {value!r}")
        if anneal_steps < 0:
            raise ValueError(f"anneal_steps must be ≥ 0, got {anneal_steps}")
        if estimator not in PKPO_ESTIMATORS:
            raise ValueError(f"estimator must be one of {PKPO_ESTIMATORS}, got {estimator!r}")
        if schedule not in PKPO_SCHEDULES:
            raise ValueError(f"schedule must be one of {PKPO_SCHEDULES}, got {schedule!r}")
        self.k, self.k_end, self.anneal_steps = k, (k if k_end is None else k_end), anneal_steps
        self.estimator, self.schedule = estimator, schedule

    def k_at(self, step: int) -> int:
        """k for an optimizer step: ``k`` before ``anneal_steps`` and ``k_end`` from then on (switch), or
        linear from ``k`` to ``k_end`` over ``anneal_steps`` (linear); ``k_end`` when ``anneal_steps`` is 0."""
        if self.anneal_steps == 0:
            return self.k_end
        if self.schedule == "switch":
            return self.k if step < self.anneal_steps else self.k_end
        frac = min(max(step, 0) / self.anneal_steps, 1.0)
        return int(round(self.k + (self.k_end - self.k) * frac))

    def shape(self, rewards: np.ndarray, group: GroupInfo) -> np.ndarray:
        r = check_rewards(rewards, group)
        if not np.isin(r, (0.0, 1.0)).all():
            raise ValueError(f"PKPO transforms binary rewards (0/1); got {np.unique(r)[:8]}. Put PKPO before any "
                             "other reward change, or pass the success indicators as rewards")
        n, c, k = r.size, int(r.sum()), self.k_at(group.step)
        if k > n:
            raise ValueError(f"PKPO k={k} exceeds the group size {n}: use k ≤ num_generations")
        if self.estimator == "loo" and k > n - 1:
            raise ValueError(f"PKPO estimator 'loo' needs k ≤ n − 1 (pass@k of the n − 1 others), got k={k}, n={n}: "
                             "use 'loo-1'")
        success = r == 1.0
        # s_i × n/k: a success 1, a failure ρ(n−1, c, k−1) (a failure exists, so c ≤ n−1).
        s = np.where(success, 1.0, _rho(n - 1, c, k - 1) if c < n else 0.0)
        if self.estimator == "s":
            return s
        j = k if self.estimator == "loo" else k - 1
        # Baseline × n/k from the others: ρ(n−1, c − r_i, j).
        baseline = np.array([_rho(n - 1, c - int(ok), j) for ok in success])
        return s - baseline


def _rho(n: int, c: int, k: int) -> float:
    """ρ(n, c, k), the unbiased pass@k from n samples with c successes; ρ(n, c, 0) = 0 (no sample, no success)."""
    return 0.0 if k == 0 or n == 0 else pass_at_k(n, c, k)
