"""Environment registry: ids with one-line descriptions, plugins, helpful errors for unknown ids.

Every interplay environment is a Gymnasium environment registered under ``interplay/<Name>-v<N>``,
so ``gym.make`` works as usual. Third-party packages add environments through the entry-point
group ``interplay.envs``: the entry point names a module (importing it registers its
environments) or a callable (called once with no arguments).
"""

from __future__ import annotations

import difflib
import sys
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
    origin: str = ""  # what registered it: entry point, kwargs, and the caller's module and line

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
    ``MazeEnv`` with ``kwargs={"size": 4, "max_turns": 12}``. Registering an id again replaces the
    first registration and warns with both origins (entry point, kwargs, and the module and line that
    registered it), unless it is the same registration from the same place (a module reloaded).
    """
    if "/" not in id or not id.rsplit("-v", 1)[-1].isdigit():
        raise ValueError(f"environment id {id!r} must look like 'namespace/Name-v0'.")
    origin = _origin(entry_point, kwargs)
    previous = _ENTRIES.get(id)
    if id in gym.registry:
        if previous is None or previous.origin != origin:
            before = previous.origin if previous is not None else _origin(
                gym.registry[id].entry_point, {"kwargs": gym.registry[id].kwargs}, caller=False)
            warnings.warn(f"{id} is registered again, and the new registration replaces the first: first "
                          f"{before}; now {origin}. Give one of them another id (or version) to keep both.",
                          RuntimeWarning, stacklevel=2)
        del gym.registry[id]
    gym.register(id=id, entry_point=entry_point, **kwargs)
    _ENTRIES[id] = EnvEntry(id, " ".join(description.split()), origin=origin)


def _origin(entry_point: Any, kwargs: dict[str, Any], caller: bool = True) -> str:
    """Where a registration comes from: its entry point and kwargs, and the code outside this module
    that called ``register``."""
    if not isinstance(entry_point, str):
        entry_point = f"{getattr(entry_point, '__module__', '?')}:{getattr(entry_point, '__qualname__', entry_point)}"
    text = entry_point + (f" {kwargs}" if kwargs else "")
    if not caller:
        return f"{text} (registered with gymnasium.register)"
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    if frame is None:
        return text
    return f"{text} (registered by {frame.f_globals.get('__name__', '?')}, {frame.f_code.co_filename}:{frame.f_lineno})"


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


def make(env_id: str, *, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
    """``gym.make`` with an error that lists close matches (and says why an env is unavailable).

    ``max_episode_steps`` becomes interplay's ``TurnLimit`` wrapper (recorded in ``env.spec``, so a
    rollout's manifest holds it) instead of gymnasium's ``TimeLimit``. (``gym.make`` itself adds a
    ``TimeLimit``; an interplay environment notices it at reset and applies ``TurnLimit``'s rule.)"""
    check_env_id(env_id)
    if max_episode_steps is None:
        return gym.make(env_id, **kwargs)
    from interplay.envs.core import TurnLimit

    return TurnLimit(gym.make(env_id, **kwargs), max_episode_steps)


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
