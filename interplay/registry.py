"""Environment registry: ids with one-line descriptions, plugins, helpful errors for unknown ids.

Every interplay environment is a Gymnasium environment registered under ``interplay/<Name>-v<N>``,
so ``gym.make`` works as usual. Third-party packages add environments through the entry-point
group ``interplay.envs``: the entry point names a module (importing it registers its
environments) or a callable (called once with no arguments).
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import gymnasium as gym

PLUGIN_GROUP = "interplay.envs"


@dataclass(frozen=True)
class EnvEntry:
    id: str
    description: str
    available: bool = True
    reason: str = ""  # why an unavailable environment cannot run here

    def __str__(self) -> str:
        if self.available:
            return f"{self.id:<44} {self.description}"
        return f"{self.id:<44} UNAVAILABLE: {self.reason}"


_ENTRIES: dict[str, EnvEntry] = {}
_loaded_plugins: set[str] = set()


def register(id: str, entry_point: Any, description: str, **kwargs: Any) -> None:
    """Register an environment with Gymnasium and list it with a one-line description.

    ``kwargs`` go to ``gymnasium.register`` (for example ``kwargs={...}`` for default constructor
    arguments). A variant of an environment with settings of its own (a size, a turn limit) is an id of
    its own with those ``kwargs``, so the id alone names the task: ``interplay/Maze-4x4-v0`` is
    ``MazeEnv`` with ``kwargs={"size": 4, "max_turns": 12}``. Registering an id twice replaces the
    first registration.
    """
    if "/" not in id or not id.rsplit("-v", 1)[-1].isdigit():
        raise ValueError(f"environment id {id!r} must look like 'namespace/Name-v0'.")
    if id in gym.registry:
        del gym.registry[id]
    gym.register(id=id, entry_point=entry_point, **kwargs)
    _ENTRIES[id] = EnvEntry(id, " ".join(description.split()))


def register_unavailable(id: str, reason: str) -> None:
    """Record an environment that cannot run on this machine, with a reason a user can read."""
    _ENTRIES.setdefault(id, EnvEntry(id, "", available=False, reason=reason))


def list_envs(include_unavailable: bool = False) -> list[EnvEntry]:
    """The registered environments (and, optionally, those that cannot run here), sorted by id."""
    return sorted(
        (e for e in _ENTRIES.values() if e.available or include_unavailable), key=lambda e: e.id
    )


def describe(env_id: str) -> str:
    return _ENTRIES[env_id].description if env_id in _ENTRIES else ""


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` with an error that lists close matches (and says why an env is unavailable)."""
    check_env_id(env_id)
    return gym.make(env_id, **kwargs)


def check_env_id(env_id: str) -> None:
    """Raise a clear error for an id that is not registered."""
    if env_id in gym.registry:
        return
    entry = _ENTRIES.get(env_id)
    if entry is not None and not entry.available:
        raise gym.error.Error(f"{env_id} cannot run on this machine: {entry.reason}")
    known = list(gym.registry.keys())
    close = difflib.get_close_matches(env_id, known, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise gym.error.Error(
        f"Unknown environment id {env_id!r}.{hint} "
        "`interplay list` (or interplay.list_envs()) shows every id."
    )


def load_plugins() -> None:
    """Import every ``interplay.envs`` entry point once; a broken plugin only warns."""
    for entry_point in metadata.entry_points(group=PLUGIN_GROUP):
        key = f"{entry_point.name}={entry_point.value}"
        if key in _loaded_plugins:
            continue
        _loaded_plugins.add(key)
        try:
            loaded = entry_point.load()
            if callable(loaded):
                loaded()
        except Exception as error:  # a plugin must never break the other environments
            warnings.warn(
                f"interplay plugin {entry_point.name!r} ({entry_point.value}) failed to load and "
                f"was skipped: {type(error).__name__}: {error}",
                RuntimeWarning,
                stacklevel=2,
            )
