"""Exploration shapers: composable transforms and bonuses on the rewards of one GRPO group.

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
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from interplay.metrics import pass_at_k

__all__ = [
    "PKPO_ESTIMATORS",
    "PKPO_SCHEDULES",
    "SHAPERS",
    "TARGETS",
    "UCB_BASELINES",
    "BatchDiversityBonus",
    "ExplorationConfig",
    "GroupInfo",
    "OutcomeCountBonus",
    "PKPOTransform",
    "RepExpBonus",
    "Shaper",
    "apply_shapers",
    "build_shapers",
]


@dataclass
class GroupInfo:
    """What shapers may know about one group of G episodes sharing an initial state.

    ``task_key``: identifies the task across training steps (e.g. env id + seed); ``outcomes``: the
    episodes' ``info["outcome"]`` strings; ``successes``: their ``info["success"]``; ``hidden``: optional
    ``[G, D]`` per-episode vectors (RepExp: mean last-layer hidden state over agent tokens, computed by
    the caller); ``step``: the optimizer step, for annealed schedules.
    """

    task_key: Hashable
    outcomes: Sequence[str]
    successes: Sequence[bool]
    hidden: ArrayLike | None = None
    step: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.outcomes, str):
            raise TypeError("outcomes must be a sequence of strings (one per episode), not a single string")
        if len(self.outcomes) != len(self.successes):
            raise ValueError(f"outcomes has {len(self.outcomes)} entries but successes has {len(self.successes)}")
        if len(self.outcomes) == 0:
            raise ValueError("a group needs at least one episode")
        if self.hidden is not None:
            self.hidden = np.asarray(self.hidden, dtype=np.float64)
            if self.hidden.ndim != 2 or self.hidden.shape[0] != len(self.outcomes):
                raise ValueError(f"hidden must have shape [G={len(self.outcomes)}, D], got {self.hidden.shape}")
            if not np.isfinite(self.hidden).all():
                raise ValueError("hidden contains NaN or inf")

    @property
    def size(self) -> int:
        return len(self.outcomes)


@runtime_checkable
class Shaper(Protocol):
    """A reward shaper for one group: ``shape(rewards[G], group) -> rewards[G]``.

    ``state_dict()`` is what must survive a resumed training (JSON-serializable; ``{}`` for a shaper
    without state), saved with each checkpoint and given back to ``load_state_dict``.
    """

    name: ClassVar[str]
    kind: ClassVar[str]  # "transform" or "bonus"

    def shape(self, rewards: np.ndarray, group: GroupInfo) -> np.ndarray: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class _Bonus:
    """A bonus shaper: ``weight · bonus(group)``, added to the rewards (``target="reward"``: ``shape`` returns
    ``r + weight · bonus``) or to GRPO's normalized advantages (``target="advantage"``: ``shape`` leaves the
    rewards alone and :func:`apply_shapers` hands the bonus back separately)."""

    name: ClassVar[str]
    kind: ClassVar[str] = "bonus"
    weight: float
    target: str = "reward"

    def _set_target(self, target: str) -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS} (where the bonus is added), got {target!r}")
        self.target = target

    def bonus(self, group: GroupInfo) -> np.ndarray:
        raise NotImplementedError

    def shape(self, rewards: np.ndarray, group: GroupInfo) -> np.ndarray:
        r = _rewards(rewards, group)
        b = self.weight * self.bonus(group)
        return r + b if self.target == "reward" else r

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: the bonus depends on the group and the constructor arguments alone (stateful
        bonuses override this)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


#: Where a bonus enters: the rewards before GRPO's group normalization, or the advantages after it.
TARGETS = ("reward", "advantage")
#: OutcomeCountBonus baselines: none (the paper's plain UCB), mean (UCB-Mean), constant (UCB-Con).
UCB_BASELINES = ("none", "mean", "constant")


class OutcomeCountBonus(_Bonus):
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
                 target: str = "advantage") -> None:
        if baseline not in UCB_BASELINES:
            raise ValueError(f"baseline must be one of {UCB_BASELINES}, got {baseline!r}")
        self.weight, self.baseline, self.b0 = float(weight), baseline, float(b0)
        self._set_target(target)
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


class BatchDiversityBonus(_Bonus):
    """Batch exploration, Song, Kempe & Munos 2025, "Outcome-based Exploration for LLM Reasoning".

    Penalizes repeated outcomes within the group: ``b_i = −(1/G) · Σ_{j≠i} 1[o_i = o_j]``, so a unique
    outcome gets 0 and G identical outcomes each get −(G−1)/G. Like the historical bonus it is added to
    GRPO's normalized advantages (``target="advantage"``, the paper's ``Â_i + c·b_i``), to every episode.
    """

    name = "batch_diversity"

    def __init__(self, weight: float = 0.1, target: str = "advantage") -> None:
        self.weight = float(weight)
        self._set_target(target)

    def bonus(self, group: GroupInfo) -> np.ndarray:
        outcomes = np.asarray(group.outcomes, dtype=object)
        same = outcomes[:, None] == outcomes[None, :]
        return -(same.sum(axis=1) - 1) / group.size


class RepExpBonus(_Bonus):
    """Representation-based elliptical bonus, Tuyls et al. 2025, "Representation-Based Exploration for LMs".

    For per-episode vectors h_i (the mean last-layer hidden state over the response; sparse-randomly
    projected to ``proj_dim``, then centered on the group mean when ``center``), the bonus of episode i
    is its elliptical novelty against the group's covariance ``V = λI + Σ_j h_j h_j^T``: with
    ``leave_one_out=False`` (the default, what the authors' training runs use) the leverage score
    ``b_i = h_i^T V^{-1} h_i`` ∈ [0, 1), the sum over all j including i; with ``leave_one_out=True``
    ``b_i = h_i^T (λI + Σ_{j≠i} h_j h_j^T)^{-1} h_i`` = b_all / (1 − b_all) (Sherman–Morrison). Both are
    computed in the G×G kernel form, so the cost does not grow with the hidden size beyond one matrix
    product. Defaults follow the authors' recipe: λ = 0.01, ``proj_dim`` = 32 (their MATH/GSM8K
    setting), no unit normalization (``normalize=True`` scales each vector to norm 1 before centering),
    ``weight`` β = 0.01 on a 0/1 task reward, and the bonus added to the reward before GRPO's group
    normalization (``target="reward"``). The bonus is 0 for every episode of a group without any
    success and applies to every episode (correct or not) of a group with one, so it never rewards
    novel failure where nothing was solved.
    """

    name = "repexp"

    def __init__(self, weight: float = 0.01, lam: float = 0.01, proj_dim: int | None = 32, seed: int = 0,
                 leave_one_out: bool = False, center: bool = True, normalize: bool = False,
                 target: str = "reward") -> None:
        if lam <= 0:
            raise ValueError(f"lam (ridge λ) must be > 0, got {lam}")
        if proj_dim is not None and proj_dim < 1:
            raise ValueError(f"proj_dim must be ≥ 1 or None (no projection), got {proj_dim}")
        self.weight, self.lam = float(weight), float(lam)
        self.proj_dim, self.seed = proj_dim, seed
        self.leave_one_out, self.center, self.normalize = leave_one_out, center, normalize
        self._set_target(target)
        self.projection: np.ndarray | None = None

    def _project(self, h: np.ndarray) -> np.ndarray:
        if self.proj_dim is None:
            return h
        if self.projection is None:
            self.projection = sparse_random_projection(h.shape[1], self.proj_dim, self.seed)
        elif self.projection.shape[0] != h.shape[1]:
            raise ValueError(f"hidden size changed from {self.projection.shape[0]} to {h.shape[1]}: one RepExpBonus "
                             "keeps one projection; use the same representation layer for every group")
        return h @ self.projection

    def bonus(self, group: GroupInfo) -> np.ndarray:
        if group.hidden is None:
            raise ValueError("RepExp needs GroupInfo.hidden: per-episode vectors of shape [G, D] (e.g. the mean "
                             "last-layer hidden state over the episode's agent tokens)")
        if not any(group.successes):
            return np.zeros(group.size)
        h = self._project(group.hidden)
        if self.normalize:
            h = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
        if self.center:
            h = h - h.mean(axis=0, keepdims=True)
        # Push-through identity: diag(H (λI + HᵀH)⁻¹ Hᵀ) = 1 − λ·diag((λI + HHᵀ)⁻¹).
        inv_diag = np.diag(np.linalg.inv(self.lam * np.eye(group.size) + h @ h.T))
        b_all = 1.0 - self.lam * inv_diag
        return b_all / (self.lam * inv_diag) if self.leave_one_out else b_all


def sparse_random_projection(in_dim: int, out_dim: int, seed: int = 0) -> np.ndarray:
    """Very sparse random projection matrix ``[in_dim, out_dim]`` (Li, Hastie & Church 2006).

    Entries are ``±sqrt(s/out_dim)`` with probability 1/(2s) each and 0 otherwise, s = √in_dim, so
    squared norms are preserved in expectation. Seeded: the same arguments give the same matrix.
    """
    s = math.sqrt(in_dim)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 0.0, 1.0], size=(in_dim, out_dim), p=[1 / (2 * s), 1 - 1 / s, 1 / (2 * s)])
    return signs * math.sqrt(s / out_dim)


#: PKPO estimators for binary rewards: s (no baseline), loo (pass@k of the others), loo-1 (pass@(k−1) of the others).
PKPO_ESTIMATORS = ("s", "loo", "loo-1")
#: How k goes from ``k`` to ``k_end``: at once after ``anneal_steps`` (switch), or linearly over them.
PKPO_SCHEDULES = ("switch", "linear")


class PKPOTransform:
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
    kind: ClassVar[str] = "transform"

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
        r = _rewards(rewards, group)
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

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: k follows the optimizer step, which the trainer's checkpoint restores."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _rho(n: int, c: int, k: int) -> float:
    """ρ(n, c, k), the unbiased pass@k from n samples with c successes; ρ(n, c, 0) = 0 (no sample, no success)."""
    return 0.0 if k == 0 or n == 0 else pass_at_k(n, c, k)


SHAPERS: dict[str, type] = {
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
        import json

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


def _rewards(rewards: ArrayLike, group: GroupInfo) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.shape != (group.size,):
        raise ValueError(f"rewards must have shape [G={group.size}] to match the group, got {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("rewards contain NaN or inf")
    return r


def apply_shapers(rewards: ArrayLike, group: GroupInfo, shapers: Sequence[Shaper],
                  return_components: bool = False) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Shaped rewards of one group: transforms in order, then the sum of weighted reward-level bonuses.

    Each bonus is computed exactly once per call (stateful bonuses count the group once). With
    ``return_components`` also returns ``{name: contribution}`` for logging and for the trainer: the
    transformed rewards under ``"transformed"``, each bonus already weighted under its name, and under
    ``"advantage"`` the sum of the advantage-level bonuses (``target="advantage"``), which are not in the
    returned rewards: they go onto GRPO's advantages after its group normalization.
    """
    r = _rewards(rewards, group)
    for shaper in shapers:
        if shaper.kind == "transform":
            r = shaper.shape(r, group)
    components = {"transformed": r}
    total, advantage = r.copy(), np.zeros(group.size)
    for shaper in shapers:
        if shaper.kind == "bonus":
            components[shaper.name] = shaper.weight * shaper.bonus(group)
            if getattr(shaper, "target", "reward") == "advantage":
                advantage = advantage + components[shaper.name]
            else:
                total = total + components[shaper.name]
        elif shaper.kind != "transform":
            raise ValueError(f"shaper {shaper!r} has kind {shaper.kind!r}; expected 'transform' or 'bonus'")
    components["advantage"] = advantage
    return (total, components) if return_components else total
