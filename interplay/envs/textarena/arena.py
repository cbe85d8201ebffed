"""TextArena itself, read lazily: its registry of games, fresh game objects, its message types.

Importing ``textarena`` imports every game module, so nothing in interplay calls into this module
at ``import interplay``; the first game made or probed does.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from collections.abc import Iterator
from typing import Any

#: What TextArena writes to a player after a move it rejects.
INVALID_MOVE = "attempted an invalid move"
#: An error allowance that never ends a game.
UNLIMITED_ERRORS = 10**9


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow what TextArena prints (RushHour: "Generated puzzle in 1 attempts"): an environment's
    stdout belongs to the program that runs it."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def registry() -> dict[str, Any]:
    """TextArena's ``ENV_REGISTRY``: TextArena id -> spec (entry point, kwargs, default wrappers)."""
    with quiet():  # some game modules try (and fail) to download NLTK data at import
        from textarena.envs.registration import ENV_REGISTRY

    return ENV_REGISTRY


def textarena_games() -> dict[str, str]:
    """Every game in TextArena's registry: base name -> canonical TextArena id (``<Game>-v0``)."""
    variants: dict[str, list[str]] = {}
    for ta_id in registry():
        variants.setdefault(re.match(r"^(.*?)-v\d+", ta_id).group(1), []).append(ta_id)
    return {base: (f"{base}-v0" if f"{base}-v0" in ids else ids[0]) for base, ids in variants.items()}


def make_game(base: str) -> tuple[Any, bool]:
    """A fresh, unwrapped TextArena env of the canonical variant, and whether TextArena wraps bare
    replies in brackets for it (its ActionFormattingWrapper)."""
    spec = registry()[textarena_games()[base]]
    module_name, class_name = spec.entry_point.split(":")
    env = getattr(importlib.import_module(module_name), class_name)(**spec.kwargs)
    wrappers = spec.default_wrappers or []
    return env, any(w.__name__ == "ActionFormattingWrapper" for w in wrappers)


def admin_message() -> Any:
    """The observation type TextArena uses for messages from the game itself."""
    from textarena.core import ObservationType

    return ObservationType.GAME_ADMIN
