"""The shaper protocol, the group it sees, and ``apply_shapers``, which composes shapers on one GRPO group."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

#: How ``apply_shapers`` uses a shaper: a transform replaces the rewards, a bonus is added to them.
Kind = Literal["transform", "bonus"]
#: Where a bonus enters: the rewards before GRPO's group normalization, or the advantages after it.
Target = Literal["reward", "advantage"]
TARGETS: tuple[Target, ...] = ("reward", "advantage")


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
    """A reward shaper for one group: everything ``apply_shapers`` and the trainer use of it.

    - ``name``: its key in ``SHAPERS``, in the logged metrics (``explore/<name>``) and in the saved state.
    - ``kind``: ``"transform"`` (``shape`` returns new rewards; PKPO) or ``"bonus"`` (``bonus`` returns an
      unweighted value per episode, which ``apply_shapers`` scales by ``weight`` and adds at ``target``).
    - ``target``: where a bonus enters, ``"reward"`` or ``"advantage"``; a transform's is ``"reward"``.
    - ``weight``: a bonus's coefficient; a transform's is 1 (it takes none).
    - ``shape(rewards, group)``: the group's rewards after this shaper alone (a bonus at the advantage
      leaves them as they are).
    - ``bonus(group)``: the unweighted bonus per episode; zeros for a transform. A stateful bonus
      (``outcome_count``) records the group here, so ``apply_shapers`` calls it once per group.
    - ``state_dict()`` / ``load_state_dict(state)``: what must survive a resumed training (JSON-serializable;
      ``{}`` without state), saved with each checkpoint.
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    target: Target
    weight: float

    def shape(self, rewards: np.ndarray, group: GroupInfo) -> np.ndarray: ...

    def bonus(self, group: GroupInfo) -> np.ndarray: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Stateless:
    """``state_dict`` / ``load_state_dict`` of a shaper that depends on the group and its constructor arguments
    alone (stateful shapers override both)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Bonus(Stateless):
    """Base of the bonus shapers: ``weight · bonus(group)``, added to the rewards (``target="reward"``) or to
    GRPO's normalized advantages (``target="advantage"``: ``shape`` leaves the rewards alone and
    :func:`apply_shapers` hands the bonus back separately)."""

    name: ClassVar[str]
    kind: ClassVar[Kind] = "bonus"
    weight: float
    target: Target

    def __init__(self, weight: float, target: Target) -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS} (where the bonus is added), got {target!r}")
        self.weight, self.target = float(weight), target

    def bonus(self, group: GroupInfo) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define bonus(group)")

    def shape(self, rewards: np.ndarray, group: GroupInfo) -> np.ndarray:
        r = check_rewards(rewards, group)
        return r + self.weight * self.bonus(group) if self.target == "reward" else r


class Transform(Stateless):
    """Base of the transform shapers: ``shape`` replaces the rewards; they add no bonus."""

    name: ClassVar[str]
    kind: ClassVar[Kind] = "transform"
    target: Target = "reward"
    weight: float = 1.0

    def bonus(self, group: GroupInfo) -> np.ndarray:
        return np.zeros(group.size)


def check_rewards(rewards: ArrayLike, group: GroupInfo) -> np.ndarray:
    """``rewards`` as floats, refused unless one finite value per episode of ``group``."""
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
    r = check_rewards(rewards, group)
    for shaper in shapers:
        if shaper.kind not in ("transform", "bonus"):
            raise ValueError(f"shaper {shaper!r} has kind {shaper.kind!r}; expected 'transform' or 'bonus'")
        if shaper.kind == "transform":
            r = shaper.shape(r, group)
    components = {"transformed": r}
    added = {target: np.zeros(group.size) for target in TARGETS}
    for shaper in shapers:
        if shaper.kind == "bonus":
            components[shaper.name] = shaper.weight * shaper.bonus(group)
            added[shaper.target] = added[shaper.target] + components[shaper.name]
    components["advantage"] = added["advantage"]
    total = r + added["reward"]
    return (total, components) if return_components else total
