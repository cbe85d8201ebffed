"""Seeds and tasks, in one place.

- Seed ranges: training draws tasks from the seeds below ``EVAL_SEED_START``, evaluation from those
  from it on, so "held-out" means held out. ``train_seeds`` and ``check_train_seeds`` refuse
  training seeds that would reach the held-out range.
- ``task_key``: the one name of a task (environment, kwargs, reset seed), used wherever episodes
  are grouped or counted by task.
- ``GlobalRNG``: a seeded state of Python's and numpy's global generators, for third-party code
  that draws from them, kept apart from the caller's.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

TRAIN_SEED_START = 0
EVAL_SEED_START = 10**6


def check_train_seeds(start: int, n: int, what: str = "tasks") -> None:
    """Refuse ``n`` training seeds from ``start`` that would reach the held-out seeds; ``what`` names
    the count in the message ("tasks", "episodes")."""
    if start + n > EVAL_SEED_START:
        raise ValueError(f"seed_start + {what} ({start} + {n}) reaches the held-out seeds from "
                         f"{EVAL_SEED_START} (interplay.seeds); use fewer {what} or a smaller seed_start.")


def train_seeds(n: int, start: int = TRAIN_SEED_START) -> list[int]:
    """``n`` consecutive training seeds from ``start`` (``check_train_seeds`` refuses too many)."""
    check_train_seeds(start, n)
    return list(range(start, start + n))


def eval_seeds(n: int, start: int = EVAL_SEED_START) -> list[int]:
    """``n`` consecutive held-out seeds from ``start``."""
    return list(range(start, start + n))


# ---- the key of a task ---------------------------------------------------------------------------

_TASK_KEY = re.compile(r"^(?P<env>\S+) seed=(?P<seed>-?\d+)(?: (?P<kwargs>\{.*\}))?$", re.S)


def task_key(env_id: str, seed: int, env_kwargs: Mapping[str, Any] | None = None) -> str:
    """The key of one task: ``"<env id> seed=<seed>"``, followed by the constructor kwargs as JSON
    with sorted keys where there are any (``'interplay/Maze-v0 seed=3 {"size": 5}'``).

    Episodes with the same key start from the same state. It is GRPO's prompt-dataset row and the
    key its reward groups and exploration counts use (kwargs left out: one run has one set), and
    the key evaluation groups samples by. ``parse_task_key`` inverts it."""
    key = f"{env_id} seed={int(seed)}"
    return f"{key} {json.dumps(dict(env_kwargs), sort_keys=True, default=repr)}" if env_kwargs else key


def parse_task_key(key: Any) -> tuple[str, int, dict[str, Any]] | None:
    """``(env_id, seed, env_kwargs)`` of a ``task_key``, or None when ``key`` is not one."""
    match = _TASK_KEY.match(key) if isinstance(key, str) else None
    if match is None:
        return None
    try:
        kwargs = json.loads(match["kwargs"]) if match["kwargs"] else {}
    except json.JSONDecodeError:
        return None
    return match["env"], int(match["seed"]), kwargs


# ---- the global generators -----------------------------------------------------------------------


class GlobalRNG:
    """A state of Python's and numpy's global generators of its own, for code that draws from the
    global generators (TextArena games, some reasoning-gym generators).

    ``with rng.active():`` runs a block on this state and puts the caller's state back afterwards;
    the block's draws carry over to the next ``active()``. Seeded as ``random.seed(seed)`` and
    ``np.random.seed(seed % 2**32)`` would seed the global generators.
    """

    def __init__(self, seed: int) -> None:
        self.python = random.Random(seed).getstate()
        self.numpy = np.random.RandomState(seed % 2**32).get_state()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        saved_python, saved_numpy = random.getstate(), np.random.get_state()
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        try:
            yield
        finally:
            self.python, self.numpy = random.getstate(), np.random.get_state()
            random.setstate(saved_python)
            np.random.set_state(saved_numpy)
